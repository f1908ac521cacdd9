import { test, type TestContext } from 'node:test'
import { EventEmitter, once } from 'node:events'
import Fastify from 'fastify'
import fp from 'fastify-plugin'
import { request } from 'undici'
import hangup, { ClientDisconnectedError, ResponseDestroyedError } from '../lib/index.js'
import { phaseOf, RequestLifecycle, watchResponse, type RawRequest, type RawResponse, type Runtime } from '../lib/request/lifecycle.js'
import { Counters } from '../lib/stats.js'
import { buildApp, listen, until } from './helpers/app.js'
import { captureLogs } from './helpers/logs.js'
import { closed, connectRaw, hangUp, received, requestText, sendRaw } from './helpers/raw-client.js'

const log = { info () {}, debug () {}, trace () {} } as never

function fakeRuntime (): Runtime {
  return { counters: new Counters(), abortOnResponse: true, logLevel: 'silent', log, close: null }
}

function fakeReq (fields: Partial<RawRequest> = {}): RawRequest {
  return Object.assign(new EventEmitter(), { httpVersionMajor: 1, complete: true, readableEnded: false, socket: { destroyed: false } }, fields) as unknown as RawRequest
}

function fakeRes (fields: Partial<RawResponse> = {}): RawResponse {
  return Object.assign(new EventEmitter(), { writableEnded: false, headersSent: false }, fields) as unknown as RawResponse
}

/** A lifecycle over fake raw objects, through the reply shape it reads. */
function lifecycleOf (req: RawRequest, res: RawResponse, runtime: Runtime): RequestLifecycle {
  return new RequestLifecycle({ raw: res, request: { raw: req, log } } as never, runtime)
}

test('phaseOf: HTTP/1 uses the parser\'s complete, HTTP/2 END_STREAM or a body read to its end', (t: TestContext) => {
  t.plan(6)
  const res = fakeRes()
  t.assert.strictEqual(phaseOf(fakeReq({ complete: false }), res), 'upload')
  t.assert.strictEqual(phaseOf(fakeReq({ complete: true }), res), 'handler')
  t.assert.strictEqual(phaseOf(fakeReq({ complete: false }), fakeRes({ headersSent: true })), 'response')
  t.assert.strictEqual(phaseOf(fakeReq({ httpVersionMajor: 2, complete: true, stream: { endAfterHeaders: true } }), res), 'handler')
  t.assert.strictEqual(phaseOf(fakeReq({ httpVersionMajor: 2, complete: true, stream: { endAfterHeaders: false }, readableEnded: false }), res), 'upload')
  t.assert.strictEqual(phaseOf(fakeReq({ httpVersionMajor: 2, complete: true, readableEnded: true }), res), 'handler')
})

test('clientGone: an error that reaches Fastify before the response\'s close is still recognised as a hang-up', (t: TestContext) => {
  t.plan(8)
  const cases: Array<[string, RawRequest, RawResponse, boolean]> = [
    ['HTTP/2 stream destroyed', fakeReq({ httpVersionMajor: 2, stream: { endAfterHeaders: false } }), fakeRes({ stream: { destroyed: true } }), true],
    ['response destroyed', fakeReq(), fakeRes({ destroyed: true }), true],
    ['socket destroyed', fakeReq({ socket: { destroyed: true } }), fakeRes(), true],
    ['client still there', fakeReq({ socket: null }), fakeRes(), false]
  ]
  for (const [name, req, res, gone] of cases) {
    const runtime = fakeRuntime()
    const lifecycle = lifecycleOf(req, res, runtime)
    t.assert.strictEqual(lifecycle.clientGone(), gone, name)
    t.assert.strictEqual(runtime.counters.snapshot().disconnects.upload + runtime.counters.snapshot().disconnects.handler, gone ? 1 : 0, name)
  }
})

test('clientGone is idempotent and a finished response is never a hang-up', (t: TestContext) => {
  t.plan(4)
  const runtime = fakeRuntime()
  const res = fakeRes({ destroyed: true })
  const lifecycle = lifecycleOf(fakeReq(), res, runtime)
  t.assert.strictEqual(lifecycle.clientGone(), true)
  t.assert.strictEqual(lifecycle.clientGone(), true)
  t.assert.strictEqual(runtime.counters.handler, 1)
  const ended = lifecycleOf(fakeReq(), fakeRes({ destroyed: true, writableEnded: true }), fakeRuntime())
  t.assert.strictEqual(ended.clientGone(), false)
})

test('a client gone before this plugin\'s onRequest ran is recorded at once, and counted once', async (t: TestContext) => {
  t.plan(4)
  const { stream, above } = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream } })
  t.after(() => app.close())
  // An earlier plugin's slow hook: by the time ours runs the socket is gone.
  await app.register(fp(async (instance) => {
    instance.addHook('onRequest', async (req) => {
      if (!req.raw.socket.destroyed) await once(req.raw.socket, 'close')
    })
  }))
  await app.register(hangup)
  let reason: unknown
  app.get('/', async (req) => { reason = req.signal.reason; return 'x' })
  const { port } = await listen(app)
  const socket = await sendRaw(t, port, { path: '/' }, { end: true })
  await closed(socket)
  await until(() => reason !== undefined, 'the handler to run')
  t.assert.ok(reason instanceof ClientDisconnectedError)
  t.assert.deepStrictEqual(app.hangup.stats().disconnects, { upload: 0, handler: 1, response: 0 })
  t.assert.strictEqual(app.hangup.stats().inflight, 0)
  t.assert.deepStrictEqual(above(30), [])
})

test('a response the server cut after the signal aborted (handler timeout with headers sent) is not a hang-up', async (t: TestContext) => {
  t.plan(3)
  const { app, loud } = await buildApp(t)
  app.route({
    method: 'GET',
    url: '/',
    handlerTimeout: 80,
    handler: async (req, reply) => {
      reply.raw.writeHead(200, { 'content-type': 'text/plain' })
      reply.raw.write('partial')
      await new Promise((resolve) => req.signal.addEventListener('abort', resolve))
      return reply
    }
  })
  const { url } = await listen(app)
  const res = await request(url)
  const err = await res.body.text().then(() => null, (e: Error) => e)
  t.assert.ok(err !== null, 'the body was cut')
  await until(() => app.hangup.stats().inflight === 0, 'the response to close')
  t.assert.deepStrictEqual(app.hangup.stats().disconnects, { upload: 0, handler: 0, response: 0 })
  t.assert.ok(loud().every((l) => l.level <= 40), JSON.stringify(loud()))
})

test('endsConnection: with no graceful close tracking the request, the plugin\'s own answer may end its connection', (t: TestContext) => {
  t.assert.strictEqual(lifecycleOf(fakeReq(), fakeRes(), fakeRuntime()).endsConnection(), true)
})

test('watchResponse counts the request in flight until its response closes', (t: TestContext) => {
  t.plan(3)
  const runtime = fakeRuntime()
  const res = fakeRes()
  const lifecycle = lifecycleOf(fakeReq(), res, runtime)
  watchResponse(lifecycle)
  t.assert.strictEqual(runtime.counters.inflight, 1)
  ;(res as unknown as EventEmitter).emit('close')
  ;(res as unknown as EventEmitter).emit('close')
  t.assert.strictEqual(runtime.counters.inflight, 0)
  t.assert.strictEqual(runtime.counters.handler, 1)
})

test('markFatal: the request turns fatal and aborts with the error, whose first reason stays; on a request already over, a signal first read after says the error', (t: TestContext) => {
  t.plan(7)
  const error = new Error('boom')
  const live = lifecycleOf(fakeReq(), fakeRes(), fakeRuntime())
  const signal = live.signal()
  t.assert.strictEqual(live.fatal, false)
  live.markFatal(error)
  t.assert.strictEqual(live.fatal, true)
  t.assert.strictEqual(signal.reason, error)
  live.markFatal(new Error('second'))
  t.assert.strictEqual(signal.reason, error, 'the first reason stays')
  const res = fakeRes({ writableEnded: true })
  const over = lifecycleOf(fakeReq(), res, fakeRuntime())
  watchResponse(over)
  ;(res as unknown as EventEmitter).emit('close')
  t.assert.strictEqual(over.closed, true)
  over.markFatal(error)
  t.assert.strictEqual(over.fatal, true)
  t.assert.strictEqual(over.signal().reason, error)
})

test('markFailed: a response cut mid-body after an error is the server\'s cut, not a hang-up', (t: TestContext) => {
  t.plan(4)
  for (const failed of [false, true]) {
    const runtime = fakeRuntime()
    // The client's FIN is in: without the error, the cut is a hang-up.
    const lifecycle = lifecycleOf(fakeReq({ socket: { destroyed: true, readableEnded: true } }), fakeRes({ headersSent: true }), runtime)
    const signal = lifecycle.signal()
    if (failed) lifecycle.markFailed()
    lifecycle.onClose()
    t.assert.ok(failed ? signal.reason instanceof ResponseDestroyedError : signal.reason instanceof ClientDisconnectedError)
    t.assert.strictEqual(runtime.counters.snapshot().disconnects.response, failed ? 0 : 1)
  }
})

test('adoptTimeout: Fastify\'s close listener leaves the request, and runs only when the client leaves', (t: TestContext) => {
  t.plan(4)
  for (const clientLeaves of [false, true]) {
    const req = fakeReq()
    const res = fakeRes()
    let calls = 0
    const onAbort = (): void => { calls++ }
    req.on('close', onAbort)
    const lifecycle = lifecycleOf(req, res, fakeRuntime())
    lifecycle.adoptTimeout(onAbort)
    t.assert.strictEqual((req as unknown as EventEmitter).listenerCount('close'), 0)
    if (!clientLeaves) Object.assign(res, { writableEnded: true })
    lifecycle.onClose()
    t.assert.strictEqual(calls, clientLeaves ? 1 : 0)
  }
})

test('HTTP/1.1 pipelining: queued requests abort when the client leaves, and complete untouched when it stays', async (t: TestContext) => {
  t.plan(5)
  const { app, loud } = await buildApp(t)
  const signals: AbortSignal[] = []
  app.get<{ Params: { n: string } }>('/:n', async (req) => {
    signals.push(req.signal)
    await new Promise((resolve) => setTimeout(resolve, req.params.n === 'slow' ? 2000 : 10))
    return req.params.n
  })
  const { port } = await listen(app)
  const pipelined = (paths: string[]): string => paths.map((p) => requestText({ path: `/${p}` })).join('')

  // All three answered, in order, none aborted before its response was sent.
  const stays = await connectRaw(t, port)
  const answers = received(stays)
  stays.write(pipelined(['a', 'b', 'c']))
  await until(() => (answers().match(/HTTP\/1\.1 200/g) ?? []).length === 3, 'three pipelined answers')
  hangUp(stays)
  t.assert.match(answers(), /\r\n\r\na[\s\S]*\r\n\r\nb[\s\S]*\r\n\r\nc/)
  t.assert.deepStrictEqual(app.hangup.stats().disconnects, { upload: 0, handler: 0, response: 0 })

  // The client leaves while the first is in its handler and two wait behind it.
  signals.length = 0
  const leaves = await sendRaw(t, port, pipelined(['slow', 'slow', 'slow']))
  await until(() => signals.length === 3, 'three pipelined requests to reach the route')
  hangUp(leaves)
  await until(() => app.hangup.stats().inflight === 0, 'every queued request to be accounted for')
  t.assert.deepStrictEqual(signals.map((s) => s.aborted), [true, true, true])
  t.assert.strictEqual(app.hangup.stats().disconnects.handler, 3)
  t.assert.deepStrictEqual(loud(), [])
})

test('clientGone: an ended HTTP/1.1 response still queued (pipelined) is a hang-up once its client reset the socket, not before; an ended HTTP/2 one never is', (t: TestContext) => {
  t.plan(4)
  const queued = { writableEnded: true, headersSent: true, socket: null, writableLength: 512 }
  const cases: Array<[string, RawRequest, RawResponse, boolean]> = [
    ['queued, socket reset by the client', fakeReq({ socket: { destroyed: true, errored: new Error('read ECONNRESET') } }), fakeRes(queued), true],
    ['queued, socket alive', fakeReq(), fakeRes(queued), false],
    ['delivered (detached, nothing left to write), socket destroyed', fakeReq({ socket: { destroyed: true } }), fakeRes({ ...queued, writableLength: 0 }), false],
    ['HTTP/2, ended', fakeReq({ httpVersionMajor: 2, socket: { destroyed: true } }), fakeRes({ writableEnded: true, stream: { destroyed: true } }), false]
  ]
  for (const [name, req, res, gone] of cases) {
    t.assert.strictEqual(lifecycleOf(req, res, fakeRuntime()).clientGone(), gone, name)
  }
})

test('boundCalls: none before a call is bound, one while it runs, none once it ended or was cancelled', (t: TestContext) => {
  const lifecycle = lifecycleOf(fakeReq(), fakeRes(), fakeRuntime())
  t.assert.strictEqual(lifecycle.boundCalls, 0)
  const work = { client: 'undici' as const, cancel: () => true }
  lifecycle.bind(work)
  t.assert.strictEqual(lifecycle.boundCalls, 1)
  lifecycle.unbind(work)
  t.assert.strictEqual(lifecycle.boundCalls, 0)
  lifecycle.bind(work)
  lifecycle.abort(new Error('stop'))
  t.assert.strictEqual(lifecycle.boundCalls, 0)
})
