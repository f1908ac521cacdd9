import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import http from 'node:http'
import https from 'node:https'
import type { Socket } from 'node:net'
import { test, type TestContext } from 'node:test'
import axios from 'axios'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { HttpRequest } from '@smithy/protocol-http'
import Fastify from 'fastify'
import * as undici from 'undici'
import hangup, { detach, ResponseSentError } from '../lib/index.js'
import { kLifecycle, type RequestLifecycle } from '../lib/request/lifecycle.js'
import { CREATED_CHANNEL, requestChannel, START_CHANNEL } from '../lib/upstream/http-client.js'
import { buildApp, listen, NEVER_MS, PATIENCE_MS, until, within } from './helpers/app.js'
import { tlsMaterial } from './helpers/util.js'
import { hangUp, hangUpWhenCalled, sendRaw } from './helpers/raw-client.js'
import { startUpstream } from './helpers/upstream.js'

/**
 * `autoBind` binds `node:http` / `node:https` client requests made inside a
 * request, and the clients built on them (axios, got, the AWS SDK's
 * NodeHttpHandler), with no `signal` passed. Real upstream on 127.0.0.1
 * (HTTP and HTTPS), a real client that hangs up; what the upstream saw is
 * the assertion.
 */

const inProcess = { exit: false, signals: [] }
/** Node 22.12+ publishes every client request from its constructor (lib/upstream/http-client.ts). */
const created = requestChannel(process.versions.node) === CREATED_CHANNEL
const tls = tlsMaterial()

async function readAll (body: AsyncIterable<Buffer | string>): Promise<string> {
  let text = ''
  for await (const chunk of body) text += chunk.toString()
  return text
}

function nodeGet (url: string, options: https.RequestOptions = {}): Promise<string> {
  const client = url.startsWith('https:') ? https : http
  return new Promise((resolve, reject) => {
    const req = client.get(url, { ...(url.startsWith('https:') ? { ca: tls.cert } : {}), ...options }, (res) => {
      readAll(res).then(resolve, reject)
    })
    req.on('error', reject)
  })
}

const smithy = new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: tls.cert }) })

/** Each client as a repository layer would call it: no signal, nothing of the request. */
const clients: Record<string, { tls: boolean, call: (url: string) => Promise<string> }> = {
  'http.request': { tls: false, call: nodeGet },
  'https.request': { tls: true, call: nodeGet },
  axios: { tls: false, call: async (url) => (await axios.get<string>(url, { responseType: 'text' })).data },
  'got (TLS)': {
    tls: true,
    call: async (url) => {
      const { got } = await import('got')
      return await got(url, { https: { certificateAuthority: tls.cert } }).text()
    }
  },
  '@smithy/node-http-handler': {
    tls: false,
    call: async (url) => {
      const u = new URL(url)
      const { response } = await smithy.handle(new HttpRequest({ protocol: u.protocol, hostname: u.hostname, port: Number(u.port), method: 'GET', path: u.pathname, headers: { host: u.host } }))
      return await readAll(response.body as AsyncIterable<Buffer>)
    }
  }
}

/** Whether `error` or an error in its `cause` chain has `code`: what the handler saw carries the request's reason. */
function carries (error: unknown, code: string): boolean {
  let current = error
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    if ((current as { code?: unknown }).code === code) return true
    current = (current as { cause?: unknown }).cause
  }
  return false
}

/** Counts the responses whose headers a node:http client received (Node publishes it once per response). */
function countResponseHeaders (t: TestContext): () => number {
  let count = 0
  const onResponse = (): void => { count++ }
  subscribe('http.client.response.finish', onResponse)
  t.after(() => { unsubscribe('http.client.response.finish', onResponse) })
  return () => count
}

function lifecycleOf (request: object): RequestLifecycle {
  return (request as Record<symbol, RequestLifecycle>)[kLifecycle]
}

const NONE = { bound: 0, cancelled: 0 }

for (const [name, client] of Object.entries(clients)) {
  for (const phase of ['waiting for headers', 'mid-body'] as const) {
    test(`autoBind, ${name}, ${phase}: a call made with no signal is cancelled with the request's reason when the client hangs up`, async (t: TestContext) => {
      const upstream = await startUpstream({
        ...(phase === 'mid-body' ? { delayMs: 0, chunks: NEVER_MS / 20, chunkEveryMs: 20 } : { delayMs: NEVER_MS }),
        ...(client.tls ? { tls } : {})
      })
      t.after(() => upstream.close())
      const headers = countResponseHeaders(t)
      const { app, loud } = await buildApp(t, { autoBind: true, fatal: inProcess })
      let caught: unknown = null
      app.get('/', async () => {
        try {
          return await client.call(upstream.url)
        } catch (error) {
          caught = error
          throw error
        }
      })
      const { url } = await listen(app)
      const socket = await sendRaw(t, url, { path: '/' })
      if (phase === 'mid-body') await until(() => headers() === 1, 'the response headers to reach the client')
      else await until(() => upstream.received() === 1, 'the upstream to receive the call')
      hangUp(socket)
      const record = await upstream.closed(1)
      // Cancelled, not answered: the upstream works (or streams) for NEVER_MS.
      t.assert.strictEqual(record.closedEarly, true)
      t.assert.strictEqual(headers(), phase === 'mid-body' ? 1 : 0)
      await until(() => caught !== null, 'the handler to see the cancellation')
      t.assert.ok(carries(caught, 'FST_HANGUP_CLIENT_DISCONNECTED'), `the handler's error carries the request's reason: ${String(caught)}`)
      await until(() => app.hangup.stats().inflight === 0, 'the response to close')
      const stats = app.hangup.stats().upstream
      t.assert.deepStrictEqual(stats.byClient, { undici: NONE, http: { bound: 1, cancelled: 1 } })
      t.assert.strictEqual(stats.cancelled.clientDisconnected, 1)
      t.assert.strictEqual(upstream.received(), 1, 'no retry')
      t.assert.deepStrictEqual(loud(), [])
    })
  }
}

test('autoBind, http.request: calls outside any request, and inside detach(), are untouched', async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: 300 })
  t.after(() => upstream.close())
  const { app } = await buildApp(t, { autoBind: true, fatal: inProcess })
  let detached: Promise<string> | null = null
  app.get('/', async () => {
    detached = detach(async () => await nodeGet(upstream.url))
    return await detached
  })
  const { url } = await listen(app)
  t.assert.strictEqual(await nodeGet(upstream.url), 'done')
  await hangUpWhenCalled(t, url, { path: '/' }, upstream, 2)
  t.assert.strictEqual(await within(detached as unknown as Promise<string>, PATIENCE_MS, 'the detached call'), 'done')
  t.assert.strictEqual((await upstream.closed(2)).closedEarly, false)
  t.assert.deepStrictEqual(app.hangup.stats().upstream.byClient.http, NONE)
})

test('autoBind, http.request: an explicit signal still works with the binding', async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => upstream.close())
  const { app } = await buildApp(t, { autoBind: true, fatal: inProcess })
  app.get('/', async () => {
    const own = new AbortController()
    setTimeout(() => own.abort(new Error('own deadline')), 100)
    return await nodeGet(upstream.url, { signal: own.signal }).catch((error: Error) => ({ caught: error.name }))
  })
  const res = await app.inject('/')
  t.assert.deepStrictEqual(res.json(), { caught: 'AbortError' })
  t.assert.strictEqual((await upstream.closed(1)).closedEarly, true)
  // Ended by its own signal, not by the request: bound, not cancelled.
  t.assert.deepStrictEqual(app.hangup.stats().upstream.byClient.http, { bound: 1, cancelled: 0 })
})

test('autoBind, http.request: a call started after the response (abortOnResponse) fails at once with the request\'s reason and never reaches the upstream', async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: 10 })
  t.after(() => upstream.close())
  const { app } = await buildApp(t, { autoBind: true, fatal: inProcess })
  let late: Promise<unknown> | null = null
  app.get('/', async (_request, reply) => {
    reply.raw.on('close', () => {
      // A fresh agent: nothing pooled that Node 20's late binding could write on (docs/autobind.md).
      late = nodeGet(upstream.url, { agent: new http.Agent() }).catch((error: unknown) => error)
    })
    return 'ok'
  })
  t.assert.strictEqual((await app.inject('/')).body, 'ok')
  await until(() => late !== null, 'the late call')
  const error = await within(late as unknown as Promise<unknown>, PATIENCE_MS, 'the late call to fail')
  t.assert.ok(error instanceof ResponseSentError)
  t.assert.strictEqual(upstream.received(), 0)
  t.assert.deepStrictEqual(app.hangup.stats().upstream.byClient.http, { bound: 1, cancelled: 1 })
  t.assert.strictEqual(app.hangup.stats().upstream.cancelled.responseSent, 1)
})

test(`autoBind, http.request: a call started after the response on a reused keep-alive socket ${created ? 'is never sent' : 'has its head written before Node publishes it: the upstream sees it close at once'}`, async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: 50 })
  t.after(() => upstream.close())
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.after(() => { agent.destroy() })
  const { app } = await buildApp(t, { autoBind: true, fatal: inProcess })
  let late: Promise<unknown> | null = null
  app.get('/', async (_request, reply) => {
    await nodeGet(upstream.url, { agent })
    reply.raw.on('close', () => { late = nodeGet(upstream.url, { agent }).catch((error: unknown) => error) })
    return 'ok'
  })
  t.assert.strictEqual((await app.inject('/')).body, 'ok')
  await until(() => late !== null, 'the late call')
  t.assert.ok(await within(late as unknown as Promise<unknown>, PATIENCE_MS, 'the late call to fail') instanceof ResponseSentError)
  if (created) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.assert.strictEqual(upstream.received(), 1, 'only the call made during the request')
  } else {
    t.assert.strictEqual((await upstream.closed(2)).closedEarly, true)
  }
})

test('autoBind, http.request: an error in the request (abortOnError), the handler timeout and the close deadline cancel the call, counted by reason', async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => upstream.close())
  const { app } = await buildApp(t, { autoBind: true, fatal: { exit: false, signals: [], gracePeriod: 100 } })
  const failLater = async (): Promise<never> => await new Promise((_resolve, reject) => setTimeout(() => reject(Object.assign(new Error('sibling failed'), { code: 'ESIBLING' })), 50))
  app.get('/error', async () => await Promise.all([nodeGet(upstream.url), failLater()]))
  app.get('/timeout', { handlerTimeout: 100 }, async () => await nodeGet(upstream.url))
  app.get('/straggler', async () => await nodeGet(upstream.url))
  const { url } = await listen(app)
  t.assert.strictEqual((await app.inject('/error')).statusCode, 500)
  t.assert.strictEqual((await app.inject('/timeout')).statusCode, 503)
  await sendRaw(t, url, { path: '/straggler' })
  await until(() => upstream.received() === 3, 'the straggler\'s call')
  await within(app.hangup.shutdown(), PATIENCE_MS, 'the close')
  for (let n = 1; n <= 3; n++) t.assert.strictEqual((await upstream.closed(n)).closedEarly, true)
  const { cancelled, byClient } = app.hangup.stats().upstream
  t.assert.deepStrictEqual(cancelled, { clientDisconnected: 0, responseSent: 0, handlerTimeout: 1, serverClosing: 1, error: 1 })
  t.assert.deepStrictEqual(byClient.http, { bound: 3, cancelled: 3 })
})

test('autoBind, http.request: 100 completed calls on a keep-alive agent leave no binding and no listener, and the socket serves the next unrelated call', async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: 0 })
  t.after(() => upstream.close())
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.after(() => { agent.destroy() })
  const { app } = await buildApp(t, { autoBind: true, fatal: inProcess })
  const sockets = new Set<Socket>()
  agent.on('free', (socket: Socket) => { sockets.add(socket) })
  const listenersOf = (socket: Socket): Record<string, number> =>
    Object.fromEntries(socket.eventNames().map((event) => [String(event), socket.listenerCount(event)]))
  app.get('/', async (request) => {
    await nodeGet(upstream.url, { agent })
    const [socket] = sockets
    const before = listenersOf(socket as Socket)
    for (let i = 1; i < 100; i++) await nodeGet(upstream.url, { agent })
    return {
      sockets: sockets.size,
      calls: lifecycleOf(request).boundCalls,
      socketListeners: listenersOf(socket as Socket),
      before,
      controller: lifecycleOf(request).signalCreated
    }
  })
  const res = (await app.inject('/')).json() as { sockets: number, calls: number, socketListeners: object, before: object, controller: boolean }
  t.assert.strictEqual(res.sockets, 1, 'every call on one keep-alive socket')
  t.assert.strictEqual(res.controller, false, 'binding created no AbortController')
  t.assert.strictEqual(res.calls, 0, 'no binding left')
  t.assert.deepStrictEqual(res.socketListeners, res.before, 'no listener added to the pooled socket')
  t.assert.deepStrictEqual(app.hangup.stats().upstream.byClient.http, { bound: 100, cancelled: 0 })
  // The response sent (abortOnResponse) cancelled nothing: the socket is back in the pool, alive.
  const [socket] = sockets
  t.assert.strictEqual((socket as Socket).destroyed, false)
  let reused: boolean | null = null
  const next = await new Promise<string>((resolve, reject) => {
    const req = http.get(upstream.url, { agent }, (r) => { readAll(r).then(resolve, reject) })
    req.on('socket', (s) => { reused = s === socket })
    req.on('error', reject)
  })
  t.assert.strictEqual(next, 'done')
  t.assert.strictEqual(reused, true, 'the next call, outside any request, reused the socket')
})

test('autoBind, http.request: a keep-alive socket first used by one request serves another request\'s call, which the first one\'s hang-up leaves alone', async (t: TestContext) => {
  // A body that takes a second: the second call is mid-body when the first request ends.
  const upstream = await startUpstream({ delayMs: 0, chunks: 10, chunkEveryMs: 100 })
  t.after(() => upstream.close())
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.after(() => { agent.destroy() })
  const { app } = await buildApp(t, { autoBind: true, fatal: inProcess })
  let firstCalled = false
  let release = (): void => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  app.get('/first', async () => {
    await nodeGet(`${upstream.url}/first`, { agent })
    firstCalled = true
    await held
    return 'first'
  })
  let firstSocket: Socket | null = null
  app.get('/second', async () => {
    const { res, reused } = await new Promise<{ res: http.IncomingMessage, reused: boolean }>((resolve, reject) => {
      const req = http.get(`${upstream.url}/second`, { agent }, (res) => { resolve({ res, reused: req.reusedSocket }) })
      req.on('error', reject)
    })
    hangUp(firstSocket as Socket)
    await until(() => app.hangup.stats().disconnects.handler === 1, 'the first request\'s hang-up')
    return { bytes: (await readAll(res)).length, reused }
  })
  const { url } = await listen(app)
  firstSocket = await sendRaw(t, url, { path: '/first' })
  await until(() => firstCalled, 'the first request\'s call')
  t.assert.deepStrictEqual((await app.inject('/second')).json(), { bytes: 10 * 1024, reused: true })
  release()
  t.assert.strictEqual((await upstream.closed(2)).closedEarly, false)
  t.assert.deepStrictEqual(app.hangup.stats().upstream.byClient.http, { bound: 2, cancelled: 0 })
})

test('autoBind, http.request: a call already over (destroyed by its caller, or answered in full) when the request aborts is not cancelled again', async (t: TestContext) => {
  const slow = await startUpstream({ delayMs: NEVER_MS })
  const fast = await startUpstream({ delayMs: 0 })
  t.after(() => Promise.all([slow.close(), fast.close()]))
  const { app } = await buildApp(t, { autoBind: true, fatal: inProcess })
  app.get('/destroyed', async (request) => {
    const req = http.get(slow.url)
    req.on('error', () => {})
    // Bound by then on every Node: 'finish' comes after Node published the request.
    await new Promise((resolve) => req.once('finish', resolve))
    req.destroy()
    // What abortOnError does, synchronously, before the request's 'close'.
    lifecycleOf(request).abort(new Error('a sibling failed'))
    return { destroyed: req.destroyed }
  })
  app.get('/answered', async (request) => {
    // Connection: close: the request's 'close' waits for its socket to close, after the body.
    return await new Promise((resolve, reject) => {
      const req = http.get(fast.url, { agent: false }, (res) => {
        res.resume()
        res.on('end', () => {
          lifecycleOf(request).abort(new Error('a sibling failed'))
          resolve({ complete: res.complete })
        })
      })
      req.on('error', reject)
    })
  })
  t.assert.deepStrictEqual((await app.inject('/destroyed')).json(), { destroyed: true })
  t.assert.deepStrictEqual((await app.inject('/answered')).json(), { complete: true })
  t.assert.deepStrictEqual(app.hangup.stats().upstream.byClient.http, { bound: 2, cancelled: 0 })
})

test('autoBind, http.request with no \'error\' listener: a cancelled call neither throws nor ends the process', async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => upstream.close())
  const { app, loud } = await buildApp(t, { autoBind: true, fatal: inProcess })
  app.get('/', async () => {
    http.get(upstream.url) // floating, and no 'error' listener
    await until(() => upstream.received() === 1, 'the call to reach the upstream')
    return 'ok'
  })
  t.assert.strictEqual((await app.inject('/')).body, 'ok')
  t.assert.strictEqual((await upstream.closed(1)).closedEarly, true)
  await until(() => app.hangup.stats().upstream.byClient.http.cancelled === 1, 'the cancellation')
  await new Promise((resolve) => setImmediate(resolve))
  t.assert.strictEqual(app.hangup.stats().fatal, 0)
  t.assert.strictEqual(app.hangup.closing, false)
  t.assert.deepStrictEqual(loud(), [])
})

test('autoBind, http.request: the hang-up cancels the calls waiting in an agent\'s queue; none reaches the upstream', async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => upstream.close())
  // One socket: the second and third calls wait in the agent's queue.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.after(() => { agent.destroy() })
  const { app } = await buildApp(t, { autoBind: true, fatal: inProcess })
  const outcomes: unknown[] = []
  app.get('/', async () => await Promise.all(['/first', '/queued-1', '/queued-2'].map(async (path) =>
    await nodeGet(`${upstream.url}${path}`, { agent }).catch((error: unknown) => { outcomes.push(error); throw error })
  )))
  const { url } = await listen(app)
  await hangUpWhenCalled(t, url, { path: '/' }, upstream)
  t.assert.strictEqual((await upstream.closed(1)).url, '/first')
  await until(() => outcomes.length === 3, 'every call to fail')
  t.assert.ok(outcomes.every((error) => carries(error, 'FST_HANGUP_CLIENT_DISCONNECTED')))
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.assert.strictEqual(upstream.received(), 1, 'the queued calls were never sent')
  t.assert.strictEqual(app.hangup.stats().upstream.byClient.http.bound, 3)
})

test(`autoBind, http.request, a streamed upload: ${created ? 'cancelled mid-upload (Node publishes the request when it is created)' : 'bound only once ended (Node publishes it then): it fails as soon as its body ends'}`, async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => upstream.close())
  const { app } = await buildApp(t, { autoBind: true, fatal: inProcess })
  let failed: { error: unknown, ended: boolean } | null = null
  app.post('/', async (request) => {
    const req = http.request(upstream.url, { method: 'POST' })
    req.on('error', (error) => { failed = { error, ended: req.writableEnded } })
    // A body source that stops once the request is over, as a pipeline from the request's body would.
    for (let i = 0; i < NEVER_MS / 20 && !req.destroyed; i++) {
      if (request.signal.aborted) {
        req.end()
        break
      }
      req.write(Buffer.alloc(1024, 120))
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return 'gone'
  })
  const { url } = await listen(app)
  await hangUpWhenCalled(t, url, { method: 'POST', path: '/', headers: { 'content-length': 0 } }, upstream)
  const record = await upstream.closed(1)
  t.assert.strictEqual(record.closedEarly, true)
  t.assert.ok(record.bodyBytes > 0, 'cut after part of the body')
  await until(() => failed !== null, 'the upload to fail')
  const { error, ended } = failed as unknown as { error: unknown, ended: boolean }
  t.assert.ok(carries(error, 'FST_HANGUP_CLIENT_DISCONNECTED'))
  t.assert.strictEqual(ended, !created, created ? 'cut mid-upload' : 'cut when its body ended')
  t.assert.deepStrictEqual(app.hangup.stats().upstream.byClient.http, { bound: 1, cancelled: 1 })
})

test('autoBind: { undici: false } binds node:http calls, not undici ones', async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: NEVER_MS })
  const fast = await startUpstream({ delayMs: 0 })
  t.after(() => Promise.all([upstream.close(), fast.close()]))
  const { app } = await buildApp(t, { autoBind: { undici: false }, fatal: inProcess })
  app.get('/', async () => {
    await (await undici.request(fast.url)).body.text()
    return await nodeGet(upstream.url)
  })
  const { url } = await listen(app)
  await hangUpWhenCalled(t, url, { path: '/' }, upstream)
  t.assert.strictEqual((await upstream.closed(1)).closedEarly, true)
  await until(() => app.hangup.stats().upstream.byClient.http.cancelled === 1, 'the cancellation')
  t.assert.deepStrictEqual(app.hangup.stats().upstream.byClient.undici, NONE)
})

test('autoBind: { http: false } leaves node:http calls alone', async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: 200 })
  t.after(() => upstream.close())
  const { app } = await buildApp(t, { autoBind: { http: false }, fatal: inProcess })
  app.get('/', async () => await nodeGet(upstream.url))
  const { url } = await listen(app)
  await hangUpWhenCalled(t, url, { path: '/' }, upstream)
  t.assert.strictEqual((await upstream.closed(1)).closedEarly, false)
  t.assert.deepStrictEqual(app.hangup.stats().upstream.byClient.http, NONE)
})

test('autoBind subscribes once per process for node:http, and unsubscribes when the last app closes', async (t: TestContext) => {
  const { hasSubscribers } = await import('node:diagnostics_channel')
  const channel = requestChannel(process.versions.node)
  t.assert.strictEqual(hasSubscribers(channel), false)
  const first = Fastify()
  const second = Fastify()
  await first.register(hangup, { autoBind: { undici: false }, fatal: false })
  await second.register(hangup, { autoBind: true, fatal: false })
  t.assert.strictEqual(hasSubscribers(channel), false, 'not before ready')
  await Promise.all([first.ready(), second.ready()])
  t.assert.strictEqual(hasSubscribers(channel), true)
  await first.close()
  t.assert.strictEqual(hasSubscribers(channel), true, 'the second app still binds')
  await second.close()
  t.assert.strictEqual(hasSubscribers(channel), false)
})

test('the channel a Node publishes client requests on first: created from 22.12 and 23.2, start before', (t: TestContext) => {
  const cases: Array<[string, string]> = [
    ['20.19.0', START_CHANNEL], ['20.20.2', START_CHANNEL], ['22.11.0', START_CHANNEL], ['22.12.0', CREATED_CHANNEL],
    ['22.23.5', CREATED_CHANNEL], ['23.1.0', START_CHANNEL], ['23.2.0', CREATED_CHANNEL], ['24.0.0', CREATED_CHANNEL], ['26.12.1', CREATED_CHANNEL]
  ]
  for (const [version, channel] of cases) t.assert.strictEqual(requestChannel(version), channel, version)
})
