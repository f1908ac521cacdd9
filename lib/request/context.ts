import { AsyncLocalStorage } from 'node:async_hooks'
import { processSingleton } from '../internals/lookup.js'
import { PROCESS_SINGLETONS } from '../internals/table.js'
import type { RequestLifecycle } from './lifecycle.js'

/**
 * The request an uncaught error belongs to is found through its async
 * context: `AsyncLocalStorage` keeps the store of the request that scheduled
 * a timer, a callback or a promise, and the store is still readable inside
 * `uncaughtException` / `unhandledRejection` listeners (Node 20, 22, 24).
 * That is what `domain` did, without domains (DEP0032).
 *
 * One storage per process, kept under a global symbol: the package ships CJS
 * and ESM, and an app that loads both copies must still have one store for
 * the one process-level handler to read (lib/internals/table.ts).
 */
export const requestContext = processSingleton(PROCESS_SINGLETONS.requestContext.key, () => new AsyncLocalStorage<RequestLifecycle>())

/**
 * The live request of the current async context, or null. A request whose
 * response already closed does not count: a context can outlive its request
 * (a pooled socket first opened by a finished request carries that request's
 * store into every later callback on it), and an error there is not that
 * request's: such an error counts as outside any request.
 */
export function currentRequest (): RequestLifecycle | null {
  const lifecycle = requestContext.getStore()
  return lifecycle === undefined || lifecycle.closed ? null : lifecycle
}
