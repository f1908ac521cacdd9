import { test, type TestContext } from 'node:test'
import { once } from 'node:events'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { request } from 'undici'
import hangup, { ClientDisconnectedError } from '../lib/index.js'
import { learnRequestInternals } from '../lib/internals/lookup.js'
import { createSignalGetter } from '../lib/request/signal.js'
import { buildApp, listen, NEVER_MS, PATIENCE_MS, until } from './helpers/app.js'
import { captureLogs } from './helpers/logs.js'
import { hangUp, readHead, readUntil, sendRaw } from './helpers/raw-client.js'
import { startUpstream } from './helpers/upstream.js'

for (const method of ['GET', 'POST'] as const) {
  test(`handlerTimeout on a ${method}: Fastify answers 503 and the signal aborts with FST_ERR_HANDLER_TIMEOUT`, async (t: TestContext) => {
    t.plan(4)
    const { app } = await buildApp(t)
    const upstream = await startUpstream({ delayMs: NEVER_MS })
    t.after(() => upstream.close())
    let reason: (Error & { code?: string }) | undefined
    app.route({
      method,
      url: '/',
      handlerTimeout: 100,
      handler: async (req) => {
        const signal = req.signal
        try {
          const res = await request(upstream.url, { signal })
          return await res.body.text()
        } finally {
          reason = signal.reason
        }
      }
    })
    const { url } = await listen(app)
    const res = await request(url, method === 'POST' ? { method, body: '{"a":1}', headers: { 'content-type': 'application/json' } } : {})
    t.assert.strictEqual(res.statusCode, 503)
    await res.body.dump()
    t.assert.strictEqual(reason?.code, 'FST_ERR_HANDLER_TIMEOUT')
    const record = await upstream.closed(1)
    t.assert.strictEqual(record.closedEarly, true)
    // Cancelled, not answered (the upstream works NEVER_MS), and promptly: not at a client timeout.
    t.assert.ok(record.closedAt - record.startedAt < PATIENCE_MS)
  })
}

test('handlerTimeout route whose client leaves: the reason is the hang-up, the timer is cleared, nothing logged above info', async (t: TestContext) => {
  t.plan(4)
  const { app, loud } = await buildApp(t)
  let signal: AbortSignal | undefined
  app.route({
    method: 'POST',
    url: '/',
    handlerTimeout: 200,
    handler: async (req, reply) => {
      signal = req.signal
      await once(reply.raw, 'close')
      return 'late'
    }
  })
  const { port } = await listen(app)
  const socket = await sendRaw(t, port, { method: 'POST', path: '/', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })
  await until(() => signal !== undefined, 'the handler to run')
  t.assert.strictEqual(signal?.aborted, false)
  hangUp(socket)
  await until(() => signal?.aborted === true, 'the abort')
  t.assert.ok(signal?.reason instanceof ClientDisconnectedError)
  // Past the handler timeout: had the timer survived, Fastify would now try to send a 503 and log it.
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.assert.strictEqual((signal?.reason as ClientDisconnectedError).phase, 'handler')
  t.assert.deepStrictEqual(loud(), [])
})

/** An app where a plugin registered before fastify-hangup reads request.signal in its onRequest hook. */
async function appWithEarlyReader (t: TestContext): Promise<{ app: FastifyInstance, early: () => AbortSignal | undefined }> {
  const app = Fastify()
  t.after(() => app.close())
  let early: AbortSignal | undefined
  await app.register(fp(async (instance) => {
    instance.addHook('onRequest', async (req) => { early = req.signal })
  }))
  await app.register(hangup)
  return { app, early: () => early }
}

test('a hook registered before the plugin that reads request.signal: its controller is adopted, POST is not aborted', async (t: TestContext) => {
  t.plan(3)
  const { app, early } = await appWithEarlyReader(t)
  const upstream = await startUpstream({ delayMs: 30 })
  t.after(() => upstream.close())
  app.post('/', async (req) => {
    const res = await request(upstream.url, { signal: req.signal, method: 'POST', body: JSON.stringify(req.body) })
    return { body: await res.body.text(), same: req.signal === early(), aborted: req.signal.aborted }
  })
  const { url } = await listen(app)
  const res = await request(url, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } })
  t.assert.strictEqual(res.statusCode, 200)
  t.assert.deepStrictEqual(await res.body.json(), { body: 'done', same: true, aborted: false })
  t.assert.strictEqual((await upstream.closed(1)).bodyBytes, 7)
})

test('an adopted early controller still aborts on a hang-up', async (t: TestContext) => {
  t.plan(2)
  const { app, early } = await appWithEarlyReader(t)
  app.get('/', async (_req, reply) => { await once(reply.raw, 'close'); return 'x' })
  const { port } = await listen(app)
  const socket = await sendRaw(t, port, { path: '/' })
  await until(() => app.hangup.stats().inflight === 1, 'the request')
  hangUp(socket)
  await until(() => early()?.aborted === true, 'the abort')
  t.assert.ok(early()?.reason instanceof ClientDisconnectedError)
  t.assert.strictEqual((early()?.reason as ClientDisconnectedError).phase, 'handler')
})

test('routes of a context registered before the plugin are followed too (Fastify applies hooks at ready)', async (t: TestContext) => {
  t.plan(2)
  const app = Fastify()
  t.after(() => app.close())
  await app.register(async (early) => {
    early.get('/early', async (req) => ({ aborted: req.signal.aborted, tracked: app.hangup.stats().inflight }))
  })
  await app.register(hangup)
  const res = await app.inject('/early')
  t.assert.strictEqual(res.statusCode, 200)
  t.assert.deepStrictEqual(res.json(), { aborted: false, tracked: 1 })
})

test('a Fastify without a signal getter of its own gets a stable signal that never aborts', (t: TestContext) => {
  t.plan(4)
  const internals = learnRequestInternals({})
  const getter = createSignalGetter(internals)
  const request = Object.create({}) as Record<symbol | string, unknown>
  const { kLifecycle } = require('../lib/request/lifecycle.js') as typeof import('../lib/request/lifecycle.js')
  request[kLifecycle] = null
  const first = getter.call(request as never)
  t.assert.strictEqual(first, getter.call(request as never))
  t.assert.strictEqual(first.aborted, false)
  t.assert.strictEqual(internals.getter, undefined)
  t.assert.strictEqual(internals.controller.description, 'fastify-hangup.no-controller')
})

test('a Fastify getter that throws on the probe leaves no symbols learnt', (t: TestContext) => {
  t.plan(3)
  const proto = Object.defineProperty({}, 'signal', { get () { throw new Error('needs a real request') } })
  const internals = learnRequestInternals(proto)
  t.assert.strictEqual(typeof internals.getter, 'function')
  t.assert.strictEqual(internals.controller.description, 'fastify-hangup.no-controller')
  t.assert.strictEqual(internals.onAbort.description, 'fastify-hangup.no-onAbort')
})

test('reply.hijack(): the signal still follows the client; a hijacked response that ends is not a hang-up', async (t: TestContext) => {
  t.plan(4)
  const { app, loud } = await buildApp(t)
  let sse: AbortSignal | undefined
  app.get('/sse', async (req, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
    reply.raw.write('data: 1\n\n')
    sse = req.signal
  })
  app.get('/done', async (_req, reply) => {
    reply.hijack()
    reply.raw.end('hijacked')
  })
  const { url, port } = await listen(app)
  t.assert.strictEqual(await (await request(url + '/done')).body.text(), 'hijacked')
  const socket = await sendRaw(t, port, { path: '/sse' })
  // The head and the first event's first byte.
  await readUntil(socket, (headLength) => headLength + 1)
  hangUp(socket)
  await until(() => sse?.aborted === true, 'the SSE signal to abort')
  t.assert.strictEqual((sse?.reason as ClientDisconnectedError).phase, 'response')
  t.assert.deepStrictEqual(app.hangup.stats().disconnects, { upload: 0, handler: 0, response: 1 })
  t.assert.deepStrictEqual(loud(), [])
})

for (const abortOnError of [true, false]) {
  test(`an error after the headers were sent (abortOnError: ${String(abortOnError)}): Fastify cuts the response, and that is no hang-up`, async (t: TestContext) => {
    t.plan(5)
    const { app, logs } = await buildApp(t, { abortOnError, fatal: false })
    let signal: AbortSignal | undefined
    app.get('/lazy', async (_req, reply) => {
      reply.raw.writeHead(200, { 'content-type': 'text/plain' })
      reply.raw.write('partial')
      throw new Error('failed after the headers')
    })
    app.get('/read', async (req, reply) => {
      signal = req.signal
      reply.raw.writeHead(200, { 'content-type': 'text/plain' })
      reply.raw.write('partial')
      throw new Error('failed after the headers')
    })
    const { url } = await listen(app)
    for (const path of ['/lazy', '/read']) {
      // The client stays; it sees the headers, then a cut.
      const res = await request(url + path)
      await t.assert.rejects(res.body.text())
    }
    await until(() => app.hangup.stats().inflight === 0, 'both responses to close')
    t.assert.deepStrictEqual(app.hangup.stats().disconnects, { upload: 0, handler: 0, response: 0 })
    t.assert.deepStrictEqual(logs.filter((l) => l.msg === 'client disconnected'), [])
    // With abortOnError the signal has the error; without it, the cut itself aborts it.
    const reason = signal?.reason as { code?: string, message?: string } | undefined
    t.assert.strictEqual(abortOnError ? reason?.message : reason?.code, abortOnError ? 'failed after the headers' : 'FST_HANGUP_RESPONSE_DESTROYED')
  })
}

test('bad input: garbage, a truncated body and a hang-up mid-headers crash nothing and log nothing above info', async (t: TestContext) => {
  t.plan(4)
  const { stream, lines, above } = captureLogs()
  const app = Fastify({ logger: { level: 'trace', stream } })
  t.after(() => app.close())
  await app.register(hangup)
  app.post('/', async (req) => ({ got: req.body, aborted: req.signal.aborted }))
  const { port } = await listen(app)

  const garbage = await sendRaw(t, port, 'NOT HTTP AT ALL\r\n\x00\x01\x02\r\n\r\n')
  const answer = await readHead(garbage)
  t.assert.match(answer.head, /^HTTP\/1\.1 400/)
  hangUp(garbage)

  const midHeaders = await sendRaw(t, port, 'POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-ty')
  hangUp(midHeaders)

  const truncated = await sendRaw(t, port, { method: 'POST', path: '/', headers: { 'content-type': 'application/json', 'content-length': 100 }, body: '{"a":' })
  await until(() => app.hangup.stats().inflight === 1, 'the truncated request to arrive')
  hangUp(truncated)
  await until(() => app.hangup.stats().inflight === 0, 'the truncated request to close')

  t.assert.deepStrictEqual(app.hangup.stats().disconnects, { upload: 1, handler: 0, response: 0 })
  // The server still serves.
  const ok = await request(`http://127.0.0.1:${port}/`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } })
  t.assert.deepStrictEqual(await ok.body.json(), { got: { a: 1 }, aborted: false })
  t.assert.deepStrictEqual(above(30), [], JSON.stringify(lines.filter((l) => l.level > 30)))
})

test('a Fastify getter that keeps its controller elsewhere leaves placeholders that no request carries', (t: TestContext) => {
  t.plan(3)
  const proto = Object.defineProperty({}, 'signal', { get () { return new AbortController().signal } })
  const internals = learnRequestInternals(proto)
  t.assert.strictEqual(typeof internals.getter, 'function')
  t.assert.strictEqual(internals.controller.description, 'fastify-hangup.no-controller')
  t.assert.strictEqual(internals.onAbort.description, 'fastify-hangup.no-onAbort')
})
