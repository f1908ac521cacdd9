import { EventEmitter, once } from 'node:events'
import http from 'node:http'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { test, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import { request } from 'undici'
import hangup from '../lib/index.js'
import { FINAL_FLUSH_MS, STRAGGLER_SETTLE_MS } from '../lib/shutdown/timing.js'
import { secondaryServers } from '../lib/shutdown/graceful-close.js'
import { flushLog } from '../lib/shutdown/process-guard.js'
import { answerGenerically, genericBody } from '../lib/shutdown/respond.js'
import { buildApp, listen, PATIENCE_MS, until, within } from './helpers/app.js'

/**
 * The graceful close in this process, with `exit: false` and no signals (a
 * process exit or a crash belong in test/fatal.test.ts, in children).
 */
const inProcess = { fatal: { exit: false, signals: [], gracePeriod: 3000 } }

test('shutdown(): a request that arrives while the app drains is served with Connection: close, not refused with 503', async (t: TestContext) => {
  const { app, loud } = await buildApp(t, inProcess)
  app.get('/slow', async () => {
    await sleep(300)
    return { closing: app.hangup.closing }
  })
  app.get('/fast', async () => ({ closing: app.hangup.closing }))
  const { url } = await listen(app)
  const inFlight = request(`${url}/slow`)
  await until(() => app.hangup.stats().inflight === 1, 'the slow request')
  t.assert.strictEqual(app.hangup.closing, false)
  const closed = app.hangup.shutdown()
  t.assert.strictEqual(app.hangup.closing, true)
  t.assert.strictEqual(app.hangup.shutdown(), closed, 'one close')

  const crossing = await app.inject('/fast')
  t.assert.strictEqual(crossing.statusCode, 200)
  t.assert.deepStrictEqual(crossing.json(), { closing: true })
  t.assert.strictEqual(crossing.headers.connection, 'close')

  const slow = await inFlight
  t.assert.strictEqual(slow.statusCode, 200)
  t.assert.strictEqual(slow.headers.connection, 'close')
  t.assert.deepStrictEqual(await slow.body.json(), { closing: true })
  await within(closed, PATIENCE_MS, 'the close')
  t.assert.strictEqual(app.server.listening, false)
  t.assert.deepStrictEqual(loud(), [])
})

test('shutdown(error) without process handling (fatal: false): logged at fatal, counted, the app closes', async (t: TestContext) => {
  const { app, logs } = await buildApp(t, { fatal: false })
  await app.ready()
  await within(app.hangup.shutdown(new Error('config reload failed')), PATIENCE_MS, 'the close')
  t.assert.strictEqual(app.hangup.stats().fatal, 1)
  const line = logs.find((l) => l.level === 60)
  t.assert.strictEqual(line?.msg, 'shutdown with an error: closing gracefully')
  t.assert.strictEqual((line?.err as { message: string }).message, 'config reload failed')
})

test('an onClose hook that fails does not stop the close: it is logged', async (t: TestContext) => {
  const { app, logs } = await buildApp(t, inProcess)
  app.addHook('onClose', async () => { throw new Error('db gone') })
  await app.ready()
  await within(app.hangup.shutdown(), PATIENCE_MS, 'the close')
  t.assert.ok(logs.some((l) => l.level === 50 && l.msg === 'fastify.close() failed during the graceful close'))
})

test('fatal.isFatal that throws is logged and the error stays an ordinary one', async (t: TestContext) => {
  const { app, logs } = await buildApp(t, { fatal: { ...inProcess.fatal, isFatal: () => { throw new Error('bad predicate') } } })
  app.get('/', async () => { throw new Error('ordinary') })
  const res = await app.inject('/')
  t.assert.strictEqual(res.statusCode, 500)
  t.assert.strictEqual(res.json().message, 'ordinary')
  t.assert.strictEqual(app.hangup.closing, false)
  t.assert.ok(logs.some((l) => l.level === 50 && l.msg === 'fatal.isFatal threw; the error is not treated as fatal'))
})

test('process listeners: one set for the whole process however many apps, removed when the last app closes', async (t: TestContext) => {
  const before = {
    uncaught: process.listenerCount('uncaughtException'),
    rejection: process.listenerCount('unhandledRejection'),
    term: process.listenerCount('SIGTERM'),
    usr2: process.listenerCount('SIGUSR2')
  }
  const first = Fastify()
  const second = Fastify()
  await first.register(hangup, { fatal: { exit: false, signals: ['SIGTERM'] } })
  await second.register(hangup, { fatal: { exit: false, signals: ['SIGTERM', 'SIGUSR2'] } })
  await Promise.all([first.ready(), second.ready()])
  t.assert.strictEqual(process.listenerCount('uncaughtException'), before.uncaught + 1)
  t.assert.strictEqual(process.listenerCount('unhandledRejection'), before.rejection + 1)
  t.assert.strictEqual(process.listenerCount('SIGTERM'), before.term + 1)
  t.assert.strictEqual(process.listenerCount('SIGUSR2'), before.usr2 + 1)
  await second.close()
  t.assert.strictEqual(process.listenerCount('SIGUSR2'), before.usr2)
  t.assert.strictEqual(process.listenerCount('SIGTERM'), before.term + 1)
  await first.close()
  t.assert.deepStrictEqual({
    uncaught: process.listenerCount('uncaughtException'),
    rejection: process.listenerCount('unhandledRejection'),
    term: process.listenerCount('SIGTERM'),
    usr2: process.listenerCount('SIGUSR2')
  }, before)
})

test('fatal: false installs no uncaughtException or signal listener; the unhandledRejection one (own cancellations) only while ready', async (t: TestContext) => {
  const before = process.listenerCount('uncaughtException') + process.listenerCount('SIGTERM')
  const rejections = process.listenerCount('unhandledRejection')
  const guardListening = (): boolean => process.listeners('unhandledRejection').some((listener) => Symbol.for('fastify-hangup.guard-listener') in listener)
  const app = Fastify()
  t.after(() => app.close())
  await app.register(hangup, { fatal: false })
  t.assert.strictEqual(guardListening(), false)
  await app.ready()
  t.assert.strictEqual(process.listenerCount('uncaughtException') + process.listenerCount('SIGTERM'), before)
  t.assert.strictEqual(guardListening(), true)
  await app.close()
  t.assert.strictEqual(process.listenerCount('unhandledRejection'), rejections)
  t.assert.strictEqual(guardListening(), false)
})

/** A reply whose Fastify path, raw path or socket fails on demand. */
function brokenReply (fail: { send?: boolean, writeHead?: boolean, destroy?: boolean, headersSent?: boolean, writableEnded?: boolean, http2?: boolean }) {
  const calls: string[] = []
  const raw = Object.assign(new EventEmitter(), {
    headersSent: fail.headersSent === true,
    writableEnded: fail.writableEnded === true,
    writeHead (status: number, headers: Record<string, unknown>) {
      calls.push(`writeHead ${status} ${JSON.stringify(headers)}`)
      if (fail.writeHead === true) throw new Error('socket gone')
    },
    end (body: string) { calls.push(`end ${body}`) },
    destroy () {
      calls.push('destroy')
      if (fail.destroy === true) throw new Error('already destroyed')
    }
  })
  const reply = {
    raw,
    sent: false,
    request: { raw: { httpVersionMajor: fail.http2 === true ? 2 : 1 } },
    getHeaders: () => ({ 'set-cookie': 'x' }),
    removeHeader: (name: string) => { calls.push(`remove ${name}`) },
    code () { return reply },
    header (name: string, value: string) { calls.push(`header ${name}: ${value}`); return reply },
    send () {
      if (fail.send === true) throw new Error('FST_ERR_SEND_INSIDE_ONERR')
      calls.push('send')
    }
  }
  return { reply: reply as never, calls }
}

test('answerGenerically: Fastify\'s reply first, then the raw response, then a destroyed socket, and never a throw', (t: TestContext) => {
  const viaReply = brokenReply({})
  answerGenerically(viaReply.reply, 500)
  t.assert.deepStrictEqual(viaReply.calls, ['remove set-cookie', 'header content-type: application/json; charset=utf-8', 'header connection: close', 'send'])

  const viaRaw = brokenReply({ send: true })
  answerGenerically(viaRaw.reply, 503)
  const body = genericBody(503)
  t.assert.deepStrictEqual(viaRaw.calls.slice(-2), [
    `writeHead 503 ${JSON.stringify({ 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' })}`,
    `end ${body}`
  ])

  const h2 = brokenReply({ send: true, http2: true })
  answerGenerically(h2.reply, 500)
  t.assert.doesNotMatch(h2.calls.join('\n'), /connection/)

  const cut = brokenReply({ send: true, writeHead: true, destroy: true })
  t.assert.doesNotThrow(() => answerGenerically(cut.reply, 500))
  t.assert.strictEqual(cut.calls.at(-1), 'destroy')

  const started = brokenReply({ headersSent: true })
  answerGenerically(started.reply, 500)
  t.assert.deepStrictEqual(started.calls, ['destroy'])

  const finished = brokenReply({ writableEnded: true })
  answerGenerically(finished.reply, 500)
  t.assert.deepStrictEqual(finished.calls, [])
})

test('flushLog: a logger without flush, or whose flush throws, does not hold the exit', async (t: TestContext) => {
  await within(flushLog({} as never), 100, 'no flush')
  await within(flushLog({ flush () { throw new Error('closed') } } as never), 100, 'a throwing flush')
  let flushed = false
  await within(flushLog({ flush (cb: () => void) { flushed = true; cb() } } as never), 100, 'a flush')
  t.assert.strictEqual(flushed, true)
})

test('at the grace deadline (in process): a straggler that ignores its signal gets the generic 503, its signal says FST_HANGUP_SERVER_CLOSING, the close completes', async (t: TestContext) => {
  const { app } = await buildApp(t, { fatal: { exit: false, signals: [], gracePeriod: 100 } })
  let reason: unknown
  app.get('/deaf', async (request) => {
    request.signal.addEventListener('abort', () => { reason = request.signal.reason })
    await sleep(5000, null, { ref: false })
    return 'too late'
  })
  const { url } = await listen(app)
  const pending = request(`${url}/deaf`)
  await until(() => app.hangup.stats().inflight === 1, 'the request')
  const started = performance.now()
  await within(app.hangup.shutdown(), PATIENCE_MS, 'the close')
  const elapsed = performance.now() - started
  const answer = await pending
  t.assert.strictEqual(answer.statusCode, 503)
  t.assert.deepStrictEqual(await answer.body.json(), JSON.parse(genericBody(503)))
  t.assert.strictEqual(answer.headers.connection, 'close')
  t.assert.strictEqual((reason as { code?: string }).code, 'FST_HANGUP_SERVER_CLOSING')
  t.assert.ok(elapsed >= 100 && elapsed < 100 + STRAGGLER_SETTLE_MS + FINAL_FLUSH_MS + 200, `closed after ${Math.round(elapsed)} ms`)
  t.assert.strictEqual(app.hangup.stats().inflight, 0)
  // The flush bound's timer fires into a close that is already over.
  await sleep(FINAL_FLUSH_MS + 50)
})

test('Fastify\'s other bindings (listen on localhost = 127.0.0.1 + ::1) stop accepting when the close starts, not when the main server has closed', async (t: TestContext) => {
  const { app } = await buildApp(t, inProcess)
  app.get('/slow', async () => {
    await sleep(300)
    return 'ok'
  })
  const { url } = await listen(app)
  // This machine resolves localhost to 127.0.0.1 only, so the second binding
  // Fastify would make for ::1 is made here the way Fastify makes it: a
  // server with the same handler, kept in its bindings list.
  const secondary = http.createServer((req, res) => app.server.emit('request', req, res))
  await new Promise<void>((resolve) => secondary.listen(0, '127.0.0.1', resolve))
  t.after(() => { secondary.close() })
  const slot = Object.getOwnPropertySymbols(app).find((symbol) => symbol.description === 'fastify.serverBindings') as symbol
  ;(app as unknown as Record<symbol, http.Server[]>)[slot].push(secondary)
  const { port } = secondary.address() as AddressInfo

  const inFlight = request(`${url}/slow`)
  await until(() => app.hangup.stats().inflight === 1, 'the slow request')
  const closed = app.hangup.shutdown()
  t.assert.strictEqual(secondary.listening, false)
  await t.assert.rejects(request(`http://127.0.0.1:${port}/slow`), { code: 'ECONNREFUSED' })
  t.assert.strictEqual((await inFlight).statusCode, 200)
  await within(closed, PATIENCE_MS, 'the close')
})

test('secondaryServers: found from an encapsulated instance through its prototype; none where Fastify has no such slot', async (t: TestContext) => {
  const app = Fastify()
  t.after(() => app.close())
  let fromChild: unknown = null
  app.register(async (child) => { fromChild = secondaryServers(child) })
  await app.ready()
  const slot = Object.getOwnPropertySymbols(app).find((symbol) => symbol.description === 'fastify.serverBindings')
  const bindings = (app as unknown as Record<symbol, unknown>)[slot as symbol]
  t.assert.ok(Array.isArray(bindings))
  t.assert.strictEqual(fromChild, bindings, 'the root\'s own list, not a fallback')
  t.assert.strictEqual(secondaryServers(app), bindings)
  t.assert.deepStrictEqual(secondaryServers({} as never), [])
})

test('shutdown(): an HTTP/2 request that reaches the plugin during the close is served, with no Connection header (the session\'s GOAWAY closes it)', async (t: TestContext) => {
  const app = Fastify({ http2: true })
  t.after(() => app.close())
  let reached = false
  let release = (): void => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  // An earlier hook holds the request: the plugin's onRequest runs after the close started.
  app.addHook('onRequest', async () => {
    reached = true
    await held
  })
  await app.register(hangup, inProcess)
  app.get('/', async () => ({ closing: app.hangup.closing }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const session = http2.connect(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`)
  t.after(() => session.destroy())
  session.on('error', () => {})
  const stream = session.request({ ':path': '/' })
  stream.setEncoding('utf8')
  let body = ''
  stream.on('data', (chunk: string) => { body += chunk })
  await until(() => reached, 'the request to reach the earlier hook')
  const closed = app.hangup.shutdown()
  release()
  const [headers] = await within(once(stream, 'response'), 5000, 'the response') as [http2.IncomingHttpHeaders]
  await within(once(stream, 'end'), 5000, 'the body')
  t.assert.strictEqual(headers[':status'], 200)
  t.assert.strictEqual(headers.connection, undefined)
  t.assert.deepStrictEqual(JSON.parse(body), { closing: true })
  await within(closed, 5000, 'the close')
})
