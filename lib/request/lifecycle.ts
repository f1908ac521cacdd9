import { setMaxListeners } from 'node:events'
import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import { recordCancellation } from '../shutdown/cancellations.js'
import { ClientDisconnectedError, ResponseDestroyedError, ResponseSentError, type DisconnectPhase } from '../errors.js'
import type { Counters, UpstreamClient } from '../stats.js'
import type { DisconnectLogLevel } from '../options.js'
import { publishCancel, publishHangup } from '../events/channels.js'

/** The request's and the response's slot for their lifecycle. */
export const kLifecycle = Symbol('fastify-hangup.lifecycle')

/**
 * No listener limit on a request's signal: 100 upstream calls may share it
 * (docs/internals.md#listener-limit, nodejs/node#52635), and undici's `fetch` keeps its `'abort'`
 * listener until its Request is garbage-collected, so a long request making
 * many sequential fetches would trip any fixed limit without leaking.
 * Infinity, not 0: Node 20's `events.getMaxListeners()` throws
 * ERR_INVALID_ARG_TYPE for an EventTarget whose limit is 0, and undici's
 * `fetch` calls it on the signal it is given.
 */
export const SIGNAL_LISTENER_LIMIT = Infinity

/** The parts of `IncomingMessage` / `Http2ServerRequest` this module reads. */
export interface RawRequest {
  readonly httpVersionMajor: number
  readonly complete: boolean
  readonly readableEnded: boolean
  readonly stream?: { readonly endAfterHeaders: boolean }
  readonly socket: { readonly destroyed: boolean, readonly readableEnded?: boolean, readonly errored?: Error | null } | null
  removeListener (event: 'close', listener: () => void): unknown
  on (event: 'close' | 'aborted', listener: (this: RawRequest) => void): unknown
  [kLifecycle]?: RequestLifecycle
}

/** The parts of `ServerResponse` / `Http2ServerResponse` this module reads. */
export interface RawResponse {
  readonly writableEnded: boolean
  /** HTTP/1: bytes of this response not yet handed to the socket, plus the socket's own. */
  readonly writableLength: number
  readonly headersSent: boolean
  readonly destroyed?: boolean
  readonly stream?: { readonly destroyed: boolean, readonly rstCode?: number }
  /** null while an HTTP/1.1 pipelined response waits for the one before it. */
  readonly socket?: unknown
  prependListener (event: 'close', listener: (this: RawResponse) => void): unknown
  [kLifecycle]?: RequestLifecycle
}

/** An upstream call bound to a request (lib/upstream/interceptor.ts, lib/upstream/http-client.ts). */
export interface BoundWork {
  /** The client that made the call: what the counters, and the `fastify-hangup:cancel` event, tell apart. */
  readonly client: UpstreamClient
  /** Cancels the call with `reason`; false when it was already over (nothing cancelled, nothing counted). */
  cancel (reason: unknown): boolean
}

/** The app's list of requests in flight and its graceful close (lib/shutdown/graceful-close.ts), as a request sees them. */
export interface RequestTracker {
  add (lifecycle: RequestLifecycle): void
  delete (lifecycle: RequestLifecycle): void
  /** Whether the plugin's own answer to `lifecycle` may say `Connection: close`. */
  endsConnection (lifecycle: RequestLifecycle): boolean
}

/** What every request of one registration shares: options, counters, the app's close. */
export interface Runtime {
  readonly counters: Counters
  readonly abortOnResponse: boolean
  readonly logLevel: DisconnectLogLevel
  /** The app's logger: what is logged about a request after the fact (lib/shutdown/process-guard.ts). */
  readonly log: FastifyBaseLogger
  /** The requests in flight and the graceful close; null where nothing tracks them (unit tests). */
  readonly close: RequestTracker | null
}

/**
 * Which phase the request was in when its response closed unfinished.
 * `headersSent` first: once the response started, the upload is over for
 * every practical purpose. On HTTP/1 `complete` is the parser's "whole body
 * received"; the HTTP/2 compat layer reports `complete` as true for any
 * destroyed stream, so there the body is done when the HEADERS frame carried
 * END_STREAM or the body was read to its end.
 */
export function phaseOf (req: RawRequest, res: RawResponse): DisconnectPhase {
  if (res.headersSent) return 'response'
  const uploading = req.httpVersionMajor === 2
    ? !(req.stream?.endAfterHeaders === true || req.readableEnded)
    : !req.complete
  return uploading ? 'upload' : 'handler'
}

/** HTTP/2's NO_ERROR: the code a stream the server itself destroyed closes with. */
const NGHTTP2_NO_ERROR = 0

/**
 * Whether the client, not the server, ended a response cut mid-body. Fastify
 * destroys the response when the stream it sends fails after the headers
 * are out (an upstream that resets or closes mid-body); that 'close' is not
 * a hang-up (found by test/fault/upstream-faults.test.ts). HTTP/1: the
 * client's FIN ended the socket's readable side, or its RST (or a write to
 * its closed socket) errored it; the server's own destroy() leaves neither.
 * HTTP/2: a client's RST_STREAM is seen earlier, by onStreamAborted, whatever
 * its code; here a lost session closes the stream with an error code, the
 * server's destroy() with NO_ERROR.
 */
function clientEnded (req: RawRequest, res: RawResponse): boolean {
  if (res.stream !== undefined) return res.stream.rstCode !== NGHTTP2_NO_ERROR
  const socket = req.socket
  return socket === null || socket.readableEnded === true || socket.errored != null
}

/**
 * An HTTP/1.1 pipelined response that was generated (`end()` was called)
 * while it waited behind an earlier one, and never reached the socket: it
 * has none, and its bytes are still its own. A delivered response has none
 * either once Node detached it, but nothing left to write. Its socket died:
 * Node 20 and 22 never emit its 'close', Node 24 destroys it (the
 * `abortOutgoing` of `_http_server.js`); either way its client never got it.
 */
function undelivered (res: RawResponse): boolean {
  return res.socket === null && res.writableLength > 0
}

/** The response is over for good: finished, or never delivered; see `undelivered`. */
function responseIsDead (req: RawRequest, res: RawResponse): boolean {
  if (res.writableEnded) return req.httpVersionMajor !== 2 && undelivered(res) && req.socket?.destroyed === true
  if (res.destroyed === true || res.stream?.destroyed === true) return true
  return req.socket?.destroyed === true
}

/**
 * One request's link between the response's real lifecycle and its signal.
 *
 * The AbortController is created on the first read of `request.signal`
 * (fastify/fastify#6521, docs/internals.md#lazy-controller): until then a request costs this object
 * and one `'close'` listener on its response. What happened before the first
 * read (a hang-up, a sent response) is kept in `phase` / `responded` and
 * replayed when the controller is created (fastify/fastify#7033, docs/internals.md#early-hangup).
 *
 * Its state is its own: the hooks, the process guard and the graceful close
 * change it through the methods that say why (`adopt`, `adoptTimeout`,
 * `markFailed`, `markFatal`, `abort`, `bind`), and read it through getters.
 * TypeScript `private`, not `#`: one of these is allocated per request, and
 * `private` compiles to the plain fields it was. The one exception is
 * `prev`/`next`, the links of the list of requests in flight.
 */
export class RequestLifecycle {
  private controller: AbortController | null = null
  /** The phase of the client's hang-up; null while the client is there. */
  private phase: DisconnectPhase | null = null
  /** The response finished (`end()` was called) and closed. */
  private responded = false
  private responseClosed = false
  /** Fastify's handler-timeout clean-up (clears its timer), when the route has one. */
  private timeoutCleanup: (() => void) | null = null
  /** Set when this request raised a fatal error: its answer is the generic 500. */
  private raisedFatal = false
  /** An error went through Fastify's error path (not a hang-up's aftermath): a cut after it is the server's. */
  private failed = false
  /**
   * Upstream calls bound to this request that have not ended. They are
   * cancelled directly, not through the signal: binding a call must not
   * create the request's AbortController (bench/upstream-call.js).
   */
  private calls: Set<BoundWork> | null = null
  /** The reason of the first abort that had something to stop: replayed to work bound later. */
  private reason: unknown = undefined
  /**
   * Neighbours in the app's list of requests in flight: read and written by
   * lib/shutdown/inflight.ts only. Public because the list is intrusive (a
   * list of its own nodes, or a Set, would cost an allocation or an identity
   * hash per request, on the path every request takes).
   */
  prev: RequestLifecycle | null = null
  next: RequestLifecycle | null = null
  readonly req: RawRequest
  readonly res: RawResponse
  readonly log: FastifyBaseLogger

  /** `reply` also serves the answers the plugin gives itself (a crash's 500, the deadline's 503). */
  constructor (readonly reply: FastifyReply, readonly runtime: Runtime) {
    this.req = reply.request.raw as unknown as RawRequest
    this.res = reply.raw as unknown as RawResponse
    this.log = reply.request.log
  }

  /** The response closed (finished or not): the request is over. */
  get closed (): boolean {
    return this.responseClosed
  }

  /** This request raised a fatal error (`markFatal`): its answer is the generic 500. */
  get fatal (): boolean {
    return this.raisedFatal
  }

  /** Whether the AbortController exists: `request.signal` was read, or Fastify's was adopted. */
  get signalCreated (): boolean {
    return this.controller !== null
  }

  /** Upstream calls bound to this request that have not ended. */
  get boundCalls (): number {
    return this.calls?.size ?? 0
  }

  /**
   * Adopts an existing controller (Fastify's handler-timeout one). Fastify
   * aborts it itself on timeout: that abort must reach the bound calls too.
   * From `onRequest`, before the response is watched, so before any read of
   * the plugin's signal.
   */
  adopt (controller: AbortController): void {
    const signal = controller.signal
    setMaxListeners(SIGNAL_LISTENER_LIMIT, signal)
    this.controller = controller
    signal.addEventListener('abort', () => {
      // Fastify's handler timeout is a cancellation of the plugin's signal too.
      this.record(signal.reason)
      this.cancelCalls(signal.reason)
    }, { once: true })
  }

  /**
   * Takes Fastify's `'close'` listener off the request (it is the premature
   * abort of fastify/fastify#6725), and keeps it: it also clears Fastify's
   * handler-timeout timer, and is called when the client really left. From
   * `onRequest`, with `adopt`.
   */
  adoptTimeout (onAbort: () => void): void {
    this.req.removeListener('close', onAbort)
    this.timeoutCleanup = onAbort
  }

  /**
   * An error went through Fastify's error path while the client was there:
   * a response cut after this is the server's, not a hang-up. Idempotent.
   */
  markFailed (): void {
    this.failed = true
  }

  /**
   * This request raised a fatal error: `fatal` turns true (the `onSend`
   * hook swaps in the generic 500) and the request aborts with the error, as
   * `abort` does. On a request already over as well: nothing is left to
   * stop, but its reason is kept as `abort` keeps it. Idempotent; the first
   * abort's reason stays.
   */
  markFatal (error: unknown): void {
    this.raisedFatal = true
    this.abort(error)
  }

  signal (): AbortSignal {
    if (this.controller === null) {
      // What happened before this first read is replayed: the new signal
      // says what cancellation() says for a request without one.
      const replayed = this.cancellation()
      const controller = new AbortController()
      setMaxListeners(SIGNAL_LISTENER_LIMIT, controller.signal)
      this.controller = controller
      if (replayed !== undefined) controller.abort(replayed)
    }
    return this.controller.signal
  }

  /**
   * Aborts the signal if it exists and is not aborted yet, and the bound
   * calls. The reason is kept even with nothing to stop: a response cut
   * after this (an error or a crash after the headers, the deadline) is the
   * server's doing, not a hang-up, and a signal first read later says why.
   */
  abort (reason: unknown): void {
    this.reason ??= reason
    this.abortWith(() => reason)
  }

  /**
   * Aborts a live signal, and the bound calls, with the reason `create`
   * builds. The reason is built only when there is something to stop: most
   * requests never read their signal, and building an error per response was
   * half of the plugin's cost per request (bench/README.md).
   */
  private abortWith (create: () => unknown): void {
    const controller = this.controller
    const live = controller !== null && !controller.signal.aborted
    if (!live && (this.calls === null || this.calls.size === 0)) return
    const reason = create()
    this.reason ??= reason
    this.record(reason)
    if (live) controller.abort(reason)
    this.cancelCalls(reason)
  }

  /**
   * Why work bound to this request now must not start, or undefined: the
   * signal's reason, or what the signal would say, without creating it.
   */
  cancellation (): unknown {
    const reason = this.pendingCancellation()
    // Handed out to cancel work (a signal born aborted, a bound call failed
    // at once): a rejection with it is the plugin's doing too.
    if (reason !== undefined) this.record(reason)
    return reason
  }

  private pendingCancellation (): unknown {
    const controller = this.controller
    if (controller !== null) return controller.signal.aborted ? controller.signal.reason : undefined
    if (this.reason !== undefined) return this.reason
    if (this.phase !== null) return ClientDisconnectedError.create(this.phase)
    if (this.responded && this.runtime.abortOnResponse) return ResponseSentError.create()
    return undefined
  }

  /**
   * Marks a reason work is cancelled with as the plugin's own, so that a
   * rejection with it that nobody handles is not fatal (lib/shutdown/cancellations.ts).
   * Only ever called with something to cancel: never on a request that
   * aborts nothing.
   */
  private record (reason: unknown): void {
    recordCancellation(reason, this.reply.request.id, this.runtime)
  }

  /**
   * Whether the plugin's own answer to this request (a crash's 500, the
   * deadline's 503) may say `Connection: close`: not while requests
   * pipelined behind it still wait for theirs (lib/shutdown/graceful-close.ts).
   */
  endsConnection (): boolean {
    return this.runtime.close?.endsConnection(this) ?? true
  }

  /**
   * An upstream call starts in this request's context: counted as bound.
   * Returns why it must fail at once (the request is over; that counts and is
   * published as a cancellation, docs/events.md), or undefined: bind it.
   */
  admitCall (client: UpstreamClient): unknown {
    this.runtime.counters.boundCall(client)
    const reason = this.cancellation()
    if (reason !== undefined) this.callCancelled(reason, client)
    return reason
  }

  bind (work: BoundWork): void {
    (this.calls ??= new Set()).add(work)
  }

  unbind (work: BoundWork): void {
    this.calls?.delete(work)
  }

  private cancelCalls (reason: unknown): void {
    const calls = this.calls
    if (calls === null) return
    this.calls = null
    for (const work of calls) {
      if (work.cancel(reason)) this.callCancelled(reason, work.client)
    }
  }

  /** One upstream call of this request was cancelled: counted, and published on `fastify-hangup:cancel`. */
  private callCancelled (reason: unknown, client: UpstreamClient): void {
    this.runtime.counters.cancelled(reason, client)
    publishCancel(this.reply.request, reason, client)
  }

  /** The response closed: finished, or cut because the client went away. */
  onClose (): void {
    this.settle(false)
  }

  /** HTTP/2: the client reset the stream (RST_STREAM, any code) before the response ended. */
  onClientReset (): void {
    this.settle(true)
  }

  private settle (clientReset: boolean): void {
    if (this.responseClosed) return
    this.responseClosed = true
    this.runtime.counters.inflight--
    this.runtime.close?.delete(this)
    const res = this.res
    // A finished response is never a disconnect, even if the socket dies
    // while flushing (docs/internals.md#finished-response). `writableEnded`, not `writableFinished`:
    // HTTP/2 reports a reset stream as finished (docs/internals.md#http2-finished). Unless it
    // never left its pipelined queue: its client did not get it.
    if (res.writableEnded && (this.req.httpVersionMajor === 2 || !undelivered(res))) {
      this.responded = true
      if (this.runtime.abortOnResponse) this.abortWith(ResponseSentError.create)
      return
    }
    // Cut after the request was aborted (handler timeout with headers sent,
    // an error or a crash after headers, the deadline): the server ended it.
    if (this.controller?.signal.aborted === true || this.reason !== undefined) return
    const phase = phaseOf(this.req, res)
    if (phase === 'response' && !clientReset && (this.failed || !clientEnded(this.req, res))) {
      this.abortWith(ResponseDestroyedError.create)
      return
    }
    this.disconnected(phase)
  }

  /**
   * Called where an error may be the aftermath of a hang-up Node has not yet
   * reported through `'close'` (an HTTP/2 upload reset can reach the body
   * parser first). Returns true when the client is gone.
   */
  clientGone (): boolean {
    if (this.phase !== null) return true
    if (this.responseClosed || !responseIsDead(this.req, this.res)) return false
    this.onClose()
    return this.phase !== null
  }

  private disconnected (phase: DisconnectPhase): void {
    this.phase = phase
    this.runtime.counters.disconnected(phase)
    // Abort synchronously: on HTTP/1 the response's 'close' comes before the
    // request's 'error', so whatever the handler sees next is classified by
    // this signal (docs/internals.md#error-by-state).
    this.abortWith(() => ClientDisconnectedError.create(phase))
    if (this.timeoutCleanup !== null) this.timeoutCleanup()
    if (this.runtime.logLevel !== 'silent') {
      this.log[this.runtime.logLevel]({ phase, statusCode: 499 }, 'client disconnected')
    }
    // Last: subscribers see the signal aborted and the calls cancelled.
    publishHangup(this.reply.request, phase)
  }
}

/** The one `'close'` listener per response; `this` is the response. */
export function onResponseClose (this: RawResponse): void {
  this[kLifecycle]?.onClose()
}

/**
 * The `'close'` listener of a pipelined HTTP/1.1 request whose response is
 * still queued behind another. Node destroys such requests when the socket
 * closes but never emits `'close'` on their queued responses, so the
 * response's listener alone would miss the hang-up. The request's `'close'`
 * also fires once a body has been read (docs/internals.md#request-close): only a dead socket
 * counts.
 */
export function onQueuedRequestClose (this: RawRequest): void {
  const lifecycle = this[kLifecycle] as RequestLifecycle
  if (responseIsDead(this, lifecycle.res)) lifecycle.onClose()
}

/**
 * The `'aborted'` listener of an HTTP/2 request. Node emits it from
 * `closeStream()` (lib/internal/http2/core.js) while the response is not
 * ended, both for a RST_STREAM the client sent and for the server's own
 * `destroy()`; only the latter runs inside `_destroy`, with the stream
 * already `destroyed`. The client's reset is taken here, whatever its code:
 * after a NO_ERROR reset `onStreamClose` destroys the stream only once its
 * readable side has ended, and then with NO_ERROR, the code of the server's
 * own destroy(), so the stream's 'close' cannot tell the two apart (Node 20,
 * 22, 24 and 26 read the same).
 */
export function onStreamAborted (this: RawRequest): void {
  const lifecycle = this[kLifecycle] as RequestLifecycle
  if (lifecycle.res.stream?.destroyed === false) lifecycle.onClientReset()
}

/**
 * Starts watching a response. A client that left before this ran (the socket
 * was destroyed while Fastify routed) is recorded at once (docs/internals.md#early-hangup).
 */
export function watchResponse (lifecycle: RequestLifecycle): void {
  const { req, res } = lifecycle
  lifecycle.runtime.counters.inflight++
  lifecycle.runtime.close?.add(lifecycle)
  res[kLifecycle] = lifecycle
  // First of the response's 'close' listeners, though added after the
  // server's own: a tracer that ends the request's span on that 'close' (the
  // listener @opentelemetry/instrumentation-http adds as the request is
  // emitted) still has it open when the hang-up is published (docs/events.md).
  res.prependListener('close', onResponseClose)
  // HTTP/2 first: its response's `socket` is a Proxy built on first read.
  if (req.httpVersionMajor === 2) {
    req[kLifecycle] = lifecycle
    req.on('aborted', onStreamAborted)
  } else if (res.socket === null) {
    req[kLifecycle] = lifecycle
    req.on('close', onQueuedRequestClose)
  }
  if (responseIsDead(req, res)) lifecycle.onClose()
}
