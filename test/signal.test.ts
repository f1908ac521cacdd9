import { test, type TestContext } from 'node:test'
import { once } from 'node:events'
import { request } from 'undici'
import type { FastifyRequest } from 'fastify'
import { ClientDisconnectedError } from '../lib/index.js'
import { kLifecycle, type RequestLifecycle } from '../lib/request/lifecycle.js'
import { buildApp, listen, NEVER_MS, PATIENCE_MS, until, within } from './helpers/app.js'
import { hangUp, sendRaw } from './helpers/raw-client.js'
import { startUpstream } from './helpers/upstream.js'

function lifecycleOf (req: FastifyRequest): RequestLifecycle {
  return (req as unknown as Record<symbol, RequestLifecycle>)[kLifecycle]
}

test('a route that never reads request.signal allocates no AbortController', async (t: TestContext) => {
  t.plan(2)
  const { app } = await buildApp(t)
  let created: unknown = 'unset'
  app.get('/', async (req) => {
    await new Promise((resolve) => setImmediate(resolve))
    created = lifecycleOf(req).signalCreated
    return 'ok'
  })
  const res = await app.inject('/')
  t.assert.strictEqual(res.body, 'ok')
  t.assert.strictEqual(created, false)
})

test('a POST with a body is not aborted once the body is read (fastify/fastify#6725)', async (t: TestContext) => {
  t.plan(3)
  const { app, loud } = await buildApp(t)
  app.post('/', async (req) => {
    const signal = req.signal
    await new Promise((resolve) => setTimeout(resolve, 30))
    return { aborted: signal.aborted, got: req.body }
  })
  const { url } = await listen(app)
  const res = await request(url, { method: 'POST', body: JSON.stringify({ a: 1 }), headers: { 'content-type': 'application/json' } })
  t.assert.strictEqual(res.statusCode, 200)
  t.assert.deepStrictEqual(await res.body.json(), { aborted: false, got: { a: 1 } })
  t.assert.deepStrictEqual(loud(), [])
})

test('a first read after the client left returns an already-aborted signal (fastify/fastify#7033)', async (t: TestContext) => {
  t.plan(5)
  const { app, loud } = await buildApp(t)
  let resolveSeen: (signal: AbortSignal) => void
  const seen = new Promise<AbortSignal>((resolve) => { resolveSeen = resolve })
  app.get('/', async (req, reply) => {
    await once(reply.raw, 'close')
    resolveSeen(req.signal)
    return 'too late'
  })
  const { port } = await listen(app)
  const socket = await sendRaw(t, port, { path: '/' })
  await until(() => app.hangup.stats().inflight === 1, 'the request to arrive')
  hangUp(socket)
  const signal = await within(seen, PATIENCE_MS, 'the handler to read the signal')
  t.assert.strictEqual(signal.aborted, true)
  t.assert.ok(signal.reason instanceof ClientDisconnectedError)
  t.assert.strictEqual(signal.reason.phase, 'handler')
  await until(() => app.hangup.stats().inflight === 0, 'inflight to return to 0')
  t.assert.deepStrictEqual(app.hangup.stats().disconnects, { upload: 0, handler: 1, response: 0 })
  t.assert.deepStrictEqual(loud(), [])
})

test('a hang-up is logged once at info with the request id, phase and 499, and its aftermath is not an error', async (t: TestContext) => {
  t.plan(6)
  const { app, logs, loud } = await buildApp(t)
  const upstream = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => upstream.close())
  app.get('/', async (req) => {
    const res = await request(upstream.url, { signal: req.signal })
    return res.body.text()
  })
  const { port } = await listen(app)
  const socket = await sendRaw(t, port, { path: '/' })
  await until(() => upstream.records.length === 0 && app.hangup.stats().inflight === 1, 'the request to reach the route')
  await new Promise((resolve) => setTimeout(resolve, 50))
  hangUp(socket)
  const record = await upstream.closed(1)
  t.assert.strictEqual(record.closedEarly, true)
  await until(() => logs.some((l) => l.msg === 'client disconnected'), 'the hang-up log line')
  await until(() => app.hangup.stats().inflight === 0, 'inflight back to 0')
  const lines = logs.filter((l) => l.msg === 'client disconnected')
  t.assert.strictEqual(lines.length, 1)
  t.assert.strictEqual(lines[0]?.level, 30)
  t.assert.deepStrictEqual([lines[0]?.phase, lines[0]?.statusCode, typeof lines[0]?.reqId], ['handler', 499, 'string'])
  // The handler's rejection (the reason itself, from undici) is logged by Fastify at info with 499, not as a 500.
  const aftermath = logs.filter((l) => l.reqId === lines[0]?.reqId && l.msg !== 'client disconnected' && l.msg !== 'incoming request')
  t.assert.ok(aftermath.every((l) => l.level <= 30 && (l.res as { statusCode?: number } | undefined)?.statusCode !== 500), JSON.stringify(aftermath))
  t.assert.deepStrictEqual(loud(), [])
})

test('any error thrown after a hang-up (whatever its class) is answered as 499 at info, not 500', async (t: TestContext) => {
  t.plan(3)
  const { app, logs, loud } = await buildApp(t)
  app.get('/', async (_req, reply) => {
    await once(reply.raw, 'close')
    const err = new Error('socket hang up') as Error & { code: string }
    err.code = 'ECONNRESET'
    throw err
  })
  const { port } = await listen(app)
  const socket = await sendRaw(t, port, { path: '/' })
  await until(() => app.hangup.stats().inflight === 1, 'the request to arrive')
  hangUp(socket)
  await until(() => logs.some((l) => l.msg === 'socket hang up'), 'Fastify to handle the rejection')
  const line = logs.find((l) => l.msg === 'socket hang up')
  t.assert.strictEqual(line?.level, 30)
  t.assert.strictEqual((line?.res as { statusCode: number }).statusCode, 499)
  t.assert.deepStrictEqual(loud(), [])
})

test('disconnectLogLevel chooses the level of the hang-up line; silent logs none', async (t: TestContext) => {
  for (const level of ['debug', 'silent'] as const) {
    const { app, logs } = await buildApp(t, { disconnectLogLevel: level })
    app.get('/', async (_req, reply) => { await once(reply.raw, 'close'); return 'x' })
    const { port } = await listen(app)
    const socket = await sendRaw(t, port, { path: '/' })
    await until(() => app.hangup.stats().inflight === 1, 'the request to arrive')
    hangUp(socket)
    await until(() => app.hangup.stats().inflight === 0, 'the close')
    const lines = logs.filter((l) => l.msg === 'client disconnected')
    if (level === 'silent') t.assert.strictEqual(lines.length, 0)
    else t.assert.deepStrictEqual(lines.map((l) => l.level), [20])
    await app.close()
  }
})

test('abortOnError: one failing call of a Promise.all fan-out cancels its sibling', async (t: TestContext) => {
  t.plan(5)
  const { app } = await buildApp(t)
  const slow = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => slow.close())
  let reason: unknown
  app.get('/', async (req) => {
    const signal = req.signal
    signal.addEventListener('abort', () => { reason = signal.reason })
    const failing = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 50))
      throw Object.assign(new Error('upstream B failed'), { statusCode: 502 })
    })()
    await Promise.all([request(slow.url, { signal }).then((r) => r.body.text()), failing])
    return 'unreachable'
  })
  const { url } = await listen(app)
  const res = await request(url)
  t.assert.strictEqual(res.statusCode, 502)
  await res.body.dump()
  const record = await slow.closed(1)
  t.assert.strictEqual(record.closedEarly, true)
  // Cancelled, not answered (the upstream works NEVER_MS), and promptly: not at a client timeout.
  t.assert.ok(record.closedAt - record.startedAt < PATIENCE_MS)
  t.assert.strictEqual((reason as Error).message, 'upstream B failed')
  t.assert.strictEqual(app.hangup.stats().disconnects.handler, 0)
})

test('abortOnError: false leaves the sibling running', async (t: TestContext) => {
  t.plan(2)
  const { app } = await buildApp(t, { abortOnError: false, abortOnResponse: false })
  const slow = await startUpstream({ delayMs: 300 })
  t.after(() => slow.close())
  app.get('/', async (req) => {
    const sibling = request(slow.url, { signal: req.signal }).then((r) => r.body.text())
    sibling.catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 20))
    throw new Error('boom')
  })
  const { url } = await listen(app)
  const res = await request(url)
  t.assert.strictEqual(res.statusCode, 500)
  await res.body.dump()
  t.assert.strictEqual((await slow.closed(1)).closedEarly, false)
})

test('abortOnResponse: the loser of a hedged request is cancelled once the response is sent', async (t: TestContext) => {
  t.plan(4)
  const { app } = await buildApp(t)
  const fast = await startUpstream({ delayMs: 20 })
  const slow = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => Promise.all([fast.close(), slow.close()]))
  let reason: (Error & { code?: string }) | undefined
  app.get('/', async (req) => {
    const signal = req.signal
    signal.addEventListener('abort', () => { reason = signal.reason })
    const calls = [fast.url, slow.url].map((u) => request(u, { signal }).then((r) => r.body.text()))
    for (const call of calls) call.catch(() => {})
    return Promise.any(calls)
  })
  const { url } = await listen(app)
  const res = await request(url)
  t.assert.strictEqual(await res.body.text(), 'done')
  const record = await slow.closed(1)
  t.assert.strictEqual(record.closedEarly, true)
  t.assert.strictEqual(reason?.code, 'FST_HANGUP_RESPONSE_SENT')
  t.assert.strictEqual(reason?.name, 'AbortError')
})

test('abortOnResponse: a read after the response closed replays it; false leaves the signal alone', async (t: TestContext) => {
  for (const abortOnResponse of [true, false]) {
    const { app } = await buildApp(t, { abortOnResponse })
    let late: AbortSignal | undefined
    app.get('/', async (req, reply) => {
      reply.raw.once('close', () => { setImmediate(() => { late = req.signal }) })
      return 'ok'
    })
    const { url } = await listen(app)
    await (await request(url)).body.text()
    await until(() => late !== undefined, 'the late read')
    t.assert.strictEqual(late?.aborted, abortOnResponse)
    if (abortOnResponse) t.assert.strictEqual((late?.reason as { code: string }).code, 'FST_HANGUP_RESPONSE_SENT')
    await app.close()
  }
})

test('a normal error (no hang-up) is still a 500 and aborts the signal with that error', async (t: TestContext) => {
  t.plan(3)
  const { app, logs } = await buildApp(t)
  let signal: AbortSignal | undefined
  app.get('/', async (req) => {
    signal = req.signal
    throw new Error('real failure')
  })
  const res = await app.inject('/')
  t.assert.strictEqual(res.statusCode, 500)
  t.assert.strictEqual((signal?.reason as Error).message, 'real failure')
  t.assert.strictEqual(logs.find((l) => l.msg === 'real failure')?.level, 50)
})

test('100 upstream calls on one signal raise no MaxListenersExceededWarning', async (t: TestContext) => {
  t.plan(2)
  const warnings: Error[] = []
  const onWarning = (w: Error): void => { warnings.push(w) }
  process.on('warning', onWarning)
  t.after(() => process.off('warning', onWarning))
  const { app } = await buildApp(t)
  const upstream = await startUpstream({ delayMs: 10 })
  t.after(() => upstream.close())
  app.get('/', async (req) => {
    const bodies = await Promise.all(Array.from({ length: 100 }, () => request(upstream.url, { signal: req.signal }).then((r) => r.body.text())))
    return bodies.length
  })
  const res = await app.inject('/')
  t.assert.strictEqual(res.body, '100')
  await new Promise((resolve) => setImmediate(resolve))
  t.assert.deepStrictEqual(warnings.map((w) => w.name), [])
})

test('inject: the signal works without a socket and is not aborted while the route runs', async (t: TestContext) => {
  t.plan(2)
  const { app } = await buildApp(t)
  app.post('/', async (req) => ({ aborted: req.signal.aborted }))
  const res = await app.inject({ method: 'POST', url: '/', payload: { a: 1 } })
  t.assert.strictEqual(res.statusCode, 200)
  t.assert.deepStrictEqual(res.json(), { aborted: false })
})

test('undici fetch accepts request.signal on every Node (Node 20 getMaxListeners throws for a 0 limit)', async (t: TestContext) => {
  t.plan(2)
  const { fetch } = await import('undici')
  const { app } = await buildApp(t)
  const upstream = await startUpstream({ delayMs: 5 })
  t.after(() => upstream.close())
  app.get('/', async (req) => {
    const texts = await Promise.all(Array.from({ length: 20 }, () => fetch(upstream.url, { signal: req.signal }).then((r) => r.text())))
    return texts.every((x) => x === 'done')
  })
  const res = await app.inject('/')
  t.assert.strictEqual(res.statusCode, 200)
  t.assert.strictEqual(res.body, 'true')
})
