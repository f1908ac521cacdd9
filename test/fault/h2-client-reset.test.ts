import { once } from 'node:events'
import http2 from 'node:http2'
import { test, type TestContext } from 'node:test'
import {
  assertClean, faultSeed, lineKey, pollUntil, probeUntil, seededRandom, startFaultApp, startFaultUpstream, WAIT_MS, warmUp, watchProcess,
  type FaultApp
} from './helpers/fault.js'
import type { Transport } from '../helpers/transport.js'
import { H2_RESPONSE_WARN } from '../matrix/helpers/known-issues.js'
import { tlsMaterial, within } from '../helpers/util.js'

/**
 * An HTTP/2 client that resets its own stream (RST_STREAM) has left,
 * whatever code it resets with: NO_ERROR included. Node reports a reset with
 * NO_ERROR differently by version (Node 20 and 22 may never destroy the
 * stream; Node 24 destroys it with the code a server-side destroy has), so
 * each case runs the same way on every Node: 50 streams, each with its
 * upstream call bound to `request.signal`, reset before their headers (the
 * handler waits on a stalled upstream) or mid-response (the upstream's body
 * flows to the client, then stalls). Each is a hang-up in its phase,
 * counted, with `ClientDisconnectedError` as its signal's reason; each
 * upstream call is cancelled; `inflight` is back to its baseline.
 */

const STREAMS = 50

type Phase = 'handler' | 'response'

type ResetCode = 'NGHTTP2_NO_ERROR' | 'NGHTTP2_CANCEL' | 'NGHTTP2_INTERNAL_ERROR'

const CASES: Array<{ code: ResetCode, phase: Phase }> = [
  { code: 'NGHTTP2_NO_ERROR', phase: 'handler' },
  { code: 'NGHTTP2_NO_ERROR', phase: 'response' },
  { code: 'NGHTTP2_CANCEL', phase: 'handler' },
  { code: 'NGHTTP2_CANCEL', phase: 'response' },
  { code: 'NGHTTP2_INTERNAL_ERROR', phase: 'response' }
]

/** Before the headers: the handler waits on an upstream that never answers. Mid-response: the upstream's body is forwarded as it trickles, then stalls. */
const PATHS: Record<Phase, string> = { handler: '/proxy/stall', response: '/stream/partial' }

function connect (origin: string, transport: Transport): http2.ClientHttp2Session {
  const session = http2.connect(origin, transport === 'h2-tls' ? { ca: tlsMaterial().cert } : {})
  session.on('error', () => {})
  return session
}

/** Opens a stream and resolves once it is in the phase to reset it in: its request reached the upstream, or its first body bytes arrived. */
function openStream (session: http2.ClientHttp2Session, phase: Phase): { stream: http2.ClientHttp2Stream, ready: Promise<void> } {
  const stream = session.request({ ':path': PATHS[phase] })
  stream.on('error', () => {})
  const ready = phase === 'response'
    ? once(stream, 'data').then(() => {})
    : Promise.resolve()
  return { stream, ready }
}

/**
 * The warn lines Fastify itself logs for a body it was piping when the
 * client reset mid-response (H2_RESPONSE_WARN in known-issues.ts); none before the headers.
 */
function fastifyWarnings (fa: FaultApp, phase: Phase): string[] {
  if (phase === 'handler') return []
  const key = '40 FST_HANGUP_CLIENT_DISCONNECTED'
  const lines = fa.logs.lines.filter((line) => line.level > 30).map(lineKey)
  return lines.every((line) => line === key) ? lines : [`only "${key}" lines (${H2_RESPONSE_WARN})`]
}

for (const [index, transport] of (['h2c', 'h2-tls'] as Transport[]).entries()) {
  for (const [caseIndex, { code, phase }] of CASES.entries()) {
    test(`${transport}: ${STREAMS} streams the client resets with ${code} ${phase === 'handler' ? 'before the headers' : 'mid-response'}: ${STREAMS} hang-ups in phase '${phase}', upstream calls cancelled`, async (t: TestContext) => {
      const watch = watchProcess(t)
      const upstream = await startFaultUpstream(t, seededRandom(faultSeed() + 600 + index * 10 + caseIndex))
      const fa = await startFaultApp(t, upstream, transport)
      const baseline = await warmUp(fa)
      const before = { stats: fa.stats(), records: upstream.records.length, settled: fa.probe.settled, signals: fa.probe.signals.length }

      const session = connect(fa.origin, transport)
      t.after(() => session.destroy())
      await within(once(session, 'connect'), WAIT_MS, 'the HTTP/2 session')
      const opened = Array.from({ length: STREAMS }, () => openStream(session, phase))
      await upstream.waitFor((r) => r.length - before.records === STREAMS, `${STREAMS} upstream calls`)
      await within(Promise.all(opened.map((o) => o.ready)), WAIT_MS, 'every stream in its phase')
      t.assert.strictEqual(fa.stats().inflight, before.stats.inflight + STREAMS)
      for (const { stream } of opened) stream.close(http2.constants[code])

      await pollUntil(() => fa.stats().inflight === before.stats.inflight, 'stats().inflight back to its baseline')
      await probeUntil(fa, () => fa.probe.settled - before.settled === STREAMS, 'every handler to settle')
      await upstream.waitFor((r) => r.slice(before.records).every((x) => x.end !== 'open'), 'every upstream call to close')
      const stats = fa.stats()
      t.assert.deepStrictEqual(stats.disconnects, { ...before.stats.disconnects, [phase]: before.stats.disconnects[phase] + STREAMS })
      t.assert.deepStrictEqual(upstream.records.slice(before.records).filter((r) => r.end !== 'cancelled').map((r) => `${r.url}: ${r.end}`), [], 'every upstream call was cancelled')
      const reasons = fa.probe.signals.slice(before.signals).map((signal) => {
        const reason = signal.reason as { code?: string, phase?: string } | undefined
        return `${reason?.code ?? 'not aborted'} ${reason?.phase ?? ''}`
      })
      t.assert.deepStrictEqual(reasons, Array(STREAMS).fill(`FST_HANGUP_CLIENT_DISCONNECTED ${phase}`))

      session.close()
      await within(once(session, 'close'), WAIT_MS, 'the client session to close')
      await assertClean(t, fa, watch, baseline, { loud: fastifyWarnings(fa, phase) })
    })
  }
}
