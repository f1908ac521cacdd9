import { Server as NetServer } from 'node:net'
import { test, type TestContext } from 'node:test'
import Fastify, { type FastifyBaseLogger } from 'fastify'
import hangup, { interceptor } from '../lib/index.js'
import { missingInternals, warnDegraded } from '../lib/internals/check.js'
import { isNetServer, isPino, learnRequestInternals, pinoStream, requestInternalsOf, serverBindings, stopListening, type ListeningServer } from '../lib/internals/lookup.js'
import { FOREIGN, PROCESS_SINGLETONS } from '../lib/internals/table.js'
import { requestContext } from '../lib/request/context.js'
import { processGuard } from '../lib/shutdown/process-guard.js'
import { listen, until } from './helpers/app.js'
import { captureLogs, WARN } from './helpers/logs.js'
import { received, sendRaw } from './helpers/raw-client.js'

/**
 * Each unexported detail the plugin relies on (lib/internals/table.ts),
 * learnt from a real Fastify app, request and pino logger: a Fastify or pino
 * upgrade that renames or moves one fails the test named after it.
 */

const { requestClass, requestController, requestOnAbort, serverBindings: bindings, pinoStream: stream, netServerClose } = FOREIGN

test(`${requestClass.name}, ${requestController.name}, ${requestOnAbort.name}: learnt at register time, they are the slots a real request uses`, async (t: TestContext) => {
  t.plan(8)
  const app = Fastify()
  t.after(() => app.close())
  const internals = requestInternalsOf(app)
  t.assert.strictEqual(internals.controller.description, requestController.name)
  t.assert.strictEqual(internals.onAbort.description, requestOnAbort.name)
  const seen: Record<string, unknown> = {}
  // No plugin here: Fastify's own getter, on a real request.
  app.get('/', (request, reply) => {
    const slots = request as unknown as Record<symbol, unknown>
    const signal = request.signal
    seen.controller = (slots[internals.controller] as AbortController | undefined)?.signal === signal
    seen.onAbort = request.raw.listeners('close').includes(slots[internals.onAbort] as () => void)
    const fromRequest = learnRequestInternals(Object.getPrototypeOf(request) as object)
    seen.same = fromRequest.controller === internals.controller && fromRequest.onAbort === internals.onAbort && fromRequest.getter === internals.getter
    reply.send('ok')
  })
  // A handler timeout (Fastify >= 5.10): Fastify's controller exists before onRequest, under the same slot.
  app.route({
    method: 'GET',
    url: '/timed',
    handlerTimeout: 60_000,
    onRequest: (request, _reply, done) => {
      seen.timed = (request as unknown as Record<symbol, unknown>)[internals.controller] instanceof AbortController
      done()
    },
    handler: async () => 'ok'
  })
  t.assert.strictEqual((await app.inject('/')).body, 'ok')
  t.assert.strictEqual((await app.inject('/timed')).body, 'ok')
  t.assert.strictEqual(seen.controller, true, 'request.signal is the controller\'s signal')
  t.assert.strictEqual(seen.onAbort, true, 'Fastify\'s close listener')
  t.assert.strictEqual(seen.same, true, 'a real request\'s prototype chain says the same')
  t.assert.strictEqual(seen.timed, true, 'the handler timeout\'s controller')
})

test(`${bindings.name}: the list of servers Fastify's addresses() reads`, async (t: TestContext) => {
  t.plan(3)
  const app = Fastify()
  t.after(() => app.close())
  let fromChild: unknown
  await app.register(async (child) => { fromChild = serverBindings(child) })
  await listen(app)
  const list = serverBindings<ListeningServer & { address (): unknown }>(app)
  t.assert.ok(Array.isArray(list))
  t.assert.strictEqual(fromChild, list, 'an encapsulated instance inherits it')
  // This machine resolves localhost to 127.0.0.1 only: a stand-in for ::1's server.
  const extra = { address: () => ({ address: '::1', family: 'IPv6', port: 1 }), close: (callback: () => void) => callback() }
  list?.push(extra)
  try {
    t.assert.ok(app.addresses().some((address) => typeof address === 'object' && address.address === '::1'))
  } finally {
    list?.pop()
  }
})

test(`${stream.name}: a pino logger's destination, inherited by its children`, async (t: TestContext) => {
  t.plan(5)
  const { stream: destination } = captureLogs()
  const app = Fastify({ logger: { stream: destination } })
  t.after(() => app.close())
  let fromRequest: unknown
  app.get('/', (request, reply) => {
    fromRequest = pinoStream(request.log)
    reply.send('ok')
  })
  await app.inject('/')
  t.assert.strictEqual(isPino(app.log), true)
  t.assert.strictEqual(pinoStream(app.log), destination)
  t.assert.strictEqual(fromRequest, destination, 'a request\'s child logger')
  // Fastify without a logger: no pino, nothing to look for.
  const quiet = Fastify()
  t.after(() => quiet.close())
  t.assert.strictEqual(isPino(quiet.log), false)
  t.assert.strictEqual(pinoStream(quiet.log), undefined)
})

test(`${netServerClose.name}: stops the listener of an HTTP server and leaves its idle keep-alive connection serving`, async (t: TestContext) => {
  t.plan(4)
  const app = Fastify()
  t.after(() => app.close())
  app.get('/', (_request, reply) => { reply.code(204).send() })
  const { port } = await listen(app)
  t.assert.strictEqual(isNetServer(app.server), true)
  const socket = await sendRaw(t, port, { path: '/' })
  const text = received(socket)
  const answers = (): number => text().split('HTTP/1.1 204').length - 1
  await until(() => answers() === 1, 'the first answer')
  let stopped = false
  stopListening(app.server, () => { stopped = true })
  t.assert.strictEqual(app.server.listening, false)
  // http.Server#close would have closed this idle connection at once (nodejs/node#41578).
  socket.write('GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n')
  await until(() => answers() === 2, 'the answer on the idle connection')
  t.assert.strictEqual(stopped, false, 'a connection is still open')
  socket.destroy()
  await until(() => stopped, 'the listener\'s close once the connection is gone')
  t.assert.ok(stopped)
})

test('stopListening: a server that is no net.Server (a serverFactory\'s) gets its own close()', (t: TestContext) => {
  t.plan(2)
  let closedWith: unknown
  const done = (): void => {}
  const server = { close (callback: () => void) { closedWith = callback } }
  stopListening(server, done)
  t.assert.strictEqual(closedWith, done)
  t.assert.strictEqual(isNetServer(server), false)
})

test('the process singletons keep their keys (other copies and versions of the package read them) and hold the live values', async (t: TestContext) => {
  t.plan(8)
  const keys = Object.fromEntries(Object.entries(PROCESS_SINGLETONS).map(([name, entry]) => [name, Symbol.keyFor(entry.key)]))
  t.assert.deepStrictEqual(keys, {
    requestContext: 'fastify-hangup.request-context.v1',
    autoBind: 'fastify-hangup.auto-bind.v1',
    httpBind: 'fastify-hangup.http-bind.v1',
    contextDemand: 'fastify-hangup.context-demand.v1',
    cancellationReaders: 'fastify-hangup.cancellation-readers.v1',
    guardListener: 'fastify-hangup.guard-listener',
    processGuard: 'fastify-hangup.process-guard.v1'
  })
  const slots = globalThis as unknown as Record<symbol, unknown>
  t.assert.strictEqual(slots[PROCESS_SINGLETONS.requestContext.key], requestContext)
  const guard = processGuard()
  t.assert.strictEqual(slots[PROCESS_SINGLETONS.processGuard.key], guard)
  const readers = slots[PROCESS_SINGLETONS.cancellationReaders.key] as unknown[]
  t.assert.ok(Array.isArray(readers) && readers.length >= 1 && readers.every((reader) => typeof reader === 'function'))
  // Making an interceptor marks the demand that both copies read at register.
  interceptor()
  t.assert.deepStrictEqual(slots[PROCESS_SINGLETONS.contextDemand.key], { demanded: true })
  // The guard's listeners carry the mark while an app is ready.
  const marked = (): boolean => process.listeners('unhandledRejection').some((listener) => PROCESS_SINGLETONS.guardListener.key in listener)
  const app = Fastify()
  await app.register(hangup, { fatal: { exit: false, signals: [] } })
  await app.ready()
  t.assert.strictEqual(marked(), true)
  await app.close()
  t.assert.strictEqual(marked(), false)
  t.assert.strictEqual(slots[PROCESS_SINGLETONS.autoBind.key], undefined, 'no app binds the global dispatcher')
})

test('a real Fastify with a pino logger lacks nothing: no warning at register; its requests, behind the plugin\'s getter, still lead to Fastify\'s', async (t: TestContext) => {
  t.plan(4)
  const { stream: destination, above } = captureLogs()
  const app = Fastify({ logger: { stream: destination } })
  t.after(() => app.close())
  const before = requestInternalsOf(app)
  t.assert.deepStrictEqual(missingInternals(app, before), [])
  await app.register(hangup)
  let learnt: ReturnType<typeof learnRequestInternals> | undefined
  app.get('/', (request, reply) => {
    learnt = learnRequestInternals(Object.getPrototypeOf(request) as object)
    reply.send('ok')
  })
  t.assert.strictEqual((await app.inject('/')).body, 'ok')
  t.assert.deepStrictEqual(learnt, before, 'the plugin\'s own getter is skipped')
  t.assert.deepStrictEqual(above(30), [])
})

/** The warning lines of a capture, with what the plugin says it lost. */
function warnings (lines: Array<{ level: number, msg?: string, internals?: unknown }>): Array<{ internals: unknown, msg?: string }> {
  return lines.filter((line) => line.level === WARN).map(({ internals, msg }) => ({ internals, msg }))
}

test('a request signal getter that is not Fastify\'s (its symbols cannot be learnt): one warning at register, saying what is lost', async (t: TestContext) => {
  t.plan(4)
  const { stream: destination, lines } = captureLogs()
  const app = Fastify({ logger: { stream: destination } })
  t.after(() => app.close())
  // Another plugin's `signal` in front of Fastify's, on this app only.
  app.decorateRequest('signal', { getter: () => new AbortController().signal })
  await app.register(async (child) => {
    await child.register(hangup)
  })
  await app.ready()
  const found = warnings(lines)
  t.assert.strictEqual(found.length, 1)
  t.assert.deepStrictEqual(found[0]?.internals, [requestController.name, requestOnAbort.name])
  t.assert.ok(found[0]?.msg?.includes(requestController.without))
  t.assert.ok(found[0]?.msg?.includes('request.signal aborts once a POST body has been read'))
})

test(`an app without Fastify's ${bindings.name} slot: the warning names it and says what the close loses`, async (t: TestContext) => {
  t.plan(2)
  const { stream: destination, lines } = captureLogs()
  const app = Fastify({ logger: { stream: destination } })
  t.after(() => app.close())
  // This instance only; it never listens, the one use Fastify makes of the slot.
  const slot = Object.getOwnPropertySymbols(app).find((symbol) => symbol.description === bindings.name) as symbol
  Reflect.deleteProperty(app, slot)
  await app.register(hangup)
  const found = warnings(lines)
  t.assert.deepStrictEqual(found.map((line) => line.internals), [[bindings.name]])
  t.assert.ok(found[0]?.msg?.includes('take new connections until fastify.close()'))
})

test(`a pino-like logger without ${stream.name}: the warning says the last lines may be lost`, async (t: TestContext) => {
  t.plan(2)
  const warned: Array<{ fields: { internals?: unknown }, message: string }> = []
  const noop = (): void => {}
  const logger = {
    [Symbol.for('pino.serializers')]: {},
    level: 'info',
    info: noop,
    error: noop,
    debug: noop,
    fatal: noop,
    trace: noop,
    silent: noop,
    warn: (fields: { internals?: unknown }, message: string) => { warned.push({ fields, message }) },
    child: () => logger
  }
  const app = Fastify({ loggerInstance: logger as unknown as FastifyBaseLogger })
  t.after(() => app.close())
  await app.register(hangup)
  t.assert.deepStrictEqual(warned.map((w) => w.fields.internals), [[stream.name]])
  t.assert.ok(warned[0]?.message.includes(stream.without))
})

test('missingInternals: what a fake app lacks; no request.signal getter, no pino, an HTTP/2 server are no misses', (t: TestContext) => {
  t.plan(5)
  // An app without Fastify's request class: nothing learnt.
  const none = requestInternalsOf({})
  t.assert.deepStrictEqual(none, learnRequestInternals(null))
  t.assert.deepStrictEqual(missingInternals({ server: new NetServer(), log: {}, initialConfig: {} }, none), [requestClass, bindings])
  t.assert.deepStrictEqual(missingInternals({ server: {}, log: {}, initialConfig: {} }, none), [requestClass, bindings, netServerClose])
  t.assert.deepStrictEqual(missingInternals({ server: {}, log: {}, initialConfig: { http2: true } }, none), [requestClass, bindings])
  // A request class whose chain has no `signal` getter: a Fastify before request.signal, nothing to adopt.
  const app = { server: new NetServer(), log: {}, initialConfig: {}, [Symbol('fastify.Request')]: class {}, [Symbol('fastify.serverBindings')]: [] }
  t.assert.deepStrictEqual(missingInternals(app, requestInternalsOf(app)), [])
})

test('warnDegraded: nothing when nothing is missing; else one line naming each entry and what is lost', (t: TestContext) => {
  t.plan(3)
  const calls: Array<[object, string]> = []
  const log = { warn: (fields: object, message: string) => { calls.push([fields, message]) } }
  warnDegraded(log, [])
  t.assert.strictEqual(calls.length, 0)
  warnDegraded(log, [requestOnAbort, stream])
  t.assert.deepStrictEqual(calls[0]?.[0], { internals: [requestOnAbort.name, stream.name] })
  t.assert.strictEqual(calls[0]?.[1], `fastify-hangup degraded: fastify's ${requestOnAbort.name} not found: ${requestOnAbort.without}; pino's ${stream.name} not found: ${stream.without}`)
})
