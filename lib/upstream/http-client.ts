import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { requestContext } from '../request/context.js'
import type { BoundWork, RequestLifecycle } from '../request/lifecycle.js'
import { acquireShared } from '../internals/lookup.js'
import { PROCESS_SINGLETONS } from '../internals/table.js'

/**
 * `http.client.request.created` is published from `ClientRequest`'s
 * constructor, in the caller's async context, before the request has a
 * socket or has written a byte (nodejs/node#55586: Node 22.12 and 23.2 on).
 * Older Node publishes only `http.client.request.start`, once the request is
 * ended and has a socket: its headers (and a reused keep-alive socket's
 * bytes) may already be written, and a streamed upload is not bound until
 * its last chunk. docs/autobind.md says what that misses.
 */
export const CREATED_CHANNEL = 'http.client.request.created'
export const START_CHANNEL = 'http.client.request.start'

/** The channel this Node publishes each client request on first; `version` as in `process.versions.node`. */
export function requestChannel (version: string): typeof CREATED_CHANNEL | typeof START_CHANNEL {
  const [major = 0, minor = 0] = version.split('.').map(Number)
  const created = major > 23 || (major === 23 && minor >= 2) || (major === 22 && minor >= 12)
  return created ? CREATED_CHANNEL : START_CHANNEL
}

/**
 * The parts of `http.ClientRequest` used here. `res` is Node's own field (not
 * in @types/node): the response, once its headers arrived; null before.
 */
interface ClientRequest {
  readonly destroyed: boolean
  readonly writableFinished: boolean
  readonly res?: { readonly complete: boolean, destroy (error: Error): unknown } | null
  on (event: 'error', listener: (this: ClientRequest, error: Error) => void): unknown
  once (event: 'close', listener: () => void): unknown
  destroy (error: Error): unknown
}

/**
 * Destroys the response with the error the request emits, after the
 * caller's own `'error'` listeners. Node would otherwise destroy a response
 * cut mid-body with its own `ECONNRESET` "aborted" (Node 26 gives it the
 * reason as `cause`, Node 20 to 24 nothing), so a body read would reject
 * with an error that neither says why nor is recognised as the plugin's
 * cancellation (lib/shutdown/cancellations.ts). After the caller's
 * listeners, not before: destroying the response first makes it emit
 * `'aborted'` before the request's error, and axios and got would then
 * reject with their own "aborted" errors, which carry no cause (got's has
 * the code ECONNRESET, one of the codes it retries by default). Being a listener, it also keeps a request
 * with no `'error'` listener of its own from throwing the reason inside
 * Node's socket callbacks: the plugin caused that error, it must not end the
 * process.
 */
function destroyResponse (this: ClientRequest, error: Error): void {
  const res = this.res
  if (res != null && !res.complete) res.destroy(error)
}

/** Cancels a client request with `reason`: it errors with it, and so does a response being read. */
function destroyRequest (request: ClientRequest, reason: unknown): void {
  request.on('error', destroyResponse)
  request.destroy(reason as Error)
}

/**
 * Nothing left to cancel, though the request's `'close'` has not come yet.
 * A keep-alive request is marked destroyed when its response ends and emits
 * `'close'` (freeing its socket) a tick later; one whose socket closes after
 * its response (`Connection: close`) emits it once the socket is gone.
 * Destroying either would cancel nothing, and on Node 20 and 22 would emit
 * the reason as an `'error'` after a response the caller already has (the
 * `destroy()` of Node 24.22 and 26 makes the same check itself).
 */
function over (request: ClientRequest): boolean {
  return request.destroyed || (request.writableFinished && request.res?.complete === true)
}

/**
 * A `node:http` / `node:https` client request bound to the request it was
 * made in: the request's abort (a hang-up, an error, the response sent, the
 * handler timeout, the close deadline) destroys it with the request's
 * reason, whether it waits in an agent's queue, uploads, waits for headers
 * or reads the body. It is unbound on its `'close'`, which Node emits once
 * the call is over (response read, error, or destroyed). Nothing is added to
 * the socket: a keep-alive socket goes back to its agent's pool as it came.
 */
class BoundRequest implements BoundWork {
  readonly client = 'http'

  constructor (
    lifecycle: RequestLifecycle,
    private readonly request: ClientRequest
  ) {
    lifecycle.bind(this)
    request.once('close', () => { lifecycle.unbind(this) })
  }

  cancel (reason: unknown): boolean {
    if (over(this.request)) return false
    destroyRequest(this.request, reason)
    return true
  }
}

/**
 * The channel's subscriber: a client request made inside a request (its
 * async context) is bound to it; outside any request, or inside `detach()`,
 * it is left alone, at the cost of one `getStore()`. A request that is over
 * (its signal aborted, or what it would say) destroys the call at once:
 * with the `created` channel, before it has a socket, so it never reaches
 * the upstream.
 */
function onClientRequest (message: unknown): void {
  const lifecycle = requestContext.getStore()
  if (lifecycle === undefined) return
  const request = (message as { request: ClientRequest }).request
  const reason = lifecycle.admitCall('http')
  if (reason !== undefined) {
    destroyRequest(request, reason)
    return
  }
  // eslint-disable-next-line no-new
  new BoundRequest(lifecycle, request)
}

/**
 * `autoBind` for `node:http` / `node:https`: subscribes to the channel Node
 * publishes each client request on. Returns the release: when the last app
 * that asked closes, the subscription ends. `subscribe()`, not
 * `channel(name).subscribe()`: a channel object nothing else holds could be
 * garbage-collected with its subscriber (nodejs/node#42170). One
 * subscription per process (lib/internals/table.ts): two apps with
 * `autoBind`, or both copies of the package (CJS and ESM), bind each call
 * once.
 */
export function bindHttpClients (): () => void {
  return acquireShared(PROCESS_SINGLETONS.httpBind.key, subscribeClientRequests, unsubscribeClientRequests)
}

/**
 * The subscription, with its subscriber: the last app to release it may be
 * of the other copy of the package (CJS / ESM), whose own subscriber is
 * another function.
 */
interface Subscription {
  readonly channel: string
  readonly subscriber: (message: unknown) => void
}

function subscribeClientRequests (): Subscription {
  const subscription = { channel: requestChannel(process.versions.node), subscriber: onClientRequest }
  subscribe(subscription.channel, subscription.subscriber)
  return subscription
}

function unsubscribeClientRequests ({ channel, subscriber }: Subscription): void {
  unsubscribe(channel, subscriber)
}
