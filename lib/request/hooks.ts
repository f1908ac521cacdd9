import type { FastifyError, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { enterRequest } from './context.js'
import type { RequestInternals } from '../internals/lookup.js'
import { RequestLifecycle, watchResponse, kLifecycle, type Runtime } from './lifecycle.js'
import type { ProcessGuard } from '../shutdown/process-guard.js'
import { makeGeneric } from '../shutdown/respond.js'

/** Fastify's request with this plugin's private slot (declared with `decorateRequest`). */
export type TrackedRequest = FastifyRequest & {
  [kLifecycle]: RequestLifecycle | null
  [key: symbol]: unknown
}

type Done = (error?: Error | null, payload?: unknown) => void

export interface Hooks {
  onRequest (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void
  onError (request: FastifyRequest, reply: FastifyReply, error: FastifyError, done: () => void): void
  /** Re-enters the request's async context after the body was read (`fatal.asyncContext`). */
  preValidation (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void
  /** Swaps in the generic 500 for a request `fatal.isFatal` escalated. */
  onSend (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: Done): void
}

/** What the hooks do beyond following the request. */
export interface HookOptions {
  readonly abortOnError: boolean
  readonly asyncContext: boolean
  readonly isFatal: ((error: Error, request: FastifyRequest) => boolean) | null
  readonly guard: ProcessGuard | null
}

/**
 * Takes over a controller Fastify already created for this request: the
 * handler-timeout one, or the one an earlier hook made by reading Fastify's
 * getter. Its `'close'` listener on the request is removed (it is the
 * premature abort of fastify/fastify#6725) and kept to clear Fastify's
 * timeout timer if the client leaves.
 */
function adoptFastifyController (request: TrackedRequest, lifecycle: RequestLifecycle, symbols: RequestInternals): void {
  const controller = request[symbols.controller]
  if (controller === undefined || controller === null) return
  lifecycle.adopt(controller as AbortController)
  const onAbort = request[symbols.onAbort]
  if (typeof onAbort === 'function') lifecycle.adoptTimeout(onAbort as () => void)
}

/** A user's `isFatal` that throws says nothing: the error stays an ordinary one. */
function escalates (isFatal: (error: Error, request: FastifyRequest) => boolean, error: Error, request: FastifyRequest): boolean {
  try {
    return isFatal(error, request) === true
  } catch (failure) {
    request.log.error({ err: failure }, 'fatal.isFatal threw; the error is not treated as fatal')
    return false
  }
}

export function createHooks (runtime: Runtime, internals: RequestInternals, options: HookOptions): Hooks {
  const { abortOnError, asyncContext, isFatal, guard } = options

  function onRequest (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const tracked = request as TrackedRequest
    const lifecycle = new RequestLifecycle(reply, runtime)
    tracked[kLifecycle] = lifecycle
    adoptFastifyController(tracked, lifecycle, internals)
    watchResponse(lifecycle)
    // The rest of the request (the hooks, and for a request without a body
    // the handler) runs in this request's async context: whatever it
    // schedules carries the context into an uncaught error.
    if (asyncContext) {
      enterRequest(lifecycle, done)
    } else {
      done()
    }
  }

  /**
   * Reading a body continues in the socket's context (the request's
   * `'data'`/`'end'` events), not the request's: enter it again before
   * validation and the handler. The same two-step entry as
   * @fastify/request-context (nodejs/node#34430).
   */
  function preValidation (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
    // Never null here: this hook and onRequest are added together.
    enterRequest((request as TrackedRequest)[kLifecycle] as RequestLifecycle, done)
  }

  /**
   * An error that follows a hang-up (AbortError, UND_ERR_ABORTED, "fetch
   * failed", ECONNRESET, whatever the upstream client throws) is recognised by
   * this request's state, never by its code (docs/internals.md#error-by-state). It gets status 499
   * so Fastify logs it at `info` and does not count it as a 500; nothing
   * reaches the client, whose socket is gone. An error `fatal.isFatal`
   * chooses goes the way of an uncaught one. Any other error aborts the
   * signal so the request's other upstream calls stop (`abortOnError`).
   */
  function onError (request: FastifyRequest, reply: FastifyReply, error: FastifyError, done: () => void): void {
    const lifecycle = (request as TrackedRequest)[kLifecycle]
    if (lifecycle?.clientGone() === true) {
      reply.code(499)
    } else if (lifecycle != null) {
      // Fastify destroys a response whose headers are out when an error
      // reaches it: that cut is the server's, whatever abortOnError says.
      lifecycle.markFailed()
      if (isFatal !== null && guard !== null && !lifecycle.fatal && escalates(isFatal, error, request)) {
        guard.fatal(error, 'isFatal', lifecycle, false)
      } else if (abortOnError) {
        lifecycle.abort(error)
      }
    }
    done()
  }

  function onSend (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: Done): void {
    const lifecycle = (request as TrackedRequest)[kLifecycle]
    if (lifecycle?.fatal === true) {
      done(null, makeGeneric(reply, 500, lifecycle.endsConnection()))
    } else {
      done(null, payload)
    }
  }

  return { onRequest, onError, preValidation, onSend }
}
