import { AsyncResource } from 'node:async_hooks'
import { once } from 'node:events'
import http2 from 'node:http2'
import { test, type TestContext } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import * as undici from 'undici'
import hangup from '../lib/index.js'
import { chooseEnter, enterByFrame, enterIsScoped, enterByRun, enterRequest, requestContext } from '../lib/request/context.js'
import type { RequestLifecycle } from '../lib/request/lifecycle.js'
import { listen, PATIENCE_MS, until, within } from './helpers/app.js'
import { received, sendRaw } from './helpers/raw-client.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'

/**
 * A request enters its async context once, in `onRequest`: with `enterWith()`
 * where the process scopes it to the callback that calls it
 * (AsyncContextFrame), with `run()` elsewhere. Either way the rest of the
 * request runs in it, and nothing else does: not the next request on the
 * connection before its own `onRequest`, not a neighbouring HTTP/2 stream.
 */

const fakeLifecycle = (): RequestLifecycle => ({}) as unknown as RequestLifecycle

for (const [name, enter] of Object.entries({ enterByFrame, enterByRun, enterRequest })) {
  test(`${name}: the rest of the request runs in its context, entered once`, (t: TestContext) => {
    const lifecycle = fakeLifecycle()
    const seen: unknown[] = []
    // An async resource of its own, so that on async_hooks the store set by
    // enterWith() sticks to it, not to this test's.
    new AsyncResource('test').runInAsyncScope(() => {
      enter(lifecycle, () => {
        seen.push(requestContext.getStore())
        enter(lifecycle, () => seen.push(requestContext.getStore()))
      })
    })
    t.assert.deepStrictEqual(seen, [lifecycle, lifecycle])
  })
}

test('enterWith() where it is scoped to its callback (AsyncContextFrame), run() elsewhere', (t: TestContext) => {
  t.assert.strictEqual(chooseEnter(true), enterByFrame)
  t.assert.strictEqual(chooseEnter(false), enterByRun)
  // The default from Node 24 (`--no-async-context-frame` turns it off), opt-in on Node 22.
  const major = Number(process.versions.node.split('.')[0])
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(' ')]
  const frames = major >= 24 ? !flags.includes('--no-async-context-frame') : flags.includes('--experimental-async-context-frame')
  t.assert.strictEqual(enterIsScoped(), frames)
})

/**
 * A hook registered before the plugin runs before the request entered its
 * context: an undici call made there is nobody's (not bound), while the
 * handler's call is its request's. With a context that leaked from the
 * request before (the same parser callback, pipelined; the same session,
 * HTTP/2) the hook's call would be bound to that earlier request.
 */
async function appWithEarlyHook (t: TestContext, upstream: Upstream, http2Server: boolean): Promise<FastifyInstance> {
  const app = http2Server ? Fastify({ http2: true }) as unknown as FastifyInstance : Fastify()
  t.after(() => app.close())
  app.addHook('onRequest', function earlyHook (_request, _reply, done) {
    undici.request(upstream.url).then(async (response) => { await response.body.dump() }, () => {})
    done()
  })
  await app.register(hangup, { autoBind: true, fatal: { exit: false, signals: [] } })
  app.get('/', async () => await (await undici.request(upstream.url)).body.text())
  return app
}

test('pipelined HTTP/1.1: each request has its own context, and the next one none before its onRequest', async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: 0 })
  t.after(() => upstream.close())
  const app = await appWithEarlyHook(t, upstream, false)
  const { port } = await listen(app)
  const count = 5
  const one = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
  const socket = await sendRaw(t, port, one.repeat(count - 1) + 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  const text = received(socket)
  await within(once(socket, 'close'), PATIENCE_MS, 'the pipelined answers')
  t.assert.strictEqual(text().split('HTTP/1.1 200').length - 1, count, text())
  await until(() => upstream.received() === 2 * count, 'every upstream call')
  t.assert.strictEqual(app.hangup.stats().upstream.bound, count, 'only the handlers\' calls are bound')
})

test('HTTP/2: streams opened together each have their own context, and none before its onRequest', async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: 0 })
  t.after(() => upstream.close())
  const app = await appWithEarlyHook(t, upstream, true)
  const { url } = await listen(app)
  const session = http2.connect(url)
  t.after(() => session.destroy())
  const count = 5
  const streams = Array.from({ length: count }, () => session.request({ ':path': '/' }))
  const statuses = await within(Promise.all(streams.map(async (stream) => {
    stream.resume()
    const [headers] = await once(stream, 'response') as [http2.IncomingHttpHeaders]
    await once(stream, 'end')
    return headers[':status']
  })), PATIENCE_MS, 'the streams\' answers')
  t.assert.deepStrictEqual(statuses, Array(count).fill(200))
  await until(() => upstream.received() === 2 * count, 'every upstream call')
  t.assert.strictEqual(app.hangup.stats().upstream.bound, count, 'only the handlers\' calls are bound')
  // Closed here, not after the app: an open session would hold app.close().
  session.close()
  await within(once(session, 'close'), PATIENCE_MS, 'the session to close')
})
