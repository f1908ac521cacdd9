import cluster, { type Address, type Worker } from 'node:cluster'
import { RestartBackoff } from './backoff.js'
import { CLOSE_OVERHEAD_MS, LATE_DRAIN_MS } from '../shutdown/timing.js'
import type { ClusterLogger, ResolvedClusterOptions } from './options.js'
import type { CloseCause } from '../shutdown/graceful-close.js'
import { DRAINED_MESSAGE_CMD, EXIT_CMD, isClosingMessage, isCommand, PRIMARY_ENV, STOP_ACCEPTING_CMD } from './protocol.js'

/** Why a worker ended, as the exit line says. */
export type ExitCause = CloseCause | 'stop' | 'kill-timeout' | 'start-failed' | 'crash' | 'exit'

/** The signals the primary forwards to its workers for a graceful stop. */
export type StopSignal = 'SIGINT' | 'SIGTERM'

const STOP_SIGNALS: readonly StopSignal[] = ['SIGINT', 'SIGTERM']

export interface ClusterStats {
  /** Workers alive and not closing. */
  readonly workers: number
  /** Workers forked since the start, the first ones included. */
  readonly forks: number
  /** Worker exits, by cause. */
  readonly exits: Readonly<Partial<Record<ExitCause, number>>>
  /** Milliseconds from the last worker's close (or exit) to its replacement listening; null before the first. */
  readonly lastRestartMs: number | null
  /** True once a stop began. */
  readonly stopping: boolean
}

/** The primary's handle, returned by `startCluster()` in the primary. */
export interface ClusterSupervisor {
  stats (): ClusterStats
  /** Stops the workers as a SIGTERM to the primary would; the primary then exits. */
  stop (signal?: StopSignal): Promise<void>
}

/** What the primary knows of one worker. */
interface Tracked {
  readonly worker: Worker
  readonly forkedAt: number
  /** The worker it replaces, for the restart time. */
  readonly replaces: Tracked | null
  listenedAt: number | null
  /** From the worker's closing message. */
  closing: CloseCause | null
  /** When it began to close or disconnected or exited: the start of its restart. */
  retiredAt: number | null
  /** Its replacement is forked or scheduled. */
  replaced: boolean
  /** It was retired already when the stop began. */
  retiredBeforeStop: boolean
  /** A request it was serving crashed it: its death says nothing of the next worker's start. */
  crashedByRequest: boolean
  /** The primary sent it SIGKILL. */
  killed: boolean
  /** It is closing and still accepting, until `releaseListeners()` tells it to stop. */
  holdsListener: boolean
  /** Releases its listener in time for it to exit before killTimeout, if no other worker listens by then. */
  holdTimer: NodeJS.Timeout | undefined
  killTimer: NodeJS.Timeout | null
}

/**
 * The primary of `startCluster()`: keeps `workers` workers, forks
 * a replacement as soon as one begins to close (the plugin's closing message,
 * sent before its drain), disconnects or exits, with a growing delay for a
 * crash loop; forwards SIGINT/SIGTERM and exits when the workers have;
 * SIGKILLs a worker that overstays `killTimeout`.
 */
export class Supervisor implements ClusterSupervisor {
  private readonly tracked = new Map<number, Tracked>()
  private readonly delayedForks = new Set<NodeJS.Timeout>()
  private readonly backoff: RestartBackoff
  private readonly log: ClusterLogger
  private forks = 0
  private readonly exits: Partial<Record<ExitCause, number>> = {}
  private lastRestartMs: number | null = null
  private warnedKillTimeout = false
  private stopSignal: StopSignal | null = null
  /** False once a worker had to be killed, or exited non-zero, during the stop. */
  private cleanStop = true
  private readonly stopped: Promise<void>
  private resolveStopped!: () => void

  constructor (private readonly options: ResolvedClusterOptions, log: ClusterLogger) {
    this.backoff = new RestartBackoff(options.backoff)
    this.log = log
    this.stopped = new Promise((resolve) => { this.resolveStopped = resolve })
  }

  start (): void {
    cluster.on('message', this.onMessage)
    cluster.on('listening', this.onListening)
    cluster.on('disconnect', this.onDisconnect)
    cluster.on('exit', this.onExit)
    for (const signal of STOP_SIGNALS) process.on(signal, this.onSignal)
    for (let i = 0; i < this.options.workers; i++) this.fork(null)
  }

  stats (): ClusterStats {
    let workers = 0
    for (const t of this.tracked.values()) if (t.retiredAt === null) workers++
    return {
      workers,
      forks: this.forks,
      exits: { ...this.exits },
      lastRestartMs: this.lastRestartMs,
      stopping: this.stopSignal !== null
    }
  }

  stop (signal: StopSignal = 'SIGTERM'): Promise<void> {
    if (this.stopSignal === null) this.beginStop(signal)
    return this.stopped
  }

  private fork (replaces: Tracked | null): void {
    const worker = cluster.fork({ [PRIMARY_ENV]: '1' })
    this.forks++
    this.tracked.set(worker.id, {
      worker,
      forkedAt: performance.now(),
      replaces,
      listenedAt: null,
      closing: null,
      retiredAt: null,
      replaced: false,
      retiredBeforeStop: false,
      crashedByRequest: false,
      killed: false,
      holdsListener: false,
      holdTimer: undefined,
      killTimer: null
    })
    this.log.info({ worker: worker.id, workerPid: worker.process.pid, replaces: replaces?.worker.id }, 'worker forked')
  }

  /** The worker is on its way out: fork its replacement now, or after the crash-loop delay; none during a stop. */
  private retire (t: Tracked): void {
    t.retiredAt ??= performance.now()
    this.armKillTimer(t)
    if (t.replaced || this.stopSignal !== null) return
    t.replaced = true
    const listenedFor = t.listenedAt === null ? null : performance.now() - t.listenedAt
    const delay = t.crashedByRequest ? 0 : this.backoff.delayAfter(listenedFor)
    if (delay === 0) {
      this.fork(t)
    } else {
      this.log.warn({ worker: t.worker.id, youngDeaths: this.backoff.youngDeaths, delay }, 'crash loop: replacement delayed')
      const timer = setTimeout(() => {
        this.delayedForks.delete(timer)
        this.fork(t)
      }, delay)
      this.delayedForks.add(timer)
    }
  }

  /** SIGKILL for a worker still alive `killTimeout` after it was told to stop or began to close. */
  private armKillTimer (t: Tracked): void {
    if (t.killTimer !== null || t.worker.isDead()) return
    // Cleared on the worker's exit.
    t.killTimer = setTimeout(() => {
      t.killed = true
      this.log.error({ worker: t.worker.id, workerPid: t.worker.process.pid, killTimeout: this.options.killTimeout }, 'worker overstayed killTimeout: SIGKILL')
      t.worker.process.kill('SIGKILL')
    }, this.options.killTimeout)
    // Not unref'd: the primary must stay to enforce it.
  }

  private readonly onMessage = (worker: Worker, message: unknown): void => {
    // Drained: by now this primary has read its listener's close (the same
    // channel, in order), so no connection goes to it after this answer.
    if (isCommand(message, DRAINED_MESSAGE_CMD)) {
      if (worker.isConnected()) worker.send({ cmd: EXIT_CMD }, () => {})
      return
    }
    const t = this.tracked.get(worker.id)
    // Untracked: a worker the application forked itself.
    if (t === undefined || !isClosingMessage(message)) return
    t.closing = message.cause
    t.crashedByRequest = message.cause === 'fatal' && typeof message.reqId === 'string'
    t.holdsListener = true
    this.log.info({ worker: worker.id, workerPid: worker.process.pid, cause: message.cause, reqId: message.reqId }, 'worker closing')
    this.checkKillTimeout(message.gracePeriod)
    this.retire(t)
    this.releaseListeners()
    if (t.holdsListener) this.armHoldTimer(t)
  }

  /**
   * A worker holds its listener, past its grace period if need be, until
   * another listens: no time cap of its own would fit every machine (under
   * CPU load replacements took up to 25 s to listen). The bound is killTimeout:
   * released LATE_DRAIN_MS + CLOSE_OVERHEAD_MS before it, the worker still
   * drains what it accepted meanwhile and exits on its own, not by SIGKILL.
   */
  private armHoldTimer (t: Tracked): void {
    t.holdTimer = setTimeout(() => {
      this.log.warn({ worker: t.worker.id, workerPid: t.worker.process.pid, killTimeout: this.options.killTimeout }, 'no other worker listens before killTimeout: the closing worker stops listening')
      this.release(t)
    }, Math.max(0, this.options.killTimeout - LATE_DRAIN_MS - CLOSE_OVERHEAD_MS))
  }

  private release (t: Tracked): void {
    t.holdsListener = false
    clearTimeout(t.holdTimer)
    t.holdTimer = undefined
    if (t.worker.isConnected()) t.worker.send({ cmd: STOP_ACCEPTING_CMD }, () => {})
  }

  /** Once: a killTimeout shorter than a worker's drain cuts that drain. */
  private checkKillTimeout (gracePeriod: number | undefined): void {
    // Without gracePeriod (a worker of an older version), NaN: no warning.
    if (this.warnedKillTimeout || !(Number(gracePeriod) + CLOSE_OVERHEAD_MS > this.options.killTimeout)) return
    this.warnedKillTimeout = true
    this.log.warn({ killTimeout: this.options.killTimeout, gracePeriod }, `killTimeout is shorter than the workers' fatal.gracePeriod + ${CLOSE_OVERHEAD_MS / 1000} s: a drain may be cut by SIGKILL`)
  }

  private readonly onListening = (worker: Worker, address: Address): void => {
    const t = this.tracked.get(worker.id)
    if (t === undefined || t.listenedAt !== null) return
    t.listenedAt = performance.now()
    const restartMs = t.replaces?.retiredAt == null ? undefined : Math.round(t.listenedAt - t.replaces.retiredAt)
    if (restartMs !== undefined) this.lastRestartMs = restartMs
    this.releaseListeners()
    this.log.info({ worker: worker.id, workerPid: worker.process.pid, port: address.port, replaces: t.replaces?.worker.id, restartMs }, 'worker listening')
    setTimeout(() => {
      if (worker.isDead() || t.retiredAt !== null || this.backoff.youngDeaths === 0) return
      this.backoff.healthy()
      this.log.info({ worker: worker.id, minUptime: this.backoff.minUptime }, 'crash loop over: a worker stayed up')
    }, this.backoff.minUptime).unref()
  }

  /**
   * Closing workers stop accepting once another worker listens (or the
   * cluster is stopping): until then the shared socket must have a worker,
   * or the primary closes it and connections are refused
   * (lib/cluster/protocol.ts).
   */
  private releaseListeners (): void {
    let serving = false
    for (const t of this.tracked.values()) if (t.listenedAt !== null && t.retiredAt === null) serving = true
    if (!serving && this.stopSignal === null) return
    for (const t of this.tracked.values()) if (t.holdsListener) this.release(t)
  }

  private readonly onDisconnect = (worker: Worker): void => {
    const t = this.tracked.get(worker.id)
    if (t !== undefined && !worker.isDead()) this.retire(t)
  }

  private readonly onExit = (worker: Worker, code: number | null, signal: NodeJS.Signals | null): void => {
    const t = this.tracked.get(worker.id)
    if (t === undefined) return
    this.tracked.delete(worker.id)
    if (t.killTimer !== null) clearTimeout(t.killTimer)
    clearTimeout(t.holdTimer)
    const cause = this.exitCause(t, code)
    this.exits[cause] = (this.exits[cause] ?? 0) + 1
    const fields = { worker: worker.id, workerPid: worker.process.pid, cause, code, signal, uptimeMs: Math.round(performance.now() - t.forkedAt) }
    if (this.stopSignal !== null) {
      // A worker that was already on its way out when the stop began (a
      // crash, a failed start: its disconnect comes before its exit) exits
      // 1 for that, not for the stop.
      const clean = !t.killed && (code === 0 || signal === this.stopSignal || t.retiredBeforeStop)
      if (!clean) this.cleanStop = false
      this.log[clean ? 'info' : 'warn'](fields, 'worker exited')
      if (this.tracked.size === 0) this.finish()
      return
    }
    const planned = cause === 'exit' || cause === 'signal' || cause === 'shutdown'
    this.log[planned ? 'info' : 'warn'](fields, 'worker exited')
    // A worker that exits without closing first (process.exit, a start
    // failure, the OOM killer) is replaced now, after its exit line.
    this.retire(t)
  }

  private exitCause (t: Tracked, code: number | null): ExitCause {
    if (t.killed) return 'kill-timeout'
    if (t.closing !== null) return t.closing
    if (this.stopSignal !== null) return 'stop'
    if (t.listenedAt === null && code !== 0) return 'start-failed'
    if (code === 0) return 'exit'
    return 'crash'
  }

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    if (this.stopSignal === null) {
      this.log.info({ signal, workers: this.tracked.size }, 'signal received: stopping the workers')
      this.beginStop(signal as StopSignal)
      return
    }
    // A second signal: the operator will not wait.
    this.log.warn({ signal }, 'second signal while stopping: SIGKILL to every worker')
    for (const t of this.tracked.values()) {
      t.killed = true
      t.worker.process.kill('SIGKILL')
    }
    process.exit(1)
  }

  private beginStop (signal: StopSignal): void {
    this.stopSignal = signal
    for (const timer of this.delayedForks) clearTimeout(timer)
    this.delayedForks.clear()
    for (const t of this.tracked.values()) {
      t.retiredBeforeStop = t.retiredAt !== null
      t.retiredAt ??= performance.now()
      this.armKillTimer(t)
      // The worker's plugin closes gracefully on it; a worker with no handler dies of it.
      t.worker.process.kill(signal)
    }
    this.releaseListeners()
    if (this.tracked.size === 0) this.finish()
  }

  private finish (): void {
    cluster.removeListener('message', this.onMessage)
    cluster.removeListener('listening', this.onListening)
    cluster.removeListener('disconnect', this.onDisconnect)
    cluster.removeListener('exit', this.onExit)
    for (const signal of STOP_SIGNALS) process.removeListener(signal, this.onSignal)
    const code = this.cleanStop ? 0 : 1
    this.log.info({ code, forks: this.forks, exits: this.exits }, 'all workers exited: primary exiting')
    this.resolveStopped()
    process.exit(code)
  }
}
