import { EventEmitter, getEventListeners } from 'node:events'
import { test, type TestContext } from 'node:test'
import { Agent } from 'undici'
import hangup from '../../lib/index.js'
import { captureLogs, INFO } from '../helpers/logs.js'
import { APIS, BUFFERED } from './helpers/app.js'
import { createApp } from '../helpers/transport.js'
import { connectClient } from './helpers/clients.js'
import { startMatrixUpstream } from './helpers/upstream.js'
import { collectWarnings, describeError, poll, settleWarnings, until, within } from '../helpers/util.js'
import { NEVER_MS, PATIENCE_MS } from '../helpers/app.js'

const CALLS = 100
const WAIT_MS = PATIENCE_MS
/** The upstream works NEVER_MS: a close before its answer, within PATIENCE_MS of the hang-up, was the cancellation. */
const CLOSE_BOUND_MS = PATIENCE_MS

interface FanOutOptions {
  upstreamDelayMs: number
}

/**
 * One request whose route makes 100 concurrent upstream calls with the same
 * `request.signal` (one undici Agent, unlimited connections, so all 100 are
 * dispatched at once rather than queued).
 */
async function fanOutApp (t: TestContext, api: (typeof APIS)[number], opts: FanOutOptions) {
  const warnings = collectWarnings(t)
  const logs = captureLogs()
  const upstream = await startMatrixUpstream({ delayMs: opts.upstreamDelayMs })
  t.after(() => upstream.close())
  const app = createApp('h1', logs.stream)
  const dispatcher = new Agent()
  const cleanup: Array<() => Promise<void>> = []
  t.after(async () => {
    for (const close of cleanup) await close()
    await app.close()
    await dispatcher.destroy()
  })
  const seen = { reasons: [] as unknown[], outcomes: [] as Array<{ aborted: boolean, listenersAfter: number }>, failures: [] as unknown[], events: new EventEmitter() }
  await app.register(hangup)
  app.get('/fan', async (request) => {
    const signal = request.signal
    // not `once`: it stays, so "listeners - 1" counts undici's alone, before and after an abort
    signal.addEventListener('abort', () => { seen.reasons.push(signal.reason) })
    const results = await Promise.allSettled(Array.from({ length: CALLS }, (_, i) =>
      BUFFERED[api](`${upstream.url}/fan/${i}`, { method: 'GET', headers: {} }, signal, dispatcher, () => {})))
    const failed = results.filter((r) => r.status === 'rejected')
    seen.failures.push(...failed.map((r) => (r as PromiseRejectedResult).reason))
    // a macrotask: the bodies' 'close' (where undici drops its listener) has run
    await new Promise((resolve) => setImmediate(resolve))
    seen.outcomes.push({ aborted: signal.aborted, listenersAfter: getEventListeners(signal, 'abort').length - 1 })
    seen.events.emit('outcome')
    if (failed.length > 0) throw (failed[0] as PromiseRejectedResult).reason
    return { calls: results.length, aborted: signal.aborted }
  })
  const origin = await app.listen({ host: '127.0.0.1', port: 0 })
  const client = connectClient('h1', origin)
  cleanup.push(() => client.close())
  return { app, upstream, client, warnings, logs, seen }
}

for (const api of APIS) {
  test(`${CALLS} undici.${api} calls sharing one request.signal: all complete, no warning`, async (t: TestContext) => {
    const { app, upstream, client, warnings, logs, seen } = await fanOutApp(t, api, { upstreamDelayMs: 0 })
    const res = await client.complete('GET', '/fan', WAIT_MS)
    t.assert.deepStrictEqual(res, { status: 200, body: JSON.stringify({ calls: CALLS, aborted: false }) })
    t.assert.deepStrictEqual(seen.outcomes.map((o) => o.aborted), [false])
    // request/stream/pipeline drop their listener when a call ends; fetch keeps it until its Request is collected
    t.diagnostic(`'abort' listeners undici.${api} left on request.signal after ${CALLS} finished calls: ${seen.outcomes[0]?.listenersAfter}`)
    if (api !== 'fetch') t.assert.strictEqual(seen.outcomes[0]?.listenersAfter, 0)
    await upstream.waitFor((r) => r.length === CALLS && r.every((x) => x.closedEarly !== null), WAIT_MS, `${CALLS} calls to close`)
    t.assert.strictEqual(upstream.records.filter((r) => r.closedEarly === false).length, CALLS, 'the upstream answered every call')
    await poll(() => app.hangup.stats().inflight === 0, WAIT_MS, 'stats().inflight to be 0')
    t.assert.deepStrictEqual(app.hangup.stats().disconnects, { upload: 0, handler: 0, response: 0 })
    await settleWarnings()
    t.assert.deepStrictEqual(warnings.map((w) => `${w.name}: ${w.message}`), [], 'no MaxListenersExceededWarning (no warning at all)')
    t.assert.deepStrictEqual(logs.above(INFO), [])
  })

  test(`${CALLS} undici.${api} calls sharing one request.signal: a hang-up stops all of them`, async (t: TestContext) => {
    const { app, upstream, client, warnings, logs, seen } = await fanOutApp(t, api, { upstreamDelayMs: NEVER_MS })
    const exchange = client.request('GET', '/fan', {}, false)
    exchange.end()
    // fail at once if the route is over before the hang-up (its calls failed)
    const routeOver = new AbortController()
    seen.events.once('outcome', () => { routeOver.abort(new Error(`the route finished before the hang-up: ${describeError(seen.failures[0])}`)) })
    await upstream.waitFor((r) => r.length === CALLS && r.every((x) => x.bodyEnded), WAIT_MS, `all ${CALLS} calls to reach the upstream`, routeOver.signal)
    const hungUpAt = performance.now()
    exchange.hangUp()
    await upstream.waitFor((r) => r.every((x) => x.closedEarly !== null), WAIT_MS, `all ${CALLS} calls to close`)
    t.assert.strictEqual(upstream.records.filter((r) => r.closedEarly === true).length, CALLS, 'every call was cut before its answer')
    const last = Math.max(...upstream.records.map((r) => r.closedAt)) - hungUpAt
    t.assert.ok(last < CLOSE_BOUND_MS, `the last call closed ${last.toFixed(0)} ms after the hang-up (bound ${CLOSE_BOUND_MS} ms)`)

    await until(seen.events, 'outcome', () => seen.outcomes.length === 1, WAIT_MS, 'the handler to settle')
    t.assert.strictEqual(seen.failures.length, CALLS, 'every call rejected')
    const reason = seen.reasons[0] as { code?: unknown, phase?: unknown }
    t.assert.deepStrictEqual([seen.reasons.length, reason.code, reason.phase], [1, 'FST_HANGUP_CLIENT_DISCONNECTED', 'handler'])
    t.assert.deepStrictEqual(seen.outcomes[0], { aborted: true, listenersAfter: 0 })
    await poll(() => app.hangup.stats().inflight === 0, WAIT_MS, 'stats().inflight to be 0')
    t.assert.deepStrictEqual(app.hangup.stats().disconnects, { upload: 0, handler: 1, response: 0 })
    await within(client.close().then(() => app.close()), WAIT_MS, 'the app to close')
    await settleWarnings()
    t.assert.deepStrictEqual(warnings.map((w) => `${w.name}: ${w.message}`), [], 'no MaxListenersExceededWarning (no warning at all)')
    t.assert.deepStrictEqual(logs.above(INFO).map((l) => l.msg), [])
    t.assert.strictEqual(logs.lines.filter((l) => l.msg === 'client disconnected').length, 1)
  })
}
