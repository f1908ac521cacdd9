import { kHangupGetter, type RequestInternals } from '../internals/lookup.js'
import type { FastifyRequest } from 'fastify'
import type { TrackedRequest } from './hooks.js'
import { kLifecycle } from './lifecycle.js'

const kUntracked = Symbol('fastify-hangup.untracked')

/**
 * Builds the getter that replaces Fastify's `request.signal`.
 *
 * Requests this plugin never saw keep Fastify's own getter: routes of a
 * context created before the plugin was registered, or an `onRequest` hook
 * that runs before this plugin's. The controller such an early read creates
 * is adopted (and its defect removed) once this plugin's hook runs.
 */
export function createSignalGetter (internals: RequestInternals): (this: FastifyRequest) => AbortSignal {
  function getSignal (this: FastifyRequest): AbortSignal {
    const lifecycle = (this as TrackedRequest)[kLifecycle]
    if (lifecycle !== null) return lifecycle.signal()
    const fastifyGetter = internals.getter
    if (fastifyGetter !== undefined) return fastifyGetter.call(this) as AbortSignal
    return untrackedSignal(this as TrackedRequest)
  }
  Object.defineProperty(getSignal, kHangupGetter, { value: true })
  return getSignal
}

/** A Fastify without a getter of its own: one signal per request that never aborts. */
function untrackedSignal (request: TrackedRequest): AbortSignal {
  let controller = request[kUntracked] as AbortController | undefined
  if (controller === undefined) {
    controller = new AbortController()
    request[kUntracked] = controller
  }
  return controller.signal
}
