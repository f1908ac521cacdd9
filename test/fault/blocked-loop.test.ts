import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import {
  assertClean, blockLoop, faultSeed, forkClients, pollUntil, probeUntil, seededRandom, startFaultSetup, type FaultRecord
} from './helpers/fault.js'
import { HANG_UPS, requestText } from '../helpers/raw-client.js'

/**
 * An event loop blocked for 200 ms while hang-ups arrive.
 *
 * The clients live in a child process (test/fault/fixtures/hangup-clients.ts):
 * 10 upload a body half-way, 10 wait for a stalled upstream, 10 read a
 * streamed response; each is proxied to the upstream with request.signal.
 * This process then blocks its loop (a busy wait, as a long synchronous
 * JSON.parse or a regex would) and tells the child so through a file, since
 * it can read no message while blocked; the child hangs up every connection
 * (FIN or RST, drawn from the seeded PRNG) and says so through another file.
 * When the loop runs again, 30 closes wait at once: each must be counted in
 * its phase, cancel its upstream call and log nothing at warn or above.
 */

const PER_PHASE = 10
const BLOCK_MS = 200
const UPLOAD_SENT = 1000

function requests (): Array<{ text: string, waitForResponse: boolean }> {
  // The upload declares 4096 bytes and sends UPLOAD_SENT: it stays in its body.
  const upload = requestText({ method: 'POST', path: '/proxy/stall?upload', headers: { 'content-type': 'application/octet-stream', 'content-length': 4096 }, body: 'u'.repeat(UPLOAD_SENT) })
  const handler = requestText({ path: '/proxy/stall?handler' })
  const response = requestText({ path: '/stream/partial' })
  return [
    ...Array.from({ length: PER_PHASE }, () => ({ text: upload, waitForResponse: false })),
    ...Array.from({ length: PER_PHASE }, () => ({ text: handler, waitForResponse: false })),
    // The client has response bytes: the route is streaming, phase 'response'.
    ...Array.from({ length: PER_PHASE }, () => ({ text: response, waitForResponse: true }))
  ]
}

/** Every request is where it should be: the upstream has the uploads' first bytes and the other requests whole. */
function inPlace (records: FaultRecord[]): boolean {
  const count = (url: string, ok: (r: FaultRecord) => boolean): number => records.filter((r) => r.url === url && ok(r)).length
  return count('/stall?upload', (r) => r.bodyBytes === UPLOAD_SENT) === PER_PHASE &&
    count('/stall?handler', (r) => r.bodyEnded) === PER_PHASE &&
    count('/partial', (r) => r.bodyEnded) === PER_PHASE
}

test(`the event loop is blocked for ${BLOCK_MS} ms while ${3 * PER_PHASE} clients hang up: each counted in its phase, each upstream call cancelled, nothing loud`, async (t: TestContext) => {
  const random = seededRandom(faultSeed() + 300)
  const how = Array.from({ length: 3 * PER_PHASE }, () => random.pick(HANG_UPS))
  t.diagnostic(`seed ${random.seed}: hang-ups ${how.join(',')}`)
  const { watch, upstream, fa, baseline } = await startFaultSetup(t, random)
  const dir = mkdtempSync(join(tmpdir(), 'fastify-hangup-fault-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const records = upstream.records.length
  const settled = fa.probe.settled

  const clients = forkClients(t)
  clients.send({ cmd: 'open', port: fa.port, requests: requests() })
  await clients.next('opened')
  await upstream.waitFor((r) => inPlace(r.slice(records)), `${PER_PHASE} uploads half-way, ${PER_PHASE} requests waiting, ${PER_PHASE} responses streaming`)
  const before = fa.stats().disconnects

  const files = { blocked: join(dir, 'blocked'), done: join(dir, 'done') }
  clients.send({ cmd: 'hangup', ...files, how })
  await clients.next('armed')
  writeFileSync(files.blocked, '')
  const block = blockLoop(BLOCK_MS, () => existsSync(files.done), 5000)
  // Nothing has run since the block began: the plugin has seen none of the hang-ups yet.
  const duringBlock = fa.stats().disconnects
  t.diagnostic(`blocked ${block.blockedMs.toFixed(0)} ms`)
  t.assert.ok(block.done, 'the clients hung up while the loop was blocked')
  t.assert.ok(block.blockedMs >= BLOCK_MS)
  t.assert.deepStrictEqual(duringBlock, before)

  await pollUntil(() => fa.stats().inflight === 0, 'every response to close')
  t.assert.deepStrictEqual(fa.stats().disconnects, { upload: before.upload + PER_PHASE, handler: before.handler + PER_PHASE, response: before.response + PER_PHASE })
  await probeUntil(fa, () => fa.probe.settled === settled + 3 * PER_PHASE, 'every handler to settle')
  await upstream.waitFor((r) => r.slice(records).every((x) => x.end !== 'open'), 'every upstream call to close')
  t.assert.deepStrictEqual(upstream.records.slice(records).filter((r) => r.end !== 'cancelled').map((r) => `${r.url}: ${r.end}`), [], 'every upstream call was cancelled')
  t.assert.strictEqual(upstream.records.length - records, 3 * PER_PHASE)
  await clients.next('done')
  await assertClean(t, fa, watch, baseline)
})
