import type { Socket } from 'node:net'
import { test, type TestContext } from 'node:test'
import {
  assertClean, faultCase, faultSeed, get, lineKey, seededRandom, startFaultSetup,
  pollUntil, probeUntil, type Baseline, type Fault, type FaultApp, type FaultUpstream, type ProcessWatch, type Random
} from './helpers/fault.js'
import type { HangupStats } from '../../lib/stats.js'
import { INFO } from '../helpers/logs.js'
import { hangUp, HANG_UPS, sendRaw, type HangUp } from '../helpers/raw-client.js'

/**
 * Upstreams that reset, stall, answer garbage or close
 * mid-body.
 *
 * - The client stays: the fault is the server's problem. It may be logged as
 *   an error, and the client gets a 5xx (which one is asserted), or, once the
 *   headers are out, a cut.
 * - The client hangs up first, the fault comes after: nothing at warn or
 *   above. With `signal: request.signal` the upstream call is cancelled
 *   before the fault can happen; with a call that takes no signal (a client
 *   library without one) the fault reaches the handler after the hang-up
 *   and must still be logged as the hang-up it follows (499, info).
 * - Both at once (the upstream breaks and the client hangs up in the same
 *   tick): the app sees one of them first, and the outcome must be the one
 *   that order implies, never a mix: either a hang-up (counted, nothing
 *   loud) or the upstream's error (500 logged, no hang-up counted).
 */

interface Harness {
  t: TestContext
  random: Random
  fa: FaultApp
  upstream: FaultUpstream
  watch: ProcessWatch
  baseline: Baseline
}

async function harness (t: TestContext, seedOffset: number): Promise<Harness> {
  const random = seededRandom(faultSeed() + seedOffset)
  return { t, random, ...await startFaultSetup(t, random) }
}

/** The state a case's assertions are relative to. */
function mark (h: Harness): { records: number, settled: number, answers: number, rejections: number, logs: number, disconnects: ReturnType<FaultApp['stats']>['disconnects'] } {
  const { fa, upstream } = h
  return { records: upstream.records.length, settled: fa.probe.settled, answers: fa.probe.upstreamAnswers, rejections: fa.probe.rejections.length, logs: fa.logs.lines.length, disconnects: fa.stats().disconnects }
}

/** The upstream error each fault makes undici reject with (what Fastify logs as `err`). */
const UNDICI_ERROR: Partial<Record<Fault, string>> = {
  reset: 'ECONNRESET',
  garbage: 'HTTPParserError',
  midbody: 'UND_ERR_SOCKET'
}

/**
 * Found by this suite: when the upstream body breaks after the route started
 * streaming it, Fastify destroys the response (fastify/lib/reply.js
 * sendStream: `res.destroy()`, no onError hook once the headers are out).
 * That cut is the server's, not the client's: it must not be counted or
 * logged as a hang-up, and the signal says so (FST_HANGUP_RESPONSE_DESTROYED,
 * lib/request/lifecycle.ts clientEnded()).
 */
function assertNotAHangUp (st: TestContext, fa: FaultApp, c: StayCase, disconnects: HangupStats['disconnects']): void {
  st.assert.deepStrictEqual(fa.stats().disconnects, disconnects)
  if (c.expect.cut) {
    const reason = fa.probe.signals.at(-1)?.reason as { code?: string } | undefined
    st.assert.strictEqual(reason?.code, 'FST_HANGUP_RESPONSE_DESTROYED')
  }
}

// ------------------------------------------------------------ client stays

interface StayCase {
  fault: Fault
  path: string
  /** What the client gets. */
  expect: { status: number, cut: boolean }
  /** The lines at warn or above the fault makes (lineKey). */
  loud: string[]
  /** How the upstream's request ended. */
  upstreamEnd: 'faulted' | 'cancelled'
}

const STAY: StayCase[] = [
  { fault: 'reset', path: '/proxy/reset', expect: { status: 500, cut: false }, loud: ['50 ECONNRESET'], upstreamEnd: 'faulted' },
  { fault: 'garbage', path: '/proxy/garbage', expect: { status: 500, cut: false }, loud: ['50 HTTPParserError'], upstreamEnd: 'faulted' },
  { fault: 'midbody', path: '/proxy/midbody', expect: { status: 500, cut: false }, loud: ['50 UND_ERR_SOCKET'], upstreamEnd: 'faulted' },
  // Fastify's handlerTimeout answers 503; the plugin aborts request.signal
  // with FST_ERR_HANDLER_TIMEOUT, so the stalled call is cancelled. The
  // route then rejects after the 503 was sent, and Fastify logs that too
  // ("Promise errored, but reply.sent = true was set": fastify/lib/wrap-thenable.js,
  // the same without the plugin, whose timer aborts Fastify's own signal).
  { fault: 'stall', path: '/timeout/stall', expect: { status: 503, cut: false }, loud: ['50 FST_ERR_HANDLER_TIMEOUT', '50 FST_ERR_HANDLER_TIMEOUT'], upstreamEnd: 'cancelled' },
  // The headers are out when the upstream body breaks: a cut, logged by Fastify at warn.
  { fault: 'midbody', path: '/stream/midbody', expect: { status: 200, cut: true }, loud: ['40 UND_ERR_SOCKET'], upstreamEnd: 'faulted' },
  { fault: 'reset', path: '/stream/reset', expect: { status: 500, cut: false }, loud: ['50 ECONNRESET'], upstreamEnd: 'faulted' }
]

async function clientStays (h: Harness, c: StayCase): Promise<void> {
  const { fa, upstream } = h
  const t: TestContext = h.t
  const before = mark(h)
  const seen = await get(fa.origin, c.path)
  t.assert.strictEqual(seen.status, c.expect.status)
  t.assert.strictEqual(seen.error !== '', c.expect.cut, `the response was ${c.expect.cut ? '' : 'not '}cut (client saw: ${seen.error || 'a complete response'})`)
  await upstream.waitFor((r) => r[before.records]?.end === c.upstreamEnd, `its request to end ${c.upstreamEnd}`)
  await probeUntil(fa, () => fa.probe.settled === before.settled + 1, 'the handler to settle')
  await pollUntil(() => fa.stats().inflight === 0, 'the response to close')
  await assertClean(t, fa, h.watch, h.baseline, { since: before.logs, loud: c.loud })
  await t.test(`${c.path}: not counted as a client hang-up`, (st: TestContext) => assertNotAHangUp(st, fa, c, before.disconnects))
}

test('an upstream that resets, answers garbage, closes mid-body or stalls while the client stays: 5xx (or a cut), logged', async (t: TestContext) => {
  const h = await harness(t, 200)
  for (const c of STAY) await faultCase(t, h.random, `${c.fault} via ${c.path}, client stays`, () => clientStays(h, c))
})

// ------------------------------------------------------ client hangs up first

/** Sends GET `path` on a raw connection and waits until the route is where the fault will hit it. */
async function requestAndWait (h: Harness, path: string, fault: Fault, before: ReturnType<typeof mark>): Promise<Socket> {
  const socket = await sendRaw(h.t, h.fa.port, { path })
  if (fault === 'midbody') {
    // The route got the upstream's headers and reads its body.
    await probeUntil(h.fa, () => h.fa.probe.upstreamAnswers === before.answers + 1, 'the upstream headers to reach the route')
  } else {
    await h.upstream.waitFor((r) => r[before.records]?.bodyEnded === true, 'the request')
  }
  return socket
}

async function hangUpThenFault (h: Harness, fault: Fault, bound: boolean, how: HangUp): Promise<void> {
  const { fa, upstream } = h
  const t: TestContext = h.t
  const before = mark(h)
  const socket = await requestAndWait(h, `/${bound ? 'proxy' : 'unbound'}/${fault}?hold`, fault, before)
  hangUp(socket, how)
  await pollUntil(() => fa.stats().disconnects.handler === before.disconnects.handler + 1, 'the hang-up to be counted')
  if (bound) {
    // Cancelled: the upstream saw its request closed before it could fail it.
    await upstream.waitFor((r) => r[before.records]?.end === 'cancelled', 'its request to be cancelled')
  }
  upstream.release()
  await probeUntil(fa, () => fa.probe.settled === before.settled + 1, 'the handler to settle')
  t.assert.strictEqual(upstream.records[before.records]?.end, bound ? 'cancelled' : 'faulted')
  const rejection = fa.probe.rejections[before.rejections] as { code?: string, name?: string } | undefined
  if (bound) {
    t.assert.strictEqual(rejection?.code, 'FST_HANGUP_CLIENT_DISCONNECTED', 'the call rejected with the hang-up')
  } else {
    // The upstream's own failure reached the handler after the hang-up: logged at info as the hang-up's aftermath.
    const expected = UNDICI_ERROR[fault] as string
    t.assert.ok(rejection?.code === expected || rejection?.name === expected, `the call rejected with ${expected}, got ${String(rejection?.code ?? rejection?.name)}`)
    const line = fa.logs.lines.slice(before.logs).find((l) => l.err !== undefined && lineKey(l).endsWith(expected))
    t.assert.strictEqual(line?.level, INFO, 'its error logged at info')
    t.assert.strictEqual((line?.res as { statusCode?: number } | undefined)?.statusCode, 499)
  }
  t.assert.deepStrictEqual(fa.stats().disconnects, { ...before.disconnects, handler: before.disconnects.handler + 1 })
  await assertClean(t, fa, h.watch, h.baseline, { since: before.logs })
}

test('the client hangs up, then the upstream fails: nothing at warn or above, the bound call was cancelled first', async (t: TestContext) => {
  const h = await harness(t, 201)
  for (const fault of ['reset', 'garbage', 'midbody', 'stall'] as const) {
    const how = h.random.pick(HANG_UPS)
    await faultCase(t, h.random, `${fault}, signal: request.signal, ${how}`, () => hangUpThenFault(h, fault, true, how))
  }
  for (const fault of ['reset', 'garbage', 'midbody'] as const) {
    const how = h.random.pick(HANG_UPS)
    await faultCase(t, h.random, `${fault}, no signal, ${how}`, () => hangUpThenFault(h, fault, false, how))
  }
})

// ------------------------------------------------------------- both at once

/**
 * The upstream breaks and the client hangs up in one tick of this process
 * (both sides are in it), in the drawn order. Every run so far (Node 20, 22,
 * 24; undici 7 and 8) ended as a hang-up: undici fails a call from its
 * socket's 'close', which runs in the loop's close phase, after the poll
 * phase that destroyed the client's socket; the plugin's onError sees that
 * socket destroyed (`clientGone()`) and takes the rejection for the
 * hang-up's aftermath. The other outcome stays allowed: it is the right one
 * whenever the app does see the upstream's failure first.
 */
async function bothAtOnce (h: Harness, fault: Fault, upstreamFirst: boolean, how: HangUp): Promise<string> {
  const { fa, upstream } = h
  const t: TestContext = h.t
  const before = mark(h)
  const socket = await requestAndWait(h, `/proxy/${fault}?hold`, fault, before)
  if (upstreamFirst) {
    upstream.release()
    hangUp(socket, how)
  } else {
    hangUp(socket, how)
    upstream.release()
  }
  await probeUntil(fa, () => fa.probe.settled === before.settled + 1, 'the handler to settle')
  await pollUntil(() => fa.stats().inflight === 0, 'the response to close')
  const hungUp = fa.stats().disconnects.handler === before.disconnects.handler + 1
  if (hungUp) {
    t.assert.deepStrictEqual(fa.stats().disconnects, { ...before.disconnects, handler: before.disconnects.handler + 1 })
    await assertClean(t, fa, h.watch, h.baseline, { since: before.logs })
  } else {
    // The app saw the upstream fail first, while its client was there: a 500, logged; no hang-up.
    t.assert.deepStrictEqual(fa.stats().disconnects, before.disconnects)
    const answered = fa.logs.lines.slice(before.logs).find((l) => l.msg === 'request completed')
    t.assert.strictEqual((answered?.res as { statusCode?: number } | undefined)?.statusCode, 500)
    await assertClean(t, fa, h.watch, h.baseline, { since: before.logs, loud: [`50 ${UNDICI_ERROR[fault] as string}`] })
  }
  return hungUp ? 'seen as a hang-up' : 'seen as the upstream error'
}

test('the upstream fails and the client hangs up in the same tick: one outcome or the other, never both', async (t: TestContext) => {
  const h = await harness(t, 202)
  const outcomes: string[] = []
  for (const fault of ['reset', 'garbage', 'midbody'] as const) {
    for (const upstreamFirst of [true, false]) {
      const how = h.random.pick(HANG_UPS)
      const label = `${fault}, ${upstreamFirst ? 'upstream then client' : 'client then upstream'}, ${how}`
      await faultCase(t, h.random, label, async () => { outcomes.push(`${label}: ${await bothAtOnce(h, fault, upstreamFirst, how)}`) })
    }
  }
  t.diagnostic(outcomes.join('; '))
})
