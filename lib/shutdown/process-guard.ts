import type { FastifyBaseLogger } from 'fastify'
import { attempt } from './attempt.js'
import { findCancellation } from './cancellations.js'
import { LOG_FLUSH_MS } from './timing.js'
import { disconnectFromPrimary, exitHandshake, notifyPrimary } from '../cluster/protocol.js'
import { currentRequest } from '../request/context.js'
import { pinoStream, processSingleton } from '../internals/lookup.js'
import { PROCESS_SINGLETONS } from '../internals/table.js'
import { publishFatal } from '../events/channels.js'
import type { CloseCause } from './graceful-close.js'
import type { RequestLifecycle } from '../request/lifecycle.js'
import { actAsNode, crashAsNode, rejectionsMode, type RejectionsMode } from './node-rejections.js'

/**
 * A second stop signal this soon after the first is the same stop delivered
 * twice, not an operator's "exit now": a terminal's Ctrl-C and systemd's
 * default KillMode=control-group signal every process of the group, and a
 * parent in that group forwards its own copy (npm run, pm2 about 30 ms
 * later). A person pressing Ctrl-C twice is slower than this.
 */
export const DUPLICATE_SIGNAL_MS = 500

/** What the process guard needs of one registered app (lib/shutdown/fatal-app.ts). */
export interface GuardedApp {
  readonly exit: boolean
  readonly signals: readonly NodeJS.Signals[]
  readonly gracePeriod: number
  readonly log: FastifyBaseLogger
  /** True when the request belongs to this app. */
  owns (lifecycle: RequestLifecycle): boolean
  /** Counts the fatal error; for the app whose request raised it, ends that request. */
  fault (error: unknown, lifecycle: RequestLifecycle | null, answer: boolean): void
  /** The user's `onFatal`, bounded by the close. */
  report (error: unknown, lifecycle: RequestLifecycle | null): void
  /** `stopAccepting`: when to close the listener; null for now (see lib/cluster/protocol.ts). */
  close (cause: CloseCause, stopAccepting: Promise<void> | null): Promise<void>
}

type FatalOrigin = 'uncaughtException' | 'unhandledRejection' | 'isFatal' | 'shutdown'

const MESSAGES: Record<FatalOrigin, string> = {
  uncaughtException: 'uncaught exception: closing gracefully',
  unhandledRejection: 'unhandled rejection: closing gracefully',
  isFatal: 'fatal request error: closing gracefully',
  shutdown: 'shutdown with an error: closing gracefully'
}

/**
 * Marks the guard's own listeners, so that they do not count as someone
 * else's when the guard asks whether anyone else handles an error (a guard
 * of another version of the package would carry it too).
 */
const kGuardListener = PROCESS_SINGLETONS.guardListener.key

type ErrorEvent = 'uncaughtException' | 'unhandledRejection'

/** The listeners for `event` other than a guard's. */
function otherListeners (event: ErrorEvent): Array<(...args: never[]) => unknown> {
  const listeners: ReadonlyArray<(...args: never[]) => unknown> = process.listeners(event as 'uncaughtException')
  return listeners.filter((listener) => !(kGuardListener in listener))
}

/** True when a listener for `event` other than a guard's is installed: that one handles it, as far as Node is concerned. */
function othersListen (event: ErrorEvent): boolean {
  return otherListeners(event).length > 0
}

/** The names of the other listeners of each event, for the log ('anonymous' for an unnamed one); null if there are none. */
function describeOtherListeners (): Record<ErrorEvent, string[]> | null {
  const names = (event: ErrorEvent): string[] => otherListeners(event).map((listener) => listener.name === '' ? 'anonymous' : listener.name)
  const found = { uncaughtException: names('uncaughtException'), unhandledRejection: names('unhandledRejection') }
  return found.uncaughtException.length + found.unhandledRejection.length === 0 ? null : found
}

/**
 * Said once per app, at `info`: an error tracker (Sentry) listens too and
 * does no harm; a handler that exits or closes the app changes the close.
 */
export const OTHER_LISTENERS_MESSAGE = 'other uncaughtException/unhandledRejection listeners run too on a fatal error; ' +
  'an error tracker is fine, one that exits or closes the app: see docs/coexistence.md'

/** A writable with no `flush()`. */
interface PlainStream {
  write (chunk: string, callback: () => void): unknown
  flush?: unknown
}

/**
 * Waits (at most LOG_FLUSH_MS) for the log lines written so far. pino's
 * `flush()` flushes its own destination, and calls back at once for a stream
 * without `flush()`: pino writes to `process.stdout` itself when something
 * replaced its `write`, as pm2's cluster mode does with an asynchronous file
 * stream (measured: the close's last lines were lost in 10 of 10 stops). An
 * empty write's callback comes after the writes queued before it.
 */
export function flushLog (log: FastifyBaseLogger): Promise<void> {
  const flush = (log as { flush?: (callback: (error?: Error) => void) => void }).flush
  // pino's destination, under a symbol pino does not export (lib/internals/table.ts).
  const stream = pinoStream<PlainStream>(log)
  const plain = stream !== undefined && typeof stream.flush !== 'function' && typeof stream.write === 'function'
  if (typeof flush !== 'function' && !plain) return Promise.resolve()
  return new Promise((resolve) => {
    setTimeout(resolve, LOG_FLUSH_MS).unref()
    try {
      if (plain) {
        (stream as PlainStream).write('', () => resolve())
      } else {
        (flush as (callback: () => void) => void).call(log, () => resolve())
      }
    } catch {
      resolve()
    }
  })
}

/** One app's close; one that fails (even synchronously) must not keep the others open. */
function closeQuietly (app: GuardedApp, cause: CloseCause, stopAccepting: Promise<void> | null): Promise<void> {
  try {
    return app.close(cause, stopAccepting).catch(() => {})
  } catch {
    return Promise.resolve()
  }
}

/**
 * The process-level half of the plugin: one `uncaughtException`, one
 * `unhandledRejection` and one listener per stop signal for the whole
 * process, however many apps (and copies of the package) are registered, so a
 * crash is handled once. Listeners exist while at least one app is
 * registered; installing the `unhandledRejection` one switches off Node's own
 * crash on a rejection, so a rejection is fatal by this guard's hand.
 *
 * A rejection whose reason the plugin cancelled a request's work with (a
 * floating call after the response) is never fatal, `fatal: false`
 * included: it is logged at `debug` and counted. An app with `fatal: false`
 * is a *watcher*: the `unhandledRejection` listener exists for it too, and
 * with no fatal app registered, every other rejection gets Node's own
 * handling (lib/shutdown/node-rejections.ts).
 */
export class ProcessGuard {
  private readonly apps = new Set<GuardedApp>()
  /** Apps registered with `fatal: false`. */
  private readonly watchers = new Set<object>()
  /** Signals `onSignal` listens to. */
  private readonly signals = new Set<NodeJS.Signals>()
  /** Apps told of the other error listeners (`tellOfOthers`). */
  private readonly told = new WeakSet<GuardedApp>()
  private newListenerWatched = false
  private rejectionListenerInstalled = false
  private uncaughtListenerInstalled = false
  /**
   * A rejection already handled through `uncaughtException` (origin
   * `unhandledRejection`): under `--unhandled-rejections=strict` Node raises
   * it there first, then emits it as a rejection, which must not count twice.
   */
  private raised: { reason: unknown } | null = null
  private closing: Promise<void> | null = null
  private exitAfterClose = false
  /**
   * In a worker of `startCluster()` a second signal is not an order to exit
   * at once: Ctrl-C and systemd's default `KillMode=control-group` signal the
   * worker directly *and* through the primary. The primary escalates
   * (SIGKILL after its `killTimeout`, or on its own second signal).
   */
  primaryEscalates = false
  /** When the first stop signal came (performance.now()). */
  private signalledAt = -Infinity

  /** `mode`: Node's `--unhandled-rejections` mode, read from the process by default. */
  constructor (readonly mode: RejectionsMode = rejectionsMode()) {
    for (const listener of [this.onUncaughtException, this.onUnhandledRejection]) {
      Object.defineProperty(listener, kGuardListener, { value: true })
    }
  }

  add (app: GuardedApp): void {
    this.apps.add(app)
    this.sync()
    attempt(() => this.tellOfOthers())
  }

  /**
   * Tells each app, once, of the other `uncaughtException` /
   * `unhandledRejection` listeners: at its ready, or when one is added
   * later (close-with-grace set up after `listen()`).
   */
  private tellOfOthers (): void {
    const others = describeOtherListeners()
    if (others === null) return
    for (const app of this.apps) {
      if (this.told.has(app)) continue
      this.told.add(app)
      // Each app's own logger; one that throws must not keep the others untold.
      attempt(() => app.log.info({ otherListeners: others }, OTHER_LISTENERS_MESSAGE))
    }
  }

  /** 'newListener' comes before the listener is added: the look waits a microtask. */
  private readonly onNewListener = (event: string | symbol): void => {
    // attempt: a listener's name is read, and nothing here may throw.
    if (event === 'uncaughtException' || event === 'unhandledRejection') queueMicrotask(() => attempt(() => this.tellOfOthers()))
  }

  /** An app closed. While a close is running the listeners stay: a second crash must still be handled. */
  remove (app: GuardedApp): void {
    this.apps.delete(app)
    if (this.closing === null) this.sync()
  }

  has (app: GuardedApp): boolean {
    return this.apps.has(app)
  }

  /** An app with `fatal: false` is ready: its own cancellations must not crash the process either. */
  watch (watcher: object): void {
    this.watchers.add(watcher)
    this.sync()
  }

  unwatch (watcher: object): void {
    this.watchers.delete(watcher)
    if (this.closing === null) this.sync()
  }

  private readonly onUncaughtException = (error: Error, origin: string): void => {
    // With --unhandled-rejections=strict a rejection arrives here first, marked by its origin.
    const rejection = origin === 'unhandledRejection'
    if (rejection) this.raised = { reason: error }
    if (rejection && this.cancelled(error)) return
    if (this.apps.size > 0) {
      this.fatal(error, rejection ? 'unhandledRejection' : 'uncaughtException', currentRequest(), true)
      return
    }
    // Only watchers: installed for strict mode, where this listener switched
    // off Node's own end of the process for every uncaught exception.
    this.raised = null
    if (!othersListen('uncaughtException')) crashAsNode(error)
  }

  private readonly onUnhandledRejection = (reason: unknown): void => {
    const raised = this.raised
    this.raised = null
    if (raised !== null && raised.reason === reason) return
    if (this.cancelled(reason)) return
    if (this.apps.size > 0) {
      this.fatal(reason, 'unhandledRejection', currentRequest(), true)
    } else if (!othersListen('unhandledRejection')) {
      actAsNode(reason, this.mode)
    }
  }

  /**
   * True when the reason (or its cause) is one the plugin cancelled a
   * request's work with: nobody awaited that work, and nothing is wrong with
   * the process. Logged at `debug` with the request's id, and counted.
   */
  private cancelled (reason: unknown): boolean {
    const found = findCancellation(reason)
    if (found === undefined) return false
    const { reqId, runtime } = found
    runtime.counters.unhandledCancellations++
    attempt(() => runtime.log.debug({ reqId, err: reason }, 'cancelled work rejected with nobody handling it'))
    return true
  }

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    attempt(() => this.signal(signal))
  }

  /**
   * A fatal error. Must never throw: each step is an `attempt`.
   *
   * The exit code is set before anything else: the kill timer is unref'd,
   * and a process whose loop empties before `process.exit()` is called
   * would otherwise exit 0.
   */
  fatal (error: unknown, origin: FatalOrigin, lifecycle: RequestLifecycle | null, answer: boolean): void {
    const apps = [...this.apps]
    if (apps.some((app) => app.exit)) process.exitCode = 1
    const owner = lifecycle === null ? undefined : apps.find((app) => app.owns(lifecycle))
    const ownLifecycle = owner === undefined ? null : lifecycle
    const message = this.closing === null ? MESSAGES[origin] : `${MESSAGES[origin]} (already closing)`
    // The request's logger carries its id; apps may all be closed already
    // when a late error comes during the exit's log flush.
    attempt(() => (ownLifecycle ?? apps[0])?.log.fatal({ err: error }, message))
    // Once per error for the whole process, before the close it starts.
    attempt(() => publishFatal(error, ownLifecycle === null ? null : ownLifecycle.reply.request))
    // Stop accepting before answering: a client that reads the 500 must
    // find the listener closed, not win a race with it.
    if (this.closing === null) attempt(() => this.startClose('fatal', ownLifecycle?.reply.request.id))
    for (const app of apps) attempt(() => app.fault(error, app === owner ? ownLifecycle : null, answer))
    for (const app of apps) attempt(() => app.report(error, app === owner ? ownLifecycle : null))
  }

  /** A stop signal: a graceful close (exit code 0); a second one while closing exits at once. */
  private signal (signal: NodeJS.Signals): void {
    // Signal listeners exist only while an app is registered.
    const log = ([...this.apps][0] as GuardedApp).log
    if (this.closing !== null) {
      if (!this.exitAfterClose || this.primaryEscalates) return
      if (performance.now() - this.signalledAt < DUPLICATE_SIGNAL_MS) {
        log.info({ signal }, 'signal received again at once: the same stop, delivered twice')
        return
      }
      log.warn({ signal }, 'second signal while closing: exiting now')
      process.exit(1)
    }
    log.info({ signal }, 'signal received: closing gracefully')
    this.signalledAt = performance.now()
    this.startClose('signal')
  }

  /** `fastify.hangup.shutdown()`: the same close, by hand. */
  shutdown (): Promise<void> {
    return this.closing ?? this.startClose('shutdown')
  }

  /** `reqId`: the request whose error is fatal, when it is known. */
  private startClose (cause: CloseCause, reqId?: string): Promise<void> {
    const apps = [...this.apps]
    this.exitAfterClose = apps.some((app) => app.exit)
    const stopAccepting = notifyPrimary(cause, reqId, Math.max(...apps.map((app) => app.gracePeriod)))
    const closing = Promise.all(apps.map((app) => closeQuietly(app, cause, stopAccepting)))
      .then(() => this.closed(apps))
    this.closing = closing
    return closing
  }

  private async closed (apps: GuardedApp[]): Promise<void> {
    if (this.exitAfterClose) {
      await Promise.all([exitHandshake(), ...apps.map((app) => flushLog(app.log))])
      // Right before the exit, in the same tick: a cluster worker whose
      // channel closes runs Node's own `process.exit(0)` on the next tick
      // (lib/internal/cluster/child.js), which would turn the exit code 1
      // of a crash into 0.
      disconnectFromPrimary()
      process.exit()
    }
    this.closing = null
    this.sync()
  }

  /**
   * Installs or removes the process listeners to match the registered apps.
   * Watchers alone need the `unhandledRejection` listener, and the
   * `uncaughtException` one only under `--unhandled-rejections=strict`,
   * where a rejection comes through it first.
   */
  private sync (): void {
    const fatalApps = this.apps.size > 0
    const watched = this.watchers.size > 0
    const rejections = fatalApps || watched
    if (rejections !== this.rejectionListenerInstalled) {
      process[rejections ? 'on' : 'removeListener']('unhandledRejection', this.onUnhandledRejection)
      this.rejectionListenerInstalled = rejections
    }
    const uncaught = fatalApps || (watched && this.mode === 'strict')
    if (uncaught !== this.uncaughtListenerInstalled) {
      process[uncaught ? 'on' : 'removeListener']('uncaughtException', this.onUncaughtException)
      this.uncaughtListenerInstalled = uncaught
    }
    if (fatalApps !== this.newListenerWatched) {
      process[fatalApps ? 'on' : 'removeListener']('newListener', this.onNewListener)
      this.newListenerWatched = fatalApps
    }
    const wantedSignals = new Set<NodeJS.Signals>()
    for (const app of this.apps) for (const signal of app.signals) wantedSignals.add(signal)
    for (const signal of this.signals) {
      if (!wantedSignals.has(signal)) {
        process.removeListener(signal, this.onSignal)
        this.signals.delete(signal)
      }
    }
    for (const signal of wantedSignals) {
      if (!this.signals.has(signal)) {
        process.on(signal, this.onSignal)
        this.signals.add(signal)
      }
    }
  }
}

/** The one guard of the process, shared by every copy of the package (CJS and ESM). */
export function processGuard (): ProcessGuard {
  return processSingleton(PROCESS_SINGLETONS.processGuard.key, () => new ProcessGuard())
}
