import createError from '@fastify/error'

/** Where the request was when the client went away. */
export type DisconnectPhase = 'upload' | 'handler' | 'response'

/**
 * Abort reasons are created without a stack trace.
 *
 * V8 keeps the frames of an unformatted stack (functions and receivers) alive
 * until `.stack` is read; a reason created inside a per-request closure would
 * then keep the request and reply alive as long as anyone holds the reason
 * (nodejs/node#66192, docs/internals.md#reason-stack). The stack of a disconnect is Node's socket
 * internals anyway: it tells nobody anything.
 */
function withoutStack<T extends Error> (build: () => T): T {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    const error = build()
    // An own `stack` with no frame ("AbortError: message"): @fastify/error
    // captures none when the limit is 0, and Node takes an object without
    // one for a non-error, which an unhandled rejection under
    // --unhandled-rejections=strict (or Node's own crash) only shows as
    // "[object Error]", wrapped, out of reach of lib/shutdown/cancellations.ts. A plain
    // store: Error.captureStackTrace or defineProperty cost about 1 µs here.
    error.stack = `${error.name}: ${error.message}`
    return error
  } finally {
    Error.stackTraceLimit = limit
  }
}

const ClientDisconnectedBase = createError<[DisconnectPhase]>(
  'FST_HANGUP_CLIENT_DISCONNECTED',
  'The client disconnected during the %s phase',
  499
)

/**
 * `request.signal.reason` when the client hung up. 499 is nginx's
 * "Client Closed Request": a status for logs, never written to the client.
 */
export class ClientDisconnectedError extends ClientDisconnectedBase {
  readonly phase: DisconnectPhase

  constructor (phase: DisconnectPhase) {
    super(phase)
    this.name = 'AbortError'
    this.phase = phase
  }

  static create (phase: DisconnectPhase): ClientDisconnectedError {
    return withoutStack(() => new ClientDisconnectedError(phase))
  }
}

const ResponseSentBase = createError(
  'FST_HANGUP_RESPONSE_SENT',
  'The response was sent; work still bound to the request is no longer needed',
  500
)

/** `request.signal.reason` once the response was sent (`abortOnResponse`). */
export class ResponseSentError extends ResponseSentBase {
  constructor () {
    super()
    this.name = 'AbortError'
  }

  static create (): ResponseSentError {
    return withoutStack(() => new ResponseSentError())
  }
}

const ResponseDestroyedBase = createError(
  'FST_HANGUP_RESPONSE_DESTROYED',
  'The response was destroyed by the server before it was complete',
  500
)

/**
 * `request.signal.reason` when the server, not the client, cut a response
 * whose headers were out: Fastify destroys the response when the stream it
 * sends fails mid-body (an upstream that resets or closes early). Nothing
 * more can reach the client, so what is still bound to the request stops,
 * as after a hang-up; but it is not one, and is neither logged nor counted
 * as one (Fastify logs the stream's error itself).
 */
export class ResponseDestroyedError extends ResponseDestroyedBase {
  constructor () {
    super()
    this.name = 'AbortError'
  }

  static create (): ResponseDestroyedError {
    return withoutStack(() => new ResponseDestroyedError())
  }
}

const ServerClosingBase = createError(
  'FST_HANGUP_SERVER_CLOSING',
  'The server is closing and the grace period is over',
  503
)

/**
 * `request.signal.reason` for a request still in flight when a graceful
 * close reaches its deadline: its upstream calls stop, and it gets 503.
 */
export class ServerClosingError extends ServerClosingBase {
  constructor () {
    super()
    this.name = 'AbortError'
  }

  static create (): ServerClosingError {
    return withoutStack(() => new ServerClosingError())
  }
}

/** A bad option passed to `register`. */
export const InvalidOptionError = createError<[string, string, string]>(
  'FST_HANGUP_INVALID_OPTION',
  'fastify-hangup: option "%s" must be %s, received %s',
  500,
  TypeError
)

/** `register` was called twice on the same app (or a child of one that has it). */
export const AlreadyRegisteredError = createError(
  'FST_HANGUP_ALREADY_REGISTERED',
  'fastify-hangup is already registered on this instance or one of its parents',
  500
)
