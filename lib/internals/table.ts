/**
 * Everything fastify-hangup relies on that Fastify, pino and Node do not
 * export, and the process-wide singletons it keeps under `Symbol.for` keys:
 * one entry each, saying what it is, where it comes from, and what a user
 * loses without it.
 *
 * The lookups are in lib/internals/lookup.ts. At register time the plugin
 * checks the ones it can (lib/internals/check.ts) and logs at `warn`, once
 * per app, the `without` of each one it did not find; test/internals.test.ts
 * learns each from a real Fastify app, request and pino logger and fails by
 * name when an upgrade renames one.
 */

/** A detail of another package (or of Node) that is not part of its public API. */
export interface ForeignInternal {
  readonly owner: 'fastify' | 'pino' | 'node'
  /** The symbol's description, or the member's name. */
  readonly name: string
  /** What it is. */
  readonly what: string
  /** Where it comes from, and how the plugin finds it. */
  readonly source: string
  /** What the user loses when it is not found: the register-time warning says this. */
  readonly without: string
}

export const FOREIGN = {
  requestClass: {
    owner: 'fastify',
    name: 'fastify.Request',
    what: 'the app\'s request class, whose prototype chain holds Fastify\'s own `request.signal` getter',
    source: '`kRequest` of fastify/lib/symbols.js, an own property of the root instance and of each encapsulated one (fastify.js, lib/plugin-override.js); found by its description, up the instance\'s prototype chain',
    without: 'Fastify\'s signal machinery cannot be learnt: a route\'s handlerTimeout does not abort request.signal or its bound upstream calls, and a hook that reads request.signal before this plugin\'s onRequest gets a signal that never aborts'
  },
  requestController: {
    owner: 'fastify',
    name: 'fastify.request.signal',
    what: 'where Fastify keeps a request\'s AbortController: made by its `request.signal` getter, and before `onRequest` for a route with `handlerTimeout` (Fastify >= 5.10)',
    source: '`kRequestSignal` of fastify/lib/symbols.js, written by the `signal` getter of fastify/lib/request.js; learnt by running that getter on a probe object at register time (docs/internals.md#fastify-controller)',
    without: 'Fastify\'s own controller is not adopted: a route\'s handlerTimeout does not abort request.signal or its bound upstream calls, and a hook that reads request.signal before this plugin\'s onRequest gets Fastify\'s signal, which aborts once a POST body has been read (fastify/fastify#6725)'
  },
  requestOnAbort: {
    owner: 'fastify',
    name: 'fastify.request.onAbort',
    what: 'Fastify\'s `\'close\'` listener on the raw request: it aborts Fastify\'s controller and clears the handler-timeout timer',
    source: '`kOnAbort` of fastify/lib/symbols.js, written by the same getter; learnt from the same probe',
    without: 'on a route with handlerTimeout, request.signal aborts once a POST body has been read, and the timeout never fires for it (fastify/fastify#6725)'
  },
  serverBindings: {
    owner: 'fastify',
    name: 'fastify.serverBindings',
    what: 'the servers of an app\'s extra addresses (`listen({ host: \'localhost\' })` binds 127.0.0.1 and ::1)',
    source: '`kServerBindings` of fastify/lib/symbols.js, an array set on the root instance (fastify.js) and filled by lib/server.js; found by its description, up the instance\'s prototype chain',
    without: 'a graceful close stops accepting on the main address only: the extra ones (::1 for localhost) take new connections until fastify.close() at the close\'s end'
  },
  pinoStream: {
    owner: 'pino',
    name: 'pino.stream',
    what: 'a pino logger\'s destination',
    source: '`streamSym` of pino/lib/symbols.js (pino exports it as `pino.symbols.streamSym`, but pino is Fastify\'s dependency, not this package\'s); found by its description, up the logger\'s prototype chain (a child logger inherits it). Looked for only on a pino logger: one that carries `Symbol.for(\'pino.serializers\')`',
    without: 'the exit after a graceful close does not wait for log lines written to a destination without flush() (one whose write was replaced, as pm2\'s cluster mode does): the close\'s last lines may be lost'
  },
  netServerClose: {
    owner: 'node',
    name: 'net.Server.prototype.close',
    what: '`net.Server`\'s own `close()`, called on the app\'s HTTP/1 server: it stops the listener without `http.Server#close`\'s `closeIdleConnections()`',
    source: '`node:net`; `http.Server` and `https.Server` extend `net.Server`, and `http.Server#close` closes idle connections before calling it (lib/_http_server.js). Used when the server is a `net.Server`',
    without: 'the app\'s server is no net.Server (a serverFactory): a graceful close uses its own close(), which since Node 19 closes idle keep-alive connections at once (nodejs/node#41578) and resets a request a client is sending on one'
  }
} as const satisfies Record<string, ForeignInternal>

/**
 * A value or mark shared by every copy of the package in the process. The
 * package ships CJS and ESM, and an app may load both (or two versions):
 * each copy has its own module state, so what must be one per process is
 * kept under a `Symbol.for` key. A key names a shape: a change to the value's
 * shape needs a new key (`.v2`), or two versions would read each other's.
 */
export interface ProcessSingleton {
  readonly key: symbol
  /** What it is, and who keeps it. */
  readonly what: string
  /** What would break if each copy kept its own. */
  readonly without: string
}

export const PROCESS_SINGLETONS = {
  requestContext: {
    key: Symbol.for('fastify-hangup.request-context.v1'),
    what: 'the AsyncLocalStorage a request runs in (lib/request/context.ts), a globalThis slot',
    without: 'the one process guard and the interceptor read one copy\'s store: a crash in an app of the other copy would belong to no request, and its calls would not be bound'
  },
  autoBind: {
    key: Symbol.for('fastify-hangup.auto-bind.v1'),
    what: 'the `autoBind` binding of undici\'s global dispatcher: the dispatcher before it, the composed one, how many apps use it (lib/upstream/auto-bind.ts), a globalThis slot',
    without: 'two apps with autoBind from two copies would compose the interceptor twice, binding each call twice, and one\'s release would undo the other\'s binding'
  },
  httpBind: {
    key: Symbol.for('fastify-hangup.http-bind.v1'),
    what: 'the `autoBind` subscription to Node\'s client-request channel: the channel, the subscriber, how many apps use it (lib/upstream/http-client.ts), a globalThis slot',
    without: 'two apps with autoBind from two copies would subscribe twice, binding each node:http call twice, and one\'s release would undo the other\'s binding'
  },
  contextDemand: {
    key: Symbol.for('fastify-hangup.context-demand.v1'),
    what: 'whether an `interceptor()` was made in this process (lib/request/context.ts), a globalThis slot: an app registered after it follows the async context whatever `fatal.asyncContext` says',
    without: 'an interceptor of one copy would not turn the context on for an app of the other copy: on Node 20 and 22 (`asyncContext: \'auto\'` off there) its calls would not be bound'
  },
  cancellationReaders: {
    key: Symbol.for('fastify-hangup.cancellation-readers.v1'),
    what: 'each copy\'s reader of the marks on the reasons the plugin cancelled work with (lib/shutdown/cancellations.ts), a globalThis slot',
    without: 'a copy\'s private fields are its own: the one process guard could not read another copy\'s marks, and that copy\'s cancelled work rejecting with nobody handling it would be fatal'
  },
  guardListener: {
    key: Symbol.for('fastify-hangup.guard-listener'),
    what: 'a mark on the process guard\'s own `uncaughtException` / `unhandledRejection` listeners (lib/shutdown/process-guard.ts)',
    without: 'a guard of another copy or version would count as someone else handling the error, and Node\'s own handling would be skipped for it'
  },
  processGuard: {
    key: Symbol.for('fastify-hangup.process-guard.v1'),
    what: 'the one process guard (lib/shutdown/process-guard.ts), a globalThis slot',
    without: 'each copy would install its own process listeners, and a crash would be handled (and the process closed) twice'
  }
} as const satisfies Record<string, ProcessSingleton>
