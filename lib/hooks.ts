import type { FastifyError, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import type { FastifySignalInternals } from './fastify-internals.js'
import { RequestLifecycle, watchResponse, kLifecycle, type RawRequest, type RawResponse, type Runtime } from './lifecycle.js'

/** Fastify's request with this plugin's private slot (declared with `decorateRequest`). */
export type TrackedRequest = FastifyRequest & {
  [kLifecycle]: RequestLifecycle | null
  [key: symbol]: unknown
}

export interface Hooks {
  onRequest (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void
  onError (request: FastifyRequest, reply: FastifyReply, error: FastifyError, done: () => void): void
}

/**
 * Takes over a controller Fastify already created for this request: the
 * handler-timeout one, or the one an earlier hook made by reading Fastify's
 * getter. Its `'close'` listener on the request is removed (it is the
 * premature abort of fastify/fastify#6725) and kept to clear Fastify's
 * timeout timer if the client leaves.
 */
function adoptFastifyController (request: TrackedRequest, lifecycle: RequestLifecycle, symbols: FastifySignalInternals): void {
  const controller = request[symbols.controller]
  if (controller === undefined || controller === null) return
  lifecycle.adopt(controller as AbortController)
  const onAbort = request[symbols.onAbort]
  if (typeof onAbort === 'function') {
    lifecycle.req.removeListener('close', onAbort as () => void)
    lifecycle.timeoutCleanup = onAbort as () => void
  }
}

export function createHooks (runtime: Runtime, internals: FastifySignalInternals, abortOnError: boolean): Hooks {
  function onRequest (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const tracked = request as TrackedRequest
    const lifecycle = new RequestLifecycle(request.raw as unknown as RawRequest, reply.raw as unknown as RawResponse, request.log, runtime)
    tracked[kLifecycle] = lifecycle
    adoptFastifyController(tracked, lifecycle, internals.learn(request))
    watchResponse(lifecycle)
    done()
  }

  /**
   * An error that follows a hang-up (AbortError, UND_ERR_ABORTED, "fetch
   * failed", ECONNRESET, whatever the upstream client throws) is recognised by
   * this request's state, never by its code (PITFALLS #7). It gets status 499
   * so Fastify logs it at `info` and does not count it as a 500; nothing
   * reaches the client, whose socket is gone. Any other error aborts the
   * signal so the request's other upstream calls stop (`abortOnError`).
   */
  function onError (request: FastifyRequest, reply: FastifyReply, error: FastifyError, done: () => void): void {
    const lifecycle = (request as TrackedRequest)[kLifecycle]
    if (lifecycle !== null) {
      if (lifecycle.clientGone()) {
        reply.code(499)
      } else if (abortOnError) {
        lifecycle.abort(error)
      }
    }
    done()
  }

  return { onRequest, onError }
}
