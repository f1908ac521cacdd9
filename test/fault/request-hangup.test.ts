import { test, type TestContext } from 'node:test'
import {
  assertClean, faultCase, faultSeed, pollUntil, probeUntil, seededRandom, startFaultSetup,
  type FaultApp, type FaultUpstream, type Random
} from './helpers/fault.js'
import { hangUp, HANG_UPS, requestText, sendRaw, type HangUp } from '../helpers/raw-client.js'

/**
 * Clients that hang up at a random byte of the request —
 * mid request line, mid headers, mid body (Content-Length and chunked, the
 * body streamed to a stalled upstream as it arrives; and a JSON body that
 * Fastify parses first), and right after the last byte. The byte comes from
 * the seeded PRNG (FAULT_SEED); the hang-up is a FIN or a RST, also drawn.
 *
 * Before hanging up the client waits until the server holds exactly the bytes
 * it sent (the upstream received the forwarded body bytes, or Fastify's body
 * reader counted them), so the case is the one it says. A cut before the
 * end of the headers has nothing to wait for: Fastify never sees a request,
 * and whether the server's parser read the partial bytes first (FIN) or not
 * (a RST may drop them) must make no difference.
 */

type Region = 'request line' | 'headers' | 'body' | 'complete'

/** What the request is, and where its parts end. */
interface Template {
  name: string
  bytes: Buffer
  /** Bytes of body payload (not chunk framing) in the first `k` bytes. */
  payloadIn (k: number): number
  /** Fastify parses this body whole before the handler (JSON): the upstream is never reached before its end. */
  parsed: boolean
}

const CUTS_PER_REGION: Record<Region, number> = { 'request line': 3, headers: 3, body: 8, complete: 1 }

function head (contentType: string, framing: Record<string, string | number>): string {
  return requestText({ method: 'POST', path: '/proxy/stall', headers: { 'user-agent': 'fault-suite', 'content-type': contentType, ...framing, 'x-case': 'request-hangup' } })
}

function contentLengthTemplate (random: Random): Template {
  const body = random.bytes(4096)
  const start = Buffer.byteLength(head('application/octet-stream', { 'content-length': body.length }))
  return {
    name: 'Content-Length body, streamed to the upstream',
    bytes: Buffer.concat([Buffer.from(head('application/octet-stream', { 'content-length': body.length })), body]),
    payloadIn: (k) => Math.max(0, k - start),
    parsed: false
  }
}

/** A chunked body of seeded chunk sizes; payloadIn walks the framing. */
function chunkedTemplate (random: Random): Template {
  const parts: Buffer[] = [Buffer.from(head('application/octet-stream', { 'transfer-encoding': 'chunked' }))]
  const payload: Array<[number, number]> = [] // [offset of the chunk's data, its length]
  let offset = parts[0]!.length
  for (let i = 0; i < 5; i++) {
    const data = random.bytes(random.int(1, 1500))
    const size = Buffer.from(`${data.length.toString(16)}\r\n`)
    payload.push([offset + size.length, data.length])
    parts.push(size, data, Buffer.from('\r\n'))
    offset += size.length + data.length + 2
  }
  parts.push(Buffer.from('0\r\n\r\n'))
  return {
    name: 'chunked body, streamed to the upstream',
    bytes: Buffer.concat(parts),
    payloadIn: (k) => payload.reduce((sum, [at, length]) => sum + Math.min(length, Math.max(0, k - at)), 0),
    parsed: false
  }
}

function jsonTemplate (random: Random): Template {
  const json = JSON.stringify({ items: Array.from({ length: 200 }, (_, i) => ({ i, v: random.int(0, 1e6) })) })
  const text = head('application/json', { 'content-length': Buffer.byteLength(json) })
  return {
    name: 'JSON body, parsed by Fastify',
    bytes: Buffer.from(text + json),
    payloadIn: (k) => Math.max(0, k - Buffer.byteLength(text)),
    parsed: true
  }
}

/** [min, max) of the cut for a region: at least one byte sent, at least one byte of the part missing. */
function regionRange (bytes: Buffer, region: Region): [number, number] {
  const lineEnd = bytes.indexOf('\r\n')
  const headEnd = bytes.indexOf('\r\n\r\n') + 4
  switch (region) {
    case 'request line': return [1, lineEnd + 2]
    case 'headers': return [lineEnd + 2, headEnd]
    case 'body': return [headEnd + 1, bytes.length]
    case 'complete': return [bytes.length, bytes.length + 1]
  }
}

interface Harness {
  fa: FaultApp
  upstream: FaultUpstream
}

/** Waits until the server holds the `k` bytes sent (see the file's comment). */
async function serverHas (h: Harness, template: Template, k: number, before: { records: number, bodyBytes: number, requests: number }): Promise<void> {
  const payload = template.payloadIn(k)
  const complete = k === template.bytes.length
  if (template.parsed) {
    await probeUntil(h.fa, () => h.fa.probe.bodyBytes - before.bodyBytes === payload, `Fastify's body reader to count ${payload} bytes`)
  } else if (complete) {
    await h.upstream.waitFor((r) => r[before.records]?.bodyEnded === true, 'the whole request body')
  } else if (payload > 0) {
    await h.upstream.waitFor((r) => r[before.records]?.bodyBytes === payload, `${payload} body bytes`)
  } else {
    // Cut inside the first chunk-size line: no payload to forward yet (undici
    // writes a streamed request's headers with its first chunk).
    await probeUntil(h.fa, () => h.fa.probe.requests > before.requests, 'Fastify to get the request')
  }
}

/** One hang-up at byte `k` and what must follow from it. */
async function cutAt (t: TestContext, h: Harness, template: Template, region: Region, k: number, how: HangUp): Promise<void> {
  const { fa, upstream } = h
  const before = { records: upstream.records.length, bodyBytes: fa.probe.bodyBytes, requests: fa.probe.requests, settled: fa.probe.settled, disconnects: fa.stats().disconnects }
  const socket = await sendRaw(t, fa.port, template.bytes.subarray(0, k))
  const reached = region === 'body' || region === 'complete'
  if (reached) await serverHas(h, template, k, before)
  hangUp(socket, how)
  await pollUntil(() => fa.openConnections() === 0, 'the server to close the connection')

  if (!reached) {
    // Fastify never saw a request: nothing to count, nothing to call.
    t.assert.strictEqual(fa.probe.requests, before.requests, 'no request reached Fastify')
    t.assert.deepStrictEqual(fa.stats().disconnects, before.disconnects)
    t.assert.strictEqual(upstream.records.length, before.records)
    return
  }
  const phase = region === 'complete' ? 'handler' : 'upload'
  await pollUntil(() => fa.stats().disconnects[phase] === before.disconnects[phase] + 1, `a hang-up counted in phase ${phase}`)
  t.assert.deepStrictEqual(fa.stats().disconnects, { ...before.disconnects, [phase]: before.disconnects[phase] + 1 })
  if (template.parsed && region === 'body') {
    // The body never ended: the handler never ran, the upstream was never called.
    t.assert.strictEqual(fa.probe.settled, before.settled)
    t.assert.strictEqual(upstream.records.length, before.records)
    return
  }
  await probeUntil(fa, () => fa.probe.settled === before.settled + 1, 'the handler to settle')
  // Every upstream call this request started was cancelled (none if the cut came before any payload).
  await upstream.waitFor((r) => r.slice(before.records).every((x) => x.end !== 'open'), 'the upstream call to close')
  t.assert.deepStrictEqual(upstream.records.slice(before.records).map((r) => [r.end, r.bodyEnded]), template.payloadIn(k) > 0 || phase === 'handler' ? [['cancelled', phase === 'handler']] : [])
}

const TEMPLATES: Array<{ title: string, make: (random: Random) => Template }> = [
  { title: 'Content-Length', make: contentLengthTemplate },
  { title: 'chunked', make: chunkedTemplate },
  { title: 'JSON', make: jsonTemplate }
]

/** The case's name: the region, the byte, and for a cut in the head the text just before it. */
function caseLabel (template: Template, region: Region, k: number, how: HangUp): string {
  const before = region === 'request line' || region === 'headers' ? ` after ${JSON.stringify(template.bytes.subarray(Math.max(0, k - 12), k).toString('latin1'))}` : ''
  return `${template.name}: ${region}, byte ${k} of ${template.bytes.length}${before}, ${how}`
}

for (const [index, { title, make }] of TEMPLATES.entries()) {
  test(`a client hangs up at a random byte of a request: ${title}`, async (t: TestContext) => {
    const random = seededRandom(faultSeed() + index)
    const template = make(random)
    const { watch, upstream, fa, baseline } = await startFaultSetup(t, random)
    const h = { fa, upstream }
    const regions: Region[] = template.parsed ? ['body', 'complete'] : ['request line', 'headers', 'body', 'complete']
    const cuts: string[] = []
    for (const region of regions) {
      const [min, max] = regionRange(template.bytes, region)
      for (let i = 0; i < CUTS_PER_REGION[region]; i++) {
        const k = random.int(min, max)
        const how = random.pick(HANG_UPS)
        cuts.push(`${region}@${k}/${how}`)
        await faultCase(t, random, caseLabel(template, region, k, how), async () => {
          await cutAt(t, h, template, region, k, how)
          await assertClean(t, fa, watch, baseline)
        })
      }
    }
    t.diagnostic(`seed ${random.seed}, ${template.bytes.length} bytes: ${cuts.join(' ')}`)
  })
}
