import { test, type TestContext } from 'node:test'
import {
  assertClean, faultCase, faultSeed, PARTIAL_BYTES, PLAIN_BYTES, seededRandom, startFaultSetup,
  pollUntil, type FaultApp, type FaultUpstream
} from './helpers/fault.js'
import { hangUp, HANG_UPS, readUntil, sendRaw, type HangUp } from '../helpers/raw-client.js'

/**
 * Clients that hang up at a random byte of the response,
 * mid headers or mid body, of a streamed response (the route sends the
 * upstream's body as it comes; the upstream sends 8 KiB, 1 KiB every 5 ms,
 * then stalls) and of a plain one (256 KiB sent with one `reply.send`). The byte comes from the
 * seeded PRNG (FAULT_SEED): the client reads up to it, stops reading and
 * hangs up (FIN or RST, drawn too).
 *
 * TCP hands the client the whole head at once, with the first body bytes: a
 * cut "mid headers" is a client that read part of the head and left the rest
 * unread. On the server's side the head is sent either way, so both
 * regions are phase 'response' for the streamed route. The plain response
 * was ended (`end()` called with the whole body) before the client read a
 * byte, so leaving it is no hang-up at all: the server had nothing left to
 * send, only the kernel was still flushing, so the plugin counts a response
 * whose `end()` was called (`writableEnded`) as answered even when its
 * socket dies before the last byte left. Nothing is counted, nothing
 * cancelled, nothing logged.
 */

type Region = 'headers' | 'body'

interface Kind {
  title: string
  path: string
  /** Body bytes the client is sure to receive: the cut stays below them. */
  bodyBytes: number
  /** The response was still open when the client left: a hang-up in phase 'response'. */
  streamed: boolean
}

const KINDS: Kind[] = [
  { title: 'streamed response (upstream body piped, then stalled)', path: '/stream/partial', bodyBytes: PARTIAL_BYTES, streamed: true },
  { title: 'plain response (one reply.send of 256 KiB)', path: '/plain', bodyBytes: PLAIN_BYTES, streamed: false }
]

const CUTS: Record<Region, number> = { headers: 3, body: 6 }

/** The cut in response bytes once the head's length is known; `fraction` in [0, 1) from the PRNG. */
function cutIn (region: Region, kind: Kind, fraction: number): (headLength: number) => number {
  if (region === 'headers') return (headLength) => 1 + Math.floor(fraction * (headLength - 1))
  return (headLength) => headLength + 1 + Math.floor(fraction * (kind.bodyBytes - 1))
}

async function cutResponse (t: TestContext, fa: FaultApp, upstream: FaultUpstream, kind: Kind, region: Region, fraction: number, how: HangUp): Promise<string> {
  const before = { records: upstream.records.length, disconnects: fa.stats().disconnects }
  const socket = await sendRaw(t, fa.port, { path: kind.path })
  const cut = cutIn(region, kind, fraction)
  const { received, headLength } = await readUntil(socket, cut)
  hangUp(socket, how)
  await pollUntil(() => fa.openConnections() === 0, 'the server to close the connection')
  await pollUntil(() => fa.stats().inflight === 0, 'the response to close')
  if (kind.streamed) {
    t.assert.deepStrictEqual(fa.stats().disconnects, { ...before.disconnects, response: before.disconnects.response + 1 })
    // The route's upstream call was cancelled: the upstream saw its answer closed before it ended.
    await upstream.waitFor((r) => r[before.records]?.end !== 'open', 'the upstream call to close')
    t.assert.deepStrictEqual(upstream.records.slice(before.records).map((r) => r.end), ['cancelled'])
  } else {
    t.assert.deepStrictEqual(fa.stats().disconnects, before.disconnects, 'a response already ended is no hang-up')
  }
  return `cut at byte ${cut(headLength)} (head ${headLength} bytes, ${received} read)`
}

for (const [index, kind] of KINDS.entries()) {
  test(`a client hangs up at a random byte of a ${kind.title}`, async (t: TestContext) => {
    const random = seededRandom(faultSeed() + 100 + index)
    const { watch, upstream, fa, baseline } = await startFaultSetup(t, random)
    const cuts: string[] = []
    for (const region of ['headers', 'body'] as const) {
      for (let i = 0; i < CUTS[region]; i++) {
        const fraction = random.int(0, 1_000_000) / 1_000_000
        const how = random.pick(HANG_UPS)
        await faultCase(t, random, `${kind.title}: ${region}, at ${fraction} of the ${region}, ${how}`, async () => {
          cuts.push(`${region}: ${await cutResponse(t, fa, upstream, kind, region, fraction, how)}, ${how}`)
          await assertClean(t, fa, watch, baseline)
        })
      }
    }
    t.diagnostic(`seed ${random.seed}: ${cuts.join('; ')}`)
  })
}
