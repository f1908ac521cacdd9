import { test, type TestContext } from 'node:test'
import diagnosticsChannel from 'node:diagnostics_channel'
import { EventEmitter, once } from 'node:events'
import http2 from 'node:http2'
import { Readable } from 'node:stream'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Agent, request as undiciRequest } from 'undici'
import { channels, interceptor, type CancelEvent, type ClosingEvent, type FatalEvent, type HangupEvent } from '../lib/index.js'
import { buildApp, listen, NEVER_MS, PATIENCE_MS } from './helpers/app.js'
import { startFixture } from './helpers/child.js'
import { FATAL, type LogLine } from './helpers/logs.js'
import { hangUp, hangUpWhenCalled, readHead, sendRaw } from './helpers/raw-client.js'
import { startUpstream } from './helpers/upstream.js'
import { poll, until, within } from './helpers/util.js'

/**
 * The diagnostics channels (docs/events.md), subscribed to as a user would,
 * with real sockets: what each message carries, that each event is published
 * once, to subscribers that came after the app started, and only to
 * subscribers. Fatal errors and a throwing subscriber run in a child process
 * (test/fixtures/fatal-app.js), where an uncaught exception is the real one.
 */

type ChannelName = keyof typeof channels

interface Recorder<T> {
  messages: T[]
  /** Resolves once `n` messages arrived; rejects after PATIENCE_MS. */
  count (n: number): Promise<void>
  stop (): void
}

/** Subscribes to one channel until the test ends (or `stop()`), keeping every message. */
function record<T> (t: TestContext, name: ChannelName): Recorder<T> {
  const messages: T[] = []
  const arrived = new EventEmitter()
  const onMessage = (message: unknown): void => {
    messages.push(message as T)
    arrived.emit('message')
  }
  diagnosticsChannel.subscribe(channels[name], onMessage)
  const stop = (): void => { diagnosticsChannel.unsubscribe(channels[name], onMessage) }
  t.after(stop)
  return {
    messages,
    count: (n) => until(arrived, 'message', () => messages.length >= n, PATIENCE_MS, `${n} ${name} message(s)`),
    stop
  }
}

const inProcess = { exit: false, signals: [] as NodeJS.Signals[], gracePeriod: NEVER_MS }

function never (): Promise<never> {
  return new Promise(() => {})
}

/**
 * An app whose requests are kept in `seen`, in arrival order, for comparing
 * with the messages' `request` (unless `keep` is false).
 */
async function appWithRoutes (t: TestContext, { http2Server = false, keep = true } = {}): Promise<{ app: FastifyInstance, seen: FastifyRequest[], handling: EventEmitter }> {
  const { app } = await buildApp(t, { fatal: inProcess }, http2Server ? { http2: true } as never : {})
  const seen: FastifyRequest[] = []
  const handling = new EventEmitter()
  app.addHook('onRequest', async (request) => {
    if (keep) seen.push(request)
    handling.emit('request')
  })
  app.post('/upload', async () => 'never reached: the client leaves mid-body')
  app.get('/wait', async () => {
    handling.emit('handler')
    return never()
  })
  app.get('/stream', async (_request, reply) => {
    // One chunk, then nothing: the client has the head and leaves mid-body.
    const body = new Readable({ read () {} })
    body.push('first chunk\n')
    return reply.type('text/plain').send(body)
  })
  return { app, seen, handling }
}

for (const phase of ['upload', 'handler', 'response'] as const) {
  test(`hangup, HTTP/1.1, ${phase}: one message with the phase and the Fastify request, the signal already aborted`, async (t: TestContext) => {
    const hangups = record<HangupEvent>(t, 'hangup')
    const abortedWhenPublished: boolean[] = []
    const check = (message: unknown): void => { abortedWhenPublished.push((message as HangupEvent).request.signal.aborted) }
    diagnosticsChannel.subscribe(channels.hangup, check)
    t.after(() => diagnosticsChannel.unsubscribe(channels.hangup, check))
    const { app, seen, handling } = await appWithRoutes(t)
    const { port } = await listen(app)

    if (phase === 'upload') {
      const handled = once(handling, 'request')
      const socket = await sendRaw(t, port, { method: 'POST', path: '/upload', headers: { 'content-type': 'text/plain', 'content-length': 1000 }, body: '' })
      socket.write('only ten b')
      await within(handled, PATIENCE_MS, 'the request to arrive')
      hangUp(socket)
    } else if (phase === 'handler') {
      const handled = once(handling, 'handler')
      const socket = await sendRaw(t, port, { path: '/wait' })
      await within(handled, PATIENCE_MS, 'the handler to run')
      hangUp(socket)
    } else {
      const socket = await sendRaw(t, port, { path: '/stream' })
      await readHead(socket)
      hangUp(socket)
    }

    await hangups.count(1)
    t.assert.strictEqual(hangups.messages[0].phase, phase)
    t.assert.strictEqual(hangups.messages[0].request, seen[0])
    t.assert.deepStrictEqual(abortedWhenPublished, [true])
    await app.close()
    t.assert.strictEqual(hangups.messages.length, 1, 'exactly one message per hang-up')
    t.assert.strictEqual(app.hangup.stats().disconnects[phase], 1)
  })
}

test('hangup, HTTP/2: a stream the client resets in the handler is one message, phase handler', async (t: TestContext) => {
  const hangups = record<HangupEvent>(t, 'hangup')
  const { app, seen, handling } = await appWithRoutes(t, { http2Server: true })
  const { url } = await listen(app)
  const session = http2.connect(url)
  session.on('error', () => {})
  t.after(() => { session.destroy() })
  const handled = once(handling, 'handler')
  const stream = session.request({ ':path': '/wait' })
  stream.on('error', () => {})
  await within(handled, PATIENCE_MS, 'the handler to run')
  stream.close(http2.constants.NGHTTP2_CANCEL)
  await hangups.count(1)
  t.assert.strictEqual(hangups.messages[0].phase, 'handler')
  t.assert.strictEqual(hangups.messages[0].request, seen[0])
  session.destroy()
  await app.close()
  t.assert.strictEqual(hangups.messages.length, 1)
})

test('cancel: a bound undici call cancelled by the hang-up is one message (reason, client undici, the request), published before the hangup', async (t: TestContext) => {
  const order: string[] = []
  const cancels = record<CancelEvent>(t, 'cancel')
  const hangups = record<HangupEvent>(t, 'hangup')
  const note = (name: string) => () => { order.push(name) }
  const onCancel = note('cancel')
  const onHangup = note('hangup')
  diagnosticsChannel.subscribe(channels.cancel, onCancel)
  diagnosticsChannel.subscribe(channels.hangup, onHangup)
  t.after(() => {
    diagnosticsChannel.unsubscribe(channels.cancel, onCancel)
    diagnosticsChannel.unsubscribe(channels.hangup, onHangup)
  })
  const upstream = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => upstream.close())
  const dispatcher = new Agent().compose(interceptor())
  t.after(() => dispatcher.close())
  const { app } = await buildApp(t, { fatal: inProcess })
  const seen: FastifyRequest[] = []
  app.get('/call', async (request) => {
    seen.push(request)
    const { body } = await undiciRequest(upstream.url, { dispatcher })
    return await body.text()
  })
  const { port } = await listen(app)
  await hangUpWhenCalled(t, port, { path: '/call' }, upstream)
  t.assert.strictEqual((await upstream.closed(1)).closedEarly, true)
  await cancels.count(1)
  await hangups.count(1)
  t.assert.deepStrictEqual({ ...cancels.messages[0] }, { request: seen[0], reason: 'clientDisconnected', client: 'undici' })
  t.assert.deepStrictEqual(order, ['cancel', 'hangup'])
  t.assert.strictEqual(app.hangup.stats().upstream.cancelled.clientDisconnected, 1)
})

test('cancel: a call started after the response was sent fails at once and is counted and published as cancelled (responseSent)', async (t: TestContext) => {
  const cancels = record<CancelEvent>(t, 'cancel')
  const upstream = await startUpstream({ delayMs: 1 })
  t.after(() => upstream.close())
  const dispatcher = new Agent().compose(interceptor())
  t.after(() => dispatcher.close())
  const { app } = await buildApp(t, { fatal: inProcess })
  const seen: FastifyRequest[] = []
  const late = new EventEmitter()
  app.get('/late', async (request, reply) => {
    seen.push(request)
    // A floating call after the answer, in the request's context.
    reply.raw.once('close', () => {
      undiciRequest(upstream.url, { dispatcher }).then(
        () => late.emit('done', 'answered'),
        (error: { code?: string }) => late.emit('done', error.code))
    })
    return 'answered'
  })
  const res = await app.inject('/late')
  t.assert.strictEqual(res.body, 'answered')
  const [outcome] = await within(once(late, 'done'), PATIENCE_MS, 'the late call to end')
  t.assert.strictEqual(outcome, 'FST_HANGUP_RESPONSE_SENT')
  t.assert.strictEqual(upstream.received(), 0)
  t.assert.strictEqual(cancels.messages.length, 1)
  t.assert.deepStrictEqual({ ...cancels.messages[0] }, { request: seen[0], reason: 'responseSent', client: 'undici' })
  t.assert.strictEqual(app.hangup.stats().upstream.cancelled.responseSent, 1)
})

test('fatal inside a request (isFatal): one message with the error and the request, then closing with cause fatal', async (t: TestContext) => {
  const order: string[] = []
  const fatals = record<FatalEvent>(t, 'fatal')
  const closings = record<ClosingEvent>(t, 'closing')
  const onFatal = (): void => { order.push('fatal') }
  const onClosing = (): void => { order.push('closing') }
  diagnosticsChannel.subscribe(channels.fatal, onFatal)
  diagnosticsChannel.subscribe(channels.closing, onClosing)
  t.after(() => {
    diagnosticsChannel.unsubscribe(channels.fatal, onFatal)
    diagnosticsChannel.unsubscribe(channels.closing, onClosing)
  })
  const { app } = await buildApp(t, { fatal: { ...inProcess, isFatal: (error) => (error as { code?: string }).code === 'EPOOL' } })
  const seen: FastifyRequest[] = []
  const poisoned = Object.assign(new Error('pool corrupted'), { code: 'EPOOL' })
  app.get('/poisoned', async (request) => {
    seen.push(request)
    throw poisoned
  })
  const res = await app.inject('/poisoned')
  t.assert.strictEqual(res.statusCode, 500)
  t.assert.deepStrictEqual({ ...fatals.messages[0] }, { error: poisoned, request: seen[0] })
  t.assert.deepStrictEqual(closings.messages.map((m) => ({ ...m })), [{ cause: 'fatal' }])
  t.assert.deepStrictEqual(order, ['fatal', 'closing'])
  // The close it started: shutdown() during it joins it, and publishes nothing more.
  await within(app.hangup.shutdown(), PATIENCE_MS, 'the fatal close')
  t.assert.strictEqual(closings.messages.length, 1)
  // The process guard's own end of the close, a turn later: the next test's signal must find it over.
  await new Promise((resolve) => setImmediate(resolve))
})

test('fatal outside a request (shutdown with an error, exit: false): request null; closing with cause fatal', async (t: TestContext) => {
  const fatals = record<FatalEvent>(t, 'fatal')
  const closings = record<ClosingEvent>(t, 'closing')
  const { app } = await buildApp(t, { fatal: inProcess })
  await app.ready()
  const error = new Error('config reload failed')
  await within(app.hangup.shutdown(error), PATIENCE_MS, 'the close')
  t.assert.deepStrictEqual(fatals.messages.map((m) => ({ ...m })), [{ error, request: null }])
  t.assert.deepStrictEqual(closings.messages.map((m) => ({ ...m })), [{ cause: 'fatal' }])
})

test('fatal: false: shutdown with an error still publishes fatal (request null) and closing', async (t: TestContext) => {
  const fatals = record<FatalEvent>(t, 'fatal')
  const closings = record<ClosingEvent>(t, 'closing')
  const { app } = await buildApp(t, { fatal: false })
  await app.ready()
  const error = new Error('disk full')
  await within(app.hangup.shutdown(error), PATIENCE_MS, 'the close')
  t.assert.deepStrictEqual(fatals.messages.map((m) => ({ ...m })), [{ error, request: null }])
  t.assert.deepStrictEqual(closings.messages.map((m) => ({ ...m })), [{ cause: 'fatal' }])
})

test('closing: shutdown() is cause shutdown, a stop signal is cause signal; once per close', async (t: TestContext) => {
  const closings = record<ClosingEvent>(t, 'closing')
  const { app: byHand } = await buildApp(t, { fatal: inProcess })
  await byHand.ready()
  await within(Promise.all([byHand.hangup.shutdown(), byHand.hangup.shutdown()]), PATIENCE_MS, 'the close by hand')
  t.assert.deepStrictEqual(closings.messages.map((m) => ({ ...m })), [{ cause: 'shutdown' }])

  const { app: signalled } = await buildApp(t, { fatal: { ...inProcess, signals: ['SIGHUP'] } })
  await signalled.ready()
  process.emit('SIGHUP', 'SIGHUP')
  await closings.count(2)
  await within(signalled.close(), PATIENCE_MS, 'the signalled app to close')
  t.assert.deepStrictEqual(closings.messages.map((m) => ({ ...m })), [{ cause: 'shutdown' }, { cause: 'signal' }])
})

test('a subscriber that arrives after the app started hears the next hang-up; one that left hears nothing, and nothing is published without subscribers', async (t: TestContext) => {
  const { app, handling } = await appWithRoutes(t)
  const { port } = await listen(app)
  const hangUpOnce = async (): Promise<void> => {
    const handled = once(handling, 'handler')
    const socket = await sendRaw(t, port, { path: '/wait' })
    await within(handled, PATIENCE_MS, 'the handler to run')
    hangUp(socket)
  }
  const published = spyOnPublish(t, 'hangup')
  await hangUpOnce()
  await poll(() => app.hangup.stats().disconnects.handler === 1, PATIENCE_MS, 'the first hang-up')
  t.assert.strictEqual(published(), 0, 'no subscriber: publish is never called')

  const late = record<HangupEvent>(t, 'hangup')
  await hangUpOnce()
  await late.count(1)
  t.assert.strictEqual(late.messages[0].phase, 'handler')

  late.stop()
  await hangUpOnce()
  await poll(() => app.hangup.stats().disconnects.handler === 3, PATIENCE_MS, 'the third hang-up')
  t.assert.strictEqual(late.messages.length, 1)
})

/**
 * Counts calls to the channel's `publish` while it has no subscriber (an own
 * property shadows Node's, removed when the test ends). Only meaningful
 * while nobody subscribes: then the plugin must not call it at all.
 */
function spyOnPublish (t: TestContext, name: ChannelName): () => number {
  const channel = diagnosticsChannel.channel(channels[name]) as unknown as { publish: (message: unknown) => void }
  let calls = 0
  channel.publish = () => { calls++ }
  const restore = (): void => { delete (channel as { publish?: unknown }).publish }
  t.after(restore)
  return () => {
    const seen = calls
    restore()
    return seen
  }
}

/** V8's `gc()` without starting Node with --expose-gc: the flag, then a fresh context's global. */
function exposeGc (): () => void {
  setFlagsFromString('--expose-gc')
  return runInNewContext('gc') as () => void
}

test('a message keeps no request alive: the Fastify request a subscriber saw is collected once its response closed', async (t: TestContext) => {
  const gc = exposeGc()
  let request: WeakRef<object> | undefined
  let message: WeakRef<object> | undefined
  const onHangup = (seen: unknown): void => {
    request = new WeakRef((seen as HangupEvent).request)
    message = new WeakRef(seen as object)
  }
  diagnosticsChannel.subscribe(channels.hangup, onHangup)
  t.after(() => diagnosticsChannel.unsubscribe(channels.hangup, onHangup))
  const { app, handling } = await appWithRoutes(t, { keep: false })
  const { port } = await listen(app)
  const handled = once(handling, 'handler')
  const socket = await sendRaw(t, port, { path: '/wait' })
  await within(handled, PATIENCE_MS, 'the handler to run')
  hangUp(socket)
  await poll(() => request !== undefined, PATIENCE_MS, 'the hangup message')
  diagnosticsChannel.unsubscribe(channels.hangup, onHangup)
  // Collected within a bounded number of collections; each after a turn of
  // the loop, so the socket's and the handler's pending callbacks are done.
  for (let i = 0; i < 50 && (request?.deref() !== undefined || message?.deref() !== undefined); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
    gc()
  }
  t.assert.strictEqual(message?.deref(), undefined, 'the message was collected')
  t.assert.strictEqual(request?.deref(), undefined, 'the request was collected')
})

function events (logs: LogLine[], channel: string): LogLine[] {
  return logs.filter((line) => line.msg === 'event' && line.channel === channel)
}

const incoming = (url: string) => (line: LogLine): boolean => line.msg === 'incoming request' && (line.req as { url?: string } | undefined)?.url === url

test('child process: an uncaught exception in a request publishes fatal with that request, then closing (fatal); exit 1', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS }, events: {} })
  const res = await undiciRequest(`${child.url}/crash/timer`)
  t.assert.strictEqual(res.statusCode, 500)
  await res.body.dump()
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'the exit')).code, 1)
  const crashId = child.logs.find(incoming('/crash/timer'))?.reqId
  const fatal = events(child.logs, channels.fatal)
  t.assert.deepStrictEqual(fatal.map((line) => [line.reqId, line.error]), [[crashId, 'secret-timer: database password is hunter2']])
  t.assert.deepStrictEqual(events(child.logs, channels.closing).map((line) => line.cause), ['fatal'])
  t.assert.ok(child.logs.indexOf(fatal[0]) < child.logs.indexOf(events(child.logs, channels.closing)[0]), 'fatal before closing')
})

test('child process: an uncaught exception outside any request publishes fatal with request null; SIGTERM publishes closing (signal)', async (t: TestContext) => {
  const crashed = await startFixture(t, { fatal: { gracePeriod: NEVER_MS }, events: {}, bootCrashOnArm: true })
  await (await undiciRequest(`${crashed.url}/arm-boot-crash`)).body.dump()
  t.assert.strictEqual((await within(crashed.exited, PATIENCE_MS, 'the exit')).code, 1)
  // The boot timer throws every 5 ms until the exit: each throw is a fatal error, and one message.
  const fatal = events(crashed.logs, channels.fatal)
  t.assert.ok(fatal.length > 0)
  t.assert.strictEqual(fatal.length, crashed.logs.filter((line) => line.level === FATAL).length)
  for (const line of fatal) t.assert.deepStrictEqual([line.reqId, line.error], [null, 'secret-boot: database password is hunter2'])

  const stopped = await startFixture(t, { fatal: { gracePeriod: NEVER_MS }, events: {} })
  stopped.kill('SIGTERM')
  t.assert.strictEqual((await within(stopped.exited, PATIENCE_MS, 'the exit')).code, 0)
  t.assert.deepStrictEqual(events(stopped.logs, channels.closing).map((line) => line.cause), ['signal'])
  t.assert.deepStrictEqual(events(stopped.logs, channels.fatal), [])
})

test('child process: a hangup subscriber that throws; the hang-up is fully handled and the next subscriber still hears it; Node raises the throw as an uncaught exception (fatal), the request in flight finishes', async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => upstream.close())
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS }, events: { throwOn: 'hangup' }, upstream: upstream.url })
  const inFlight = undiciRequest(`${child.url}/slow?ms=200&after=close`)
  await child.waitForLog(incoming('/slow?ms=200&after=close'))
  await hangUpWhenCalled(t, child.ports[0], { path: '/upstream' }, upstream)
  t.assert.strictEqual((await upstream.closed(1)).closedEarly, true, 'the upstream call was cancelled')
  const answer = await inFlight
  t.assert.strictEqual(answer.statusCode, 200)
  t.assert.deepStrictEqual(await answer.body.json(), { ok: true, ms: 200, closing: true })
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'the exit')).code, 1)
  const hungUpId = child.logs.find(incoming('/upstream'))?.reqId
  t.assert.ok(child.logs.some((line) => line.msg === 'client disconnected' && line.reqId === hungUpId))
  t.assert.deepStrictEqual(events(child.logs, channels.hangup).map((line) => [line.reqId, line.phase]), [[hungUpId, 'handler']])
  const fatalLines = child.logs.filter((line) => line.level === FATAL)
  t.assert.deepStrictEqual(fatalLines.map((line) => line.err?.message), ['subscriber bug'])
})

test('child process: a fatal subscriber that throws is not fed its own error in a loop: its error is fatal too (logged), published once, and the process exits', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS }, events: { throwOn: 'fatal' } })
  const res = await undiciRequest(`${child.url}/crash/timer`)
  t.assert.strictEqual(res.statusCode, 500)
  await res.body.dump()
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'the exit')).code, 1)
  t.assert.deepStrictEqual(events(child.logs, channels.fatal).map((line) => line.error), ['secret-timer: database password is hunter2'])
  const fatalLines = child.logs.filter((line) => line.level === FATAL)
  t.assert.deepStrictEqual(fatalLines.map((line) => line.err?.message), ['secret-timer: database password is hunter2', 'subscriber bug'])
})
