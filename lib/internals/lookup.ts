import { EventEmitter } from 'node:events'

/**
 * How this plugin cooperates with Fastify's own `request.signal` machinery.
 *
 * For a route with a handler timeout (Fastify >= 5.10) Fastify creates an
 * AbortController before `onRequest`, under the request symbol
 * `fastify.request.signal`, aborts it with `FST_ERR_HANDLER_TIMEOUT` when the
 * timer fires, and also on the request's `'close'` event (a listener kept
 * under `fastify.request.onAbort`). That listener is fastify/fastify#6725:
 * `'close'` fires as soon as a body has been read, so it aborts every POST
 * and also clears the timeout timer. Fastify's own getter does the same for a
 * hook that reads `request.signal` before this plugin's `onRequest` runs.
 *
 * Fastify exports none of these symbols and `fastify/lib/symbols.js` is no
 * public entry point. So they are learnt from the first request: Fastify's
 * getter (the `signal` accessor further up the request's prototype chain
 * than this plugin's) is run once on a probe object and the keys it wrote are
 * read back. A Fastify version that writes none leaves placeholders that no
 * request carries, and there is then no controller to adopt.
 */
export type Getter = (this: unknown) => unknown

/** Marks the getters this plugin installs, so the search skips them. */
export const kHangupGetter = Symbol('fastify-hangup.getter')

export class FastifySignalInternals {
  /** Fastify's own `signal` getter, if the request prototype chain has one. */
  getter: Getter | undefined
  /**
   * Where Fastify keeps a request's AbortController. Until learnt, or if this
   * Fastify has none, a private symbol that no request ever carries.
   */
  controller: symbol = Symbol('fastify-hangup.no-controller')
  /** Where Fastify keeps its `'close'` listener (which also clears the timer). */
  onAbort: symbol = Symbol('fastify-hangup.no-onAbort')
  private resolved = false

  /** Learns Fastify's getter and symbols from a request object, once. */
  learn (request: object): this {
    if (this.resolved) return this
    this.resolved = true
    this.getter = findFastifyGetter(Object.getPrototypeOf(request))
    if (this.getter === undefined) return this
    const probe = { raw: new EventEmitter() }
    try {
      this.getter.call(probe)
    } catch {
      return this
    }
    probe.raw.removeAllListeners()
    this.controller = findSymbol(probe, 'fastify.request.signal') ?? this.controller
    this.onAbort = findSymbol(probe, 'fastify.request.onAbort') ?? this.onAbort
    return this
  }
}

function findSymbol (target: object, description: string): symbol | undefined {
  return Object.getOwnPropertySymbols(target).find((s) => s.description === description)
}

/**
 * The value a library keeps under a symbol it does not export, found by the
 * symbol's description on `target` or up its prototype chain (where a child
 * logger or an encapsulated Fastify instance inherits it from).
 */
export function findInherited<T> (target: object, description: string): T | undefined {
  for (let owner: object | null = target; owner !== null; owner = Object.getPrototypeOf(owner) as object | null) {
    const slot = findSymbol(owner, description)
    if (slot !== undefined) return (owner as Record<symbol, T | undefined>)[slot]
  }
  return undefined
}

function findFastifyGetter (proto: object | null): Getter | undefined {
  for (let p = proto; p !== null; p = Object.getPrototypeOf(p)) {
    const get = Object.getOwnPropertyDescriptor(p, 'signal')?.get as (Getter & { [kHangupGetter]?: true }) | undefined
    if (get !== undefined && get[kHangupGetter] !== true) return get
  }
  return undefined
}
