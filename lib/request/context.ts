import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks'
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

/**
 * Whether `enterWith()` lasts only until the callback that calls it returns.
 * With AsyncContextFrame (the default from Node 24, and Node 22 with
 * `--experimental-async-context-frame`) every callback Node makes (an HTTP
 * parser's, a timer's, a tick's) restores on return the frame it found:
 * entering a request's context in its `onRequest` hook then covers the rest
 * of that request's synchronous processing and whatever it schedules, as
 * `run()` does, with one frame instead of two (`run()` builds a second one to
 * leave). With the async_hooks implementation (Node 20 and 22) the store
 * sticks to the current async resource, the connection's parser, and would
 * leak into the next request on the connection: `run()` there.
 *
 * Found by behaviour, not by version, with a storage of its own that is
 * disabled at once: on async_hooks, enabling the shared one would cost every
 * app in the process, with or without a context.
 */
export function enterIsScoped (): boolean {
  const probe = new AsyncLocalStorage<object>()
  const resource = new AsyncResource('fastify-hangup.probe')
  const mark = {}
  resource.runInAsyncScope(() => probe.enterWith(mark))
  const scoped = resource.runInAsyncScope(() => probe.getStore()) !== mark
  probe.disable()
  return scoped
}

/** Where `enterWith()` is scoped: one frame, and a request already entered costs a read. */
export function enterByFrame (lifecycle: RequestLifecycle, next: () => void): void {
  if (requestContext.getStore() !== lifecycle) requestContext.enterWith(lifecycle)
  next()
}

/** Elsewhere: `run()` (which itself skips a store already entered). */
export function enterByRun (lifecycle: RequestLifecycle, next: () => void): void {
  requestContext.run(lifecycle, next)
}

/** The way to enter for a process whose `enterWith()` is (or is not) scoped to its callback. */
export function chooseEnter (scoped: boolean): typeof enterByRun {
  return scoped ? enterByFrame : enterByRun
}

let scoped: boolean | null = null
let enter: typeof enterByRun | null = null

/**
 * Whether this process runs `AsyncLocalStorage` on AsyncContextFrame, found
 * once. There the context costs a frame per request; on the async_hooks
 * implementation (Node 20, Node 22 without the flag) it costs a hook call
 * for every promise, tick and callback the whole process creates
 * (docs/benchmarks.md measures both).
 */
export function contextIsCheap (): boolean {
  scoped ??= enterIsScoped()
  return scoped
}

/** Whether an `interceptor()` was made in this process, in either copy of the package. */
const contextDemand = processSingleton(PROCESS_SINGLETONS.contextDemand.key, () => ({ demanded: false }))

/**
 * An `interceptor()` finds its calls' request through the context: an app
 * registered after one was made follows the context, as `autoBind` does.
 */
export function demandContext (): void {
  contextDemand.demanded = true
}

/**
 * Whether an app follows the async context: `fatal.asyncContext` as this
 * process applies it (`'auto'`: where the context is cheap), or a binding
 * that needs it (`autoBind`, an `interceptor()` already made).
 */
export function wantsContext (option: boolean | 'auto' | undefined, bindsCalls = false): boolean {
  if (bindsCalls || contextDemand.demanded) return true
  return option === 'auto' ? contextIsCheap() : option === true
}

/**
 * Runs `next` (the rest of the request: Fastify's `done`) in the request's
 * context, the cheapest way this process allows (chosen on first use).
 */
export function enterRequest (lifecycle: RequestLifecycle, next: () => void): void {
  enter ??= chooseEnter(contextIsCheap())
  enter(lifecycle, next)
}
