import { EventEmitter } from 'node:events'
import { Server as NetServer } from 'node:net'
import { FOREIGN } from './table.js'

/**
 * The lookups of the entries of lib/internals/table.ts: each finds one
 * unexported detail of Fastify, pino or Node, or says it is not there.
 *
 * Fastify's request symbols: for a route with a handler timeout (Fastify >=
 * 5.10) Fastify creates an AbortController before `onRequest`, under the
 * request symbol `fastify.request.signal`, aborts it with
 * `FST_ERR_HANDLER_TIMEOUT` when the timer fires, and also on the request's
 * `'close'` event (a listener kept under `fastify.request.onAbort`). That
 * listener is fastify/fastify#6725: `'close'` fires as soon as a body has
 * been read, so it aborts every POST and also clears the timeout timer.
 * Fastify's own getter does the same for a hook that reads `request.signal`
 * before this plugin's `onRequest` runs. Fastify exports none of these
 * symbols and `fastify/lib/symbols.js` is no public entry point, so they are
 * learnt at register time: Fastify's getter (the `signal` accessor of the
 * app's request class) is run once on a probe object and the keys it wrote
 * are read back.
 */
export type Getter = (this: unknown) => unknown

/** Marks the getters this plugin installs, so the search skips them. */
export const kHangupGetter = Symbol('fastify-hangup.getter')

/** What the plugin learnt of Fastify's `request.signal` machinery (docs/internals.md#fastify-controller). */
export interface RequestInternals {
  /** Fastify's own `signal` getter, if the request prototype chain has one. */
  readonly getter: Getter | undefined
  /** Where Fastify keeps a request's AbortController; if not found, a private symbol that no request carries. */
  readonly controller: symbol
  /** Where Fastify keeps its `'close'` listener (which also clears the timer); if not found, as `controller`. */
  readonly onAbort: symbol
}

/** The slots of a Fastify whose symbols were not found: no request carries them, so there is nothing to adopt. */
export const NO_CONTROLLER = Symbol('fastify-hangup.no-controller')
export const NO_ON_ABORT = Symbol('fastify-hangup.no-onAbort')

/**
 * Learns Fastify's getter from a request prototype chain (the app's request
 * class's prototype, or a request's), and the symbols it writes from a probe.
 * A Fastify without the getter (before `request.signal`), a getter that
 * throws on the probe, or one that writes neither symbol leaves placeholders.
 */
export function learnRequestInternals (proto: object | null): RequestInternals {
  const getter = findFastifyGetter(proto)
  const notFound = { getter, controller: NO_CONTROLLER, onAbort: NO_ON_ABORT }
  if (getter === undefined) return notFound
  const probe = { raw: new EventEmitter() }
  try {
    getter.call(probe)
  } catch {
    return notFound
  }
  probe.raw.removeAllListeners()
  return {
    getter,
    controller: findSymbol(probe, FOREIGN.requestController.name) ?? NO_CONTROLLER,
    onAbort: findSymbol(probe, FOREIGN.requestOnAbort.name) ?? NO_ON_ABORT
  }
}

/** The app's request class (`fastify.Request`), or undefined. */
export function requestClassOf (app: object): { readonly prototype: object } | undefined {
  return findInherited<{ readonly prototype: object }>(app, FOREIGN.requestClass.name)
}

/** What an app's requests get from Fastify's signal machinery, learnt from its request class. */
export function requestInternalsOf (app: object): RequestInternals {
  return learnRequestInternals(requestClassOf(app)?.prototype ?? null)
}

/** The parts of Node's HTTP/HTTP2 servers a graceful close stops. */
export interface ListeningServer {
  close (callback: () => void): unknown
}

/**
 * The servers of Fastify's extra bindings (`listen({ host: 'localhost' })`
 * binds 127.0.0.1 and ::1), or undefined if this Fastify keeps them
 * elsewhere. An encapsulated instance inherits the root's list.
 */
export function serverBindings<T extends ListeningServer> (app: object): T[] | undefined {
  return findInherited<T[]>(app, FOREIGN.serverBindings.name)
}

/** pino's loggers carry this registered symbol (pino/lib/symbols.js): the mark of a logger that should have a `pino.stream`. */
const kPinoSerializers = Symbol.for('pino.serializers')

export function isPino (log: object): boolean {
  return kPinoSerializers in log
}

/** A pino logger's destination, or undefined (another logger, or a pino that keeps it elsewhere). */
export function pinoStream<T> (log: object): T | undefined {
  return findInherited<T>(log, FOREIGN.pinoStream.name)
}

/** Whether a server's listener can be stopped with `net.Server#close` (see `stopListening`). */
export function isNetServer (server: unknown): boolean {
  return server instanceof NetServer
}

/**
 * Stops a server's listener; `callback` runs once every connection is gone.
 * An HTTP/1 server gets `net.Server#close`, not its own `close()`: since Node
 * 19 that also closes every idle connection at once (nodejs/node#41578),
 * which resets the requests clients are sending on them. A server that is no
 * `net.Server` (a `serverFactory`'s) gets its own `close()`.
 */
export function stopListening (server: ListeningServer, callback: () => void): void {
  if (isNetServer(server)) {
    NetServer.prototype.close.call(server as unknown as NetServer, callback)
  } else {
    server.close(callback)
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

/**
 * The value every copy of the package in the process shares under `key`
 * (lib/internals/table.ts, PROCESS_SINGLETONS), created by the first copy
 * that asks.
 */
export function processSingleton<T> (key: symbol, create: () => T): T {
  const slots = globalThis as unknown as Record<symbol, T | undefined>
  slots[key] ??= create()
  return slots[key]
}

/** A process-wide binding and the number of apps that hold it. */
interface SharedBinding<T> {
  users: number
  readonly binding: T
}

/**
 * A process-wide binding every app (and every copy of the package) shares
 * under `key` (PROCESS_SINGLETONS): installed by the first app that asks,
 * uninstalled when the last one releases it, so two apps bind each call
 * once and one app's close does not undo another's binding. Returns the
 * release, to call once (from the app's onClose).
 */
export function acquireShared<T> (key: symbol, install: () => T, uninstall: (binding: T) => void): () => void {
  const slots = globalThis as unknown as Record<symbol, SharedBinding<T> | undefined>
  const shared = slots[key] ??= { users: 0, binding: install() }
  shared.users++
  return function release (): void {
    if (--shared.users > 0) return
    delete slots[key]
    uninstall(shared.binding)
  }
}
