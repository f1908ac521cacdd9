import { demandContext, requestContext } from '../request/context.js'
import type { BoundWork, RequestLifecycle } from '../request/lifecycle.js'

/**
 * undici's controller of one dispatched request (the handler API of undici 7
 * and 8: `onRequestStart(controller)` ... `controller.abort(reason)`).
 * Declared here, not imported: undici is an optional peer dependency.
 */
export interface DispatchController {
  abort (reason: Error): void
  readonly aborted: boolean
}

/** The handler API of undici 7 and 8 (not the deprecated `onConnect`/`onHeaders` one). */
export interface DispatchHandler {
  onRequestStart? (controller: DispatchController, context: unknown): void
  onRequestUpgrade? (controller: DispatchController, statusCode: number, headers: unknown, socket: unknown): void
  onResponseStart? (controller: DispatchController, statusCode: number, headers: unknown, statusMessage?: string): void
  onResponseData? (controller: DispatchController, chunk: Buffer): void
  onResponseEnd? (controller: DispatchController, trailers: unknown): void
  onResponseError? (controller: DispatchController, error: Error): void
}

export type DispatchFunction = (options: object, handler: DispatchHandler) => boolean

/**
 * What `dispatcher.compose()` takes. Its parameters are `any` on purpose:
 * undici's own `DispatcherComposeInterceptor` type differs between undici 7
 * and 8, and this must be assignable to both without undici's types (an
 * optional peer dependency) in this package's declarations.
 */
export type HangupInterceptor = (dispatch: (options: any, handler: any) => boolean) => (options: any, handler: any) => boolean

/** A controller for a call that fails before undici ever started it. */
function failedController (reason: Error): DispatchController {
  return { abort () {}, aborted: true, reason } as unknown as DispatchController
}

/**
 * One upstream call bound to the request that dispatched it: the request's
 * abort (a hang-up, an error, the response sent, the deadline) aborts the
 * call with the request's reason, whenever it comes — while the call waits in
 * undici's queue (then at its start), for headers, or mid-body. The call is
 * registered with the request itself, not as a listener on its signal, so
 * binding a call creates no AbortController; it is removed when the call
 * ends.
 */
class BoundCall implements DispatchHandler, BoundWork {
  readonly client = 'undici'
  private controller: DispatchController | null = null
  private reason: unknown = undefined

  constructor (
    private readonly lifecycle: RequestLifecycle,
    private readonly handler: DispatchHandler
  ) {
    lifecycle.bind(this)
  }

  cancel (reason: unknown): boolean {
    this.reason = reason
    const controller = this.controller
    if (controller !== null && !controller.aborted) controller.abort(reason as Error)
    return true
  }

  private done (): void {
    this.lifecycle.unbind(this)
  }

  onRequestStart (controller: DispatchController, context: unknown): void {
    this.controller = controller
    this.handler.onRequestStart?.(controller, context)
    // Cancelled while it waited in the pool's queue (nodejs/undici#386): it
    // stops before a byte is written.
    if (this.reason !== undefined && !controller.aborted) controller.abort(this.reason as Error)
  }

  onRequestUpgrade (controller: DispatchController, statusCode: number, headers: unknown, socket: unknown): void {
    this.done()
    this.handler.onRequestUpgrade?.(controller, statusCode, headers, socket)
  }

  onResponseStart (controller: DispatchController, statusCode: number, headers: unknown, statusMessage?: string): void {
    this.handler.onResponseStart?.(controller, statusCode, headers, statusMessage)
  }

  onResponseData (controller: DispatchController, chunk: Buffer): void {
    this.handler.onResponseData?.(controller, chunk)
  }

  onResponseEnd (controller: DispatchController, trailers: unknown): void {
    this.done()
    this.handler.onResponseEnd?.(controller, trailers)
  }

  onResponseError (controller: DispatchController, error: Error): void {
    this.done()
    this.handler.onResponseError?.(controller, error)
  }
}

/**
 * The undici interceptor: `new Agent().compose(interceptor())` (also `Pool`,
 * `Client`). A call dispatched through it from inside a request is bound to
 * that request's `request.signal`; outside any request, or inside
 * `detach()`, it passes through untouched.
 *
 * A request whose response already closed still counts here (unlike for a
 * crash): a call started from its context after a hang-up or after its
 * response (`abortOnResponse`) is work for nobody, and fails at once.
 *
 * Compose it last (outermost), after `retry()` and the like, so it sees each
 * call once, in the caller's context, and its abort ends the retries too.
 */
export function interceptor (): HangupInterceptor {
  // Made by the user, for calls of the apps registered after it: they follow
  // the async context, whatever `fatal.asyncContext` says.
  demandContext()
  return bindingInterceptor()
}

/** The interceptor itself; `autoBind` composes this one (its apps follow the context anyway). */
export function bindingInterceptor (): HangupInterceptor {
  return function hangupInterceptor (dispatch: DispatchFunction): DispatchFunction {
    return function hangupDispatch (options: object, handler: DispatchHandler): boolean {
      const lifecycle = requestContext.getStore()
      if (lifecycle === undefined) return dispatch(options, handler)
      const reason = lifecycle.admitCall('undici')
      if (reason !== undefined) {
        handler.onResponseError?.(failedController(reason as Error), reason as Error)
        return true
      }
      return dispatch(options, new BoundCall(lifecycle, handler))
    }
  }
}

/**
 * Runs `fn` outside the request's binding: upstream calls it starts are not
 * cancelled with the request (audit logs, cache fills, work shared between
 * requests). Also outside the crash tracing: an error thrown there counts as
 * outside any request.
 */
export function detach<T> (fn: () => T): T {
  return requestContext.exit(fn)
}
