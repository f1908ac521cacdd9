import type { Http2Session } from 'node:http2'
import type { FastifyInstance } from 'fastify'
import { attempt } from './attempt.js'
import { FINAL_FLUSH_MS, LATE_DRAIN_MS, STRAGGLER_SETTLE_MS } from './timing.js'
import { ServerClosingError } from '../errors.js'
import type { RequestLifecycle } from '../request/lifecycle.js'
import { serverBindings, stopListening } from '../internals/lookup.js'
import { answerGenerically } from './respond.js'
import { InflightList } from './inflight.js'
import { publishClosing } from '../events/channels.js'
import type { CloseCause } from './cause.js'

export type { CloseCause }

/**
 * How long a connection that is idle when the close starts stays open: a
 * request that arrives on it meanwhile is served (with `Connection: close`)
 * instead of meeting a connection the server just closed. A client that
 * sends on an idle keep-alive connection as the server closes it gets a
 * reset, which only a retrying client survives (the cluster reliability test,
 * Node 20: 33 to 44 resets in ~12,000 requests over 19 crashes without the
 * window, 0 with it). Under load a connection's next request comes within
 * milliseconds and is answered with `Connection: close`; a quiet client's
 * connection is closed when the window ends.
 */
export const IDLE_WINDOW_MS = 250

/** The parts of Node's HTTP/HTTP2 servers a close uses. */
interface ClosableServer {
  readonly listening: boolean
  close (callback: () => void): unknown
  closeIdleConnections?: () => void
  on (event: 'session', listener: (session: Http2Session) => void): unknown
}

function noop (): void {}

/**
 * The servers of Fastify's extra bindings (`listen({ host: 'localhost' })`
 * binds 127.0.0.1 and ::1), kept under a symbol Fastify does not export
 * (lib/internals/table.ts); none if a Fastify version keeps them elsewhere.
 */
export function secondaryServers (fastify: FastifyInstance): ClosableServer[] {
  return serverBindings<ClosableServer>(fastify) ?? []
}

/** The parts of an HTTP/1.x response the drain's `Connection: close` uses. */
interface HeaderTarget {
  readonly headersSent: boolean
  setHeader (name: string, value: string): void
  removeHeader (name: string): void
}

/** `Connection: close` on a response that has not started, so its connection ends with it (HTTP/1.x). */
function endConnectionAfter (lifecycle: RequestLifecycle): void {
  const res = lifecycle.res as unknown as HeaderTarget
  if (!res.headersSent) attempt(() => res.setHeader('connection', 'close'))
}

/** Takes back `endConnectionAfter` from a response that is no longer its connection's last. */
function keepConnectionAfter (lifecycle: RequestLifecycle): void {
  const res = lifecycle.res as unknown as HeaderTarget
  if (!res.headersSent) attempt(() => res.removeHeader('connection'))
}

/** The HTTP/1.x connection a request came on; null for HTTP/2 (its session's GOAWAY closes it) or a request without one. */
function connectionOf (lifecycle: RequestLifecycle): object | null {
  return lifecycle.req.httpVersionMajor === 2 ? null : lifecycle.req.socket
}

/**
 * A response Node's `closeIdleConnections()` would cut: it takes a
 * connection whose requests have all been read for idle, and skips it only
 * while its current response is unfinished (`_http_server.js`). An ended
 * HTTP/1.x response still in flight is flushing, or queued behind another
 * (pipelining) with more perhaps queued behind it.
 */
function cutByIdleClose (lifecycle: RequestLifecycle): boolean {
  return lifecycle.res.writableEnded && connectionOf(lifecycle) !== null
}

/**
 * One app's requests in flight, and its graceful close: a "soft drain"
 * (docs/crashes.md#what-happens-in-order).
 *
 * `fastify.close()` alone is not enough: it refuses (503) every request that
 * crosses the close on an open keep-alive connection, and it waits for the
 * keep-alive timeout of connections that were busy when it started
 * (fastify/fastify#7044). Instead the close here (1) stops accepting and,
 * IDLE_WINDOW_MS later, closes idle connections, (2) serves whatever still arrives on an open
 * connection, with `Connection: close`, and closes each connection as its
 * last response ends, (3) once every connection is gone, runs
 * `fastify.close()` for the `onClose` hooks, and (4) at the deadline aborts
 * the stragglers with `FST_HANGUP_SERVER_CLOSING` and answers them 503.
 */
export class GracefulClose {
  /** Requests whose response has not closed: the stragglers if the deadline comes. */
  readonly requests = new InflightList()
  /**
   * During the close: each HTTP/1.x connection's last request received, the
   * one that carries `Connection: close` (pipelined requests before it are
   * answered first: Node ends the connection after a `Connection: close`
   * response and drops the responses queued behind it).
   */
  private readonly lastOnConnection = new Map<object, RequestLifecycle>()
  /** Set when the close starts: the promise of its end. */
  private done: Promise<void> | null = null
  /** Resolves `done`; a no-op before the close and once called (the deadline and a drained close can both finish). */
  private resolveDone: () => void = noop
  /** Set when the close starts: resolved once the drain is over (`drainOver`). */
  private drained: Promise<void> | null = null
  /** Resolves `drained`; a no-op before the close and once called. */
  private resolveDrained: () => void = noop
  private serverClosed = false
  /** Past IDLE_WINDOW_MS: idle connections are closed as they turn idle. */
  private idleWindowOver = false
  private appCloseStarted = false
  private appClosed = false
  private sweepScheduled = false
  /** A `startCluster()` worker's listener is held until the primary's word (`stopAcceptingWhen`). */
  private holding = false
  /** When the close started (performance.now()). */
  private startedAt = 0
  private deadline: NodeJS.Timeout | undefined
  private readonly pending = new Set<Promise<void>>()
  /** Open HTTP/2 sessions: an HTTP/2 server's close() leaves them open before Node 24. */
  private readonly sessions = new Set<Http2Session>()
  /** Fastify's other bindings, found when the close starts. */
  private secondaries: ClosableServer[] = []

  private get http2 (): boolean {
    return this.fastify.initialConfig.http2 === true
  }

  get closing (): boolean {
    return this.done !== null
  }

  constructor (
    private readonly fastify: FastifyInstance,
    readonly gracePeriod: number
  ) {
    if (this.http2) this.trackSessions()
  }

  private trackSessions (): void {
    const sessions = this.sessions
    const server = this.fastify.server as unknown as ClosableServer
    server.on('session', (session) => {
      sessions.add(session)
      session.once('close', () => sessions.delete(session))
    })
  }

  /** A request started (its response is being watched). */
  add (lifecycle: RequestLifecycle): void {
    this.requests.add(lifecycle)
    // It crossed the close on a connection that was open: serve it, and
    // let its connection end with it (the soft drain).
    if (this.closing) this.becomeLast(lifecycle)
  }

  /** A request's response closed. */
  delete (lifecycle: RequestLifecycle): void {
    this.requests.delete(lifecycle)
    if (this.closing) {
      const connection = connectionOf(lifecycle)
      if (connection !== null && this.lastOnConnection.get(connection) === lifecycle) this.lastOnConnection.delete(connection)
      this.afterResponse()
    }
  }

  /**
   * `lifecycle` is its connection's last request so far: it gets
   * `Connection: close`, and the one before it, if its head is not written
   * yet, gives it back. A head already written went out with keep-alive: the
   * connection is closed once idle after its last response (`afterResponse`).
   */
  private becomeLast (lifecycle: RequestLifecycle): void {
    const connection = connectionOf(lifecycle)
    if (connection === null) return
    const previous = this.lastOnConnection.get(connection)
    if (previous !== undefined) keepConnectionAfter(previous)
    this.lastOnConnection.set(connection, lifecycle)
    endConnectionAfter(lifecycle)
  }

  /**
   * The close starts: each connection's newest request in flight is its
   * last. The list is newest first, and requests reach it in the order their
   * connection delivered them.
   */
  private markLastRequests (): void {
    for (const lifecycle of this.requests.all()) {
      const connection = connectionOf(lifecycle)
      if (connection === null || this.lastOnConnection.has(connection)) continue
      this.lastOnConnection.set(connection, lifecycle)
      endConnectionAfter(lifecycle)
    }
  }

  /**
   * Whether the plugin's own answer to `lifecycle` (a crash's 500, the
   * deadline's 503) may say `Connection: close`: not while requests
   * pipelined behind it on its connection still wait for theirs. Before the
   * close, nothing is known of its connection: it may.
   */
  endsConnection (lifecycle: RequestLifecycle): boolean {
    const connection = connectionOf(lifecycle)
    const last = connection === null ? undefined : this.lastOnConnection.get(connection)
    return last === undefined || last === lifecycle
  }

  /** Something the close must wait for, bounded by the deadline (a user's `onFatal`). */
  waitFor (promise: Promise<unknown>): void {
    const settled: Promise<void> = promise.then(noop, noop).then(() => {
      this.pending.delete(settled)
      this.checkDrainOver()
      this.checkFinished()
    })
    this.pending.add(settled)
  }

  /**
   * What a `fastify.close()` called from elsewhere waits for in its
   * `preClose` hook (close-with-grace's handler, a hand-rolled one): the end
   * of the drain, not the close's end, which itself runs `fastify.close()`.
   * Fastify closes the HTTP server once `preClose` is over, and since Node 19
   * that closes every idle connection at once (nodejs/node#41578), cutting
   * the idle window; and the `fastify.close()` that resolves is the caller's
   * cue to exit, which must not come before the user's `onFatal` settled.
   * Resolved at once when no close is running.
   */
  drainOver (): Promise<void> {
    return this.drained ?? Promise.resolve()
  }

  /**
   * Starts the close (once; later calls return the same promise), resolved
   * when closed or past the deadline. `stopAccepting`: when to close the
   * listener (a `startCluster()` worker that is the last one listening waits
   * for its replacement, lib/cluster/protocol.ts); null: now.
   */
  close (cause: CloseCause, stopAccepting: Promise<void> | null = null): Promise<void> {
    if (this.done !== null) return this.done
    this.done = new Promise((resolve) => { this.resolveDone = resolve })
    this.drained = new Promise((resolve) => { this.resolveDrained = resolve })
    this.markLastRequests()
    this.startedAt = performance.now()
    this.armDeadline(this.gracePeriod)
    this.fastify.log.info({ cause, gracePeriod: this.gracePeriod, inflight: this.requests.size, holdListener: stopAccepting !== null }, 'graceful close started')
    if (stopAccepting === null) {
      this.stopAccepting()
    } else {
      this.stopAcceptingWhen(stopAccepting)
    }
    this.checkDrained()
    publishClosing(cause)
    return this.done
  }

  /**
   * Keeps accepting until the primary's word, past the grace period if it
   * must: until then this worker may be the last one listening, and the
   * port would go unanswered without it (lib/cluster/protocol.ts). The
   * primary bounds the wait (it releases the worker in time for its
   * killTimeout), and the word also comes if the channel closes. A time cap
   * here (5 s, or half the grace period) failed under CPU load: with busy
   * loops beside the cluster, replacements took 1.7 to 25 s to listen, and
   * the port was refused until they did.
   */
  private stopAcceptingWhen (released: Promise<void>): void {
    this.holding = true
    released.then(() => {
      this.holding = false
      this.stopAccepting()
      // What the worker accepted while it held gets at least LATE_DRAIN_MS
      // (or the grace period, if shorter) from now: the grace period ran
      // from the close's start, and a hold can outlast it.
      const left = this.startedAt + this.gracePeriod - performance.now()
      this.armDeadline(Math.max(left, Math.min(LATE_DRAIN_MS, this.gracePeriod)))
      this.checkDrained()
    }, noop)
  }

  private armDeadline (ms: number): void {
    clearTimeout(this.deadline)
    this.deadline = setTimeout(() => this.onDeadline(), ms)
    // Never the reason a finished process stays alive.
    this.deadline.unref()
  }

  private stopAccepting (): void {
    // The idle window starts here, not at the close's start: while a worker
    // holds its listener, a connection it has just accepted is "idle" to
    // Node (no request parsed yet) and closing idle connections would reset
    // it before its first request arrives.
    setTimeout(() => this.endIdleWindow(), Math.min(IDLE_WINDOW_MS, this.gracePeriod)).unref()
    const server = this.fastify.server as unknown as ClosableServer
    if (!server.listening) {
      this.serverClosed = true
      return
    }
    // The callback runs once every connection is gone: each one is either
    // idle (closed when the idle window ends or as soon as it turns idle
    // after that) or ends with the `Connection: close` response it is serving.
    this.closeListener(server, () => {
      this.serverClosed = true
      this.checkDrained()
    })
    // Fastify closes its other bindings (`localhost` is 127.0.0.1 and ::1)
    // only once the main server has closed: until then they would take
    // new connections. They are Fastify's to close, so no callback here.
    this.secondaries = secondaryServers(this.fastify)
    for (const secondary of this.secondaries) this.closeListener(secondary, noop)
    // HTTP/2: GOAWAY; open streams finish, no new ones start. Fastify does
    // this only with `forceCloseConnections: true`, and Node's close() only
    // from Node 24 on.
    for (const session of this.sessions) session.close()
  }

  /**
   * Stops accepting. For HTTP/1, `net.Server#close`, not the HTTP server's
   * own `close()` (`stopListening`, lib/internals/lookup.ts): idle
   * connections get IDLE_WINDOW_MS. Fastify's own close later runs the HTTP
   * server's `close()` (it stops the connections-checking timer). HTTP/2
   * keeps its own close: its sessions get GOAWAY, which no request races.
   */
  private closeListener (server: ClosableServer, callback: () => void): void {
    if (this.http2) {
      server.close(callback)
    } else {
      stopListening(server, callback)
    }
  }

  private endIdleWindow (): void {
    this.idleWindowOver = true
    this.closeIdleConnections()
    this.checkDrained()
  }

  /**
   * Closes the idle connections, unless an ended HTTP/1.x response is still
   * in flight: Node would cut it, or the pipelined ones queued behind it
   * (`cutByIdleClose`). Its 'close' runs the sweep again.
   */
  private closeIdleConnections (): void {
    for (const lifecycle of this.requests.all()) {
      if (cutByIdleClose(lifecycle)) return
    }
    const main = this.fastify.server as unknown as ClosableServer
    main.closeIdleConnections?.()
    for (const secondary of this.secondaries) secondary.closeIdleConnections?.()
  }

  /**
   * A response closed during the close. A connection whose response had
   * started before the close went out with keep-alive: it turns idle now
   * and is closed here, not at the keep-alive timeout (fastify/fastify#7044).
   * The sweep waits a tick: Node marks the connection idle after 'close'.
   */
  private afterResponse (): void {
    if (!this.sweepScheduled) {
      this.sweepScheduled = true
      setImmediate(() => {
        this.sweepScheduled = false
        if (this.idleWindowOver) this.closeIdleConnections()
        this.checkDrained()
      })
    }
  }

  private checkDrained (): void {
    if (this.closing && this.serverClosed && this.requests.size === 0) this.closeApp()
  }

  /** `fastify.close()`: Fastify's own close and the app's `onClose` hooks, once nothing is left to serve. */
  private closeApp (): void {
    if (this.appCloseStarted) return
    this.appCloseStarted = true
    this.checkDrainOver()
    this.fastify.close().catch((error: unknown) => {
      this.fastify.log.error({ err: error }, 'fastify.close() failed during the graceful close')
    }).then(() => {
      this.appClosed = true
      this.checkFinished()
    }, noop)
  }

  /** Nothing left to serve (or the deadline answered it), and what the close waits for settled. */
  private checkDrainOver (): void {
    if (this.appCloseStarted && this.pending.size === 0) this.endDrain()
  }

  private endDrain (): void {
    const resolve = this.resolveDrained
    this.resolveDrained = noop
    resolve()
  }

  private checkFinished (): void {
    if (this.appClosed && this.pending.size === 0) this.finish()
  }

  /**
   * The grace period is over. Abort first, so a straggler's upstream calls
   * stop rather than being cut by the exit; answer what is left a moment
   * later.
   */
  private onDeadline (): void {
    // Still holding the listener: the requests it takes are served, and the
    // deadline is armed again at the release.
    if (this.holding) return
    if (this.requests.size > 0) {
      this.fastify.log.warn({ inflight: this.requests.size, gracePeriod: this.gracePeriod }, 'grace period over: aborting the requests still in flight')
    }
    for (const lifecycle of this.requests.all()) lifecycle.abort(ServerClosingError.create())
    setTimeout(() => this.answerStragglers(), STRAGGLER_SETTLE_MS).unref()
  }

  private answerStragglers (): void {
    for (const lifecycle of this.requests.all()) answerGenerically(lifecycle.reply, 503, this.endsConnection(lifecycle))
    // The deadline bounds an `onFatal` that never settles too.
    this.endDrain()
    this.closeApp()
    setTimeout(() => this.finish(), FINAL_FLUSH_MS).unref()
  }

  private finish (): void {
    const resolve = this.resolveDone
    this.resolveDone = noop
    clearTimeout(this.deadline)
    resolve()
  }
}
