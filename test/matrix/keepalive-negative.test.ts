import { getEventListeners, once } from 'node:events'
import type { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { test, type TestContext } from 'node:test'
import { Agent, request as undiciRequest } from 'undici'
import hangup from '../../lib/index.js'
import { captureLogs, INFO } from '../helpers/logs.js'
import { createApp, type Transport } from '../helpers/transport.js'
import { connectClient } from './helpers/clients.js'
import { startMatrixUpstream } from './helpers/upstream.js'
import { PATIENCE_MS } from '../helpers/app.js'
import { collectWarnings, poll, settleWarnings, within } from '../helpers/util.js'

const REQUESTS = 1000
/** The whole loop must finish within this (it takes 1-3 s). */
const LOOP_BUDGET_MS = 30_000
const WAIT_MS = PATIENCE_MS

type Snapshot = Record<string, number>

function listeners (emitters: Record<string, EventEmitter | undefined>): Snapshot {
  const snapshot: Snapshot = {}
  for (const [prefix, emitter] of Object.entries(emitters)) {
    if (emitter === undefined) continue
    for (const name of emitter.eventNames()) snapshot[`${prefix}:${String(name)}`] = emitter.listenerCount(name)
  }
  return snapshot
}

interface Check {
  i: number
  /** `request.signal.aborted` once the upstream answered. */
  aborted: boolean
  /** 'abort' listeners left on request.signal once the upstream call is over (the route's own: 1). */
  signalListeners: number
  /** The listeners on the server's socket (and HTTP/2 session) while this request runs. */
  connection: Snapshot
}

/**
 * The client is there for every request: 1,000 POSTs with a JSON body, one
 * after the other on one connection (an HTTP/1.1 keep-alive socket, or one
 * HTTP/2 session), each proxied to the upstream with `signal: request.signal`.
 */
const CASES: Array<{ transport: Transport, what: string }> = [
  { transport: 'h1-reuse', what: 'one HTTP/1.1 keep-alive socket' },
  { transport: 'h2c', what: 'one HTTP/2 session' }
]

for (const { transport, what } of CASES) {
  test(`${REQUESTS} JSON POSTs on ${what}: no abort, no warning, no listener build-up`, async (t: TestContext) => {
    const warnings = collectWarnings(t)
    const logs = captureLogs()
    const upstream = await startMatrixUpstream({ delayMs: 0 })
    t.after(() => upstream.close())
    const app = createApp(transport, logs.stream)
    const dispatcher = new Agent()
    const client = { close: async () => {} }
    t.after(async () => {
      await client.close()
      await app.close()
      await dispatcher.destroy()
    })

    const checks: Check[] = []
    const endReasons: unknown[] = []
    const connections = new Set<EventEmitter>()
    let accepted = 0
    let socket: Socket | undefined
    await app.register(hangup)
    app.post('/echo', async (request) => {
      const signal = request.signal
      signal.addEventListener('abort', () => { endReasons.push((signal.reason as { code?: unknown }).code) }, { once: true })
      // HTTP/2: the session too (request.raw.socket is only a proxy of the session's socket)
      const session = (request.raw as unknown as { stream?: { session: EventEmitter } }).stream?.session
      if (session !== undefined) connections.add(session)
      const body = request.body as { i: number }
      const res = await undiciRequest(`${upstream.url}/echo/${body.i}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(request.body),
        signal,
        dispatcher
      })
      await res.body.text()
      // undici's request() removes its 'abort' listener when the body closes (a tick after its end)
      if (!res.body.closed) await within(once(res.body, 'close'), WAIT_MS, 'the upstream body to close')
      checks.push({ i: body.i, aborted: signal.aborted, signalListeners: getEventListeners(signal, 'abort').length, connection: listeners({ socket, session }) })
      return { i: body.i, aborted: signal.aborted }
    })
    app.server.on('connection', (accepted_: Socket) => {
      accepted++
      socket = accepted_
      connections.add(accepted_)
    })
    const origin = await app.listen({ host: '127.0.0.1', port: 0 })
    const matrixClient = connectClient(transport, origin)
    client.close = () => matrixClient.close()

    const started = performance.now()
    const expectedBytes: number[] = []
    for (let i = 0; i < REQUESTS; i++) {
      if (performance.now() - started > LOOP_BUDGET_MS) throw new Error(`only ${i} of ${REQUESTS} requests within ${LOOP_BUDGET_MS} ms`)
      const json = JSON.stringify({ i, padding: 'x'.repeat(i % 200) })
      expectedBytes.push(Buffer.byteLength(json))
      const exchange = matrixClient.request('POST', '/echo', { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) }, true)
      exchange.end(json)
      const [status, body, reused] = await within(Promise.all([exchange.status, exchange.body, exchange.reusedSocket]), WAIT_MS, `request #${i}`)
      if (status !== 200 || body !== JSON.stringify({ i, aborted: false })) {
        throw new Error(`request #${i}: ${status} ${body} (client errors: ${exchange.errors.map(String).join(', ')})`)
      }
      if (transport === 'h1-reuse' && reused !== (i > 0)) throw new Error(`request #${i} did not reuse the keep-alive socket`)
    }
    t.diagnostic(`${REQUESTS} requests in ${(performance.now() - started).toFixed(0)} ms`)

    t.assert.strictEqual(accepted, 1, 'every request on one connection')
    t.assert.strictEqual(connections.size, transport === 'h2c' ? 2 : 1, 'one socket (and one HTTP/2 session)')
    t.assert.strictEqual(checks.length, REQUESTS)
    t.assert.deepStrictEqual(checks.filter((c) => c.aborted).map((c) => c.i), [], 'no request.signal aborted while its client was there')
    t.assert.deepStrictEqual(checks.filter((c) => c.signalListeners !== 1).map((c) => [c.i, c.signalListeners]), [],
      'undici removed its listener from request.signal once each call was over')

    // The connection's listeners are the same for request #2 and every later one: nothing per request stays on it.
    const baseline = checks[1]?.connection
    t.diagnostic(`connection listeners during a request: ${JSON.stringify(baseline)}`)
    t.assert.ok(baseline !== undefined && (baseline['socket:close'] ?? 0) > 0, 'the snapshot covers the socket')
    t.assert.deepStrictEqual(checks.filter((c) => c.i > 1 && JSON.stringify(c.connection) !== JSON.stringify(baseline)).map((c) => [c.i, c.connection]), [])

    // The upstream saw every request complete.
    await upstream.waitFor((r) => r.length === REQUESTS && r.every((x) => x.closedEarly !== null), WAIT_MS, `${REQUESTS} requests closed`)
    t.assert.deepStrictEqual(upstream.records.filter((r) => r.closedEarly === true || !r.bodyEnded).map((r) => r.url), [])
    t.assert.deepStrictEqual(upstream.records.map((r) => r.bodyBytes), expectedBytes)

    // Each signal ended with the response (abortOnResponse), never as a disconnect.
    await poll(() => endReasons.length === REQUESTS && app.hangup.stats().inflight === 0, WAIT_MS, 'every response to close')
    t.assert.deepStrictEqual([...new Set(endReasons)], ['FST_HANGUP_RESPONSE_SENT'])
    t.assert.deepStrictEqual(app.hangup.stats(), { inflight: 0, disconnects: { upload: 0, handler: 0, response: 0 }, fatal: 0, unhandledCancellations: 0, upstream: { bound: 0, cancelled: { clientDisconnected: 0, responseSent: 0, handlerTimeout: 0, serverClosing: 0, error: 0 }, byClient: { undici: { bound: 0, cancelled: 0 }, http: { bound: 0, cancelled: 0 } } } })

    await settleWarnings()
    t.assert.deepStrictEqual(warnings.map((w) => `${w.name}: ${w.message}`), [], 'no process warning')
    t.assert.deepStrictEqual(logs.above(INFO), [])
    t.assert.strictEqual(logs.lines.filter((l) => l.msg === 'client disconnected').length, 0)
  })
}
