'use strict'

// fastify-hangup in one command: `npm run demo` (after `npm run build`).
//
// A slow upstream, three Fastify proxies in front of it whose code differs
// only in the `signal` they give undici, and clients that hang up. For each
// case the demo measures (no number it prints is made up) whether the upstream
// kept working for a client that was gone, and whether a client that stayed
// was served. One process, 127.0.0.1 only, about 7 s.

const fs = require('node:fs')
const http = require('node:http')
const path = require('node:path')
const Fastify = require('fastify')
const undici = require('undici')

if (!fs.existsSync(path.join(__dirname, '..', 'dist', 'cjs', 'index.js'))) {
  console.error('fastify-hangup is not compiled yet: run `npm run build` first')
  process.exit(1)
}
const hangup = require('../dist/cjs/index.js')

const WORK_MS = 1500 // the upstream's "slow work" per request...
const CHUNKS = 30 // ...or a response streamed in 30 chunks over those 1.5 s
const HANG_UP_AFTER_MS = 150 // the impatient clients leave after 150 ms...
const HANG_UP_AFTER_CHUNKS = 3 // ...or after the first 3 chunks of a stream
const CASE_TIMEOUT_MS = 5000 // a case not resolved by then "did not finish"
const STOPPED_WITHIN_MS = 250 // fastify-hangup should stop the upstream faster than this
const WATCHDOG_MS = 40_000 // the whole demo, whatever happens

const now = () => performance.now()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------
// The upstream: slow work, and a record of what it did for each request.
// ---------------------------------------------------------------------------

async function startUpstream () {
  const records = new Map() // x-demo-id -> { startedAt, closedAt, finished, chunks }
  const server = http.createServer((req, res) => {
    const record = { startedAt: now(), closedAt: null, finished: false, chunks: 0 }
    records.set(req.headers['x-demo-id'], record)
    req.resume() // read (and drop) a request body
    let timer
    if (req.url === '/stream') {
      res.writeHead(200, { 'content-type': 'text/plain' })
      const tick = () => {
        record.chunks++
        res.write(`chunk ${record.chunks} of ${CHUNKS}\n`)
        if (record.chunks === CHUNKS) res.end()
        else timer = setTimeout(tick, WORK_MS / CHUNKS)
      }
      timer = setTimeout(tick, WORK_MS / CHUNKS)
    } else {
      timer = setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ answer: 42 }))
      }, WORK_MS)
    }
    // 'close' comes when the answer is complete, or when the proxy cut the
    // connection (undici does that when its call is aborted): stop working.
    res.on('close', () => {
      clearTimeout(timer)
      record.closedAt = now()
      record.finished = res.writableEnded
    })
  })
  await listen(server)
  return { server, records, url: `http://127.0.0.1:${server.address().port}` }
}

function listen (server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => { server.off('error', reject); resolve() })
  })
}

// ---------------------------------------------------------------------------
// The proxies: the same routes three times. Only `signal` differs.
// ---------------------------------------------------------------------------

const VARIANTS = [
  { key: 'none', label: 'no signal', plugin: false, passSignal: false },
  { key: 'fastify', label: "Fastify's signal", plugin: false, passSignal: true },
  { key: 'hangup', label: 'fastify-hangup', plugin: true, passSignal: true }
]

async function startProxy (variant, upstreamUrl) {
  const app = Fastify({ logger: false })
  if (variant.plugin) await app.register(hangup) // <- the whole difference for (3)
  const signalFor = (request) => (variant.passSignal ? request.signal : undefined)
  const calls = new Map() // demo bookkeeping: x-demo-id -> { settledAt, error }

  // GET or POST /work: wait for the upstream's JSON answer, return it.
  app.route({
    method: ['GET', 'POST'],
    url: '/work',
    handler: tracked(calls, async (request) => {
      const { body } = await undici.request(`${upstreamUrl}/work`, {
        method: request.method,
        headers: { 'x-demo-id': request.headers['x-demo-id'], 'content-type': 'application/json' },
        body: request.method === 'POST' ? JSON.stringify(request.body) : undefined,
        signal: signalFor(request)
      })
      return body.json()
    })
  })

  // GET /stream: relay the upstream's chunks one by one, the way a handler
  // that re-frames them (as SSE, say) does.
  app.get('/stream', tracked(calls, async (request, reply) => {
    const { body } = await undici.request(`${upstreamUrl}/stream`, {
      headers: { 'x-demo-id': request.headers['x-demo-id'] },
      signal: signalFor(request)
    })
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/plain' })
    try {
      for await (const chunk of body) reply.raw.write(chunk)
      reply.raw.end()
    } catch (err) {
      reply.raw.destroy()
      throw err
    }
  }))

  await app.listen({ port: 0, host: '127.0.0.1' })
  return { variant, app, calls, port: app.server.address().port }
}

/** Notes when the handler (and so its upstream call) settled, and how. */
function tracked (calls, handler) {
  return async function (request, reply) {
    const call = { settledAt: null, error: null }
    calls.set(request.headers['x-demo-id'], call)
    try {
      return await handler(request, reply)
    } catch (err) {
      call.error = err
      if (reply.sent) return // hijacked: the response was already dealt with
      throw err // Fastify answers 500
    } finally {
      call.settledAt = now()
    }
  }
}

// ---------------------------------------------------------------------------
// The clients: plain node:http, one connection each, so a hang-up is real.
// ---------------------------------------------------------------------------

const CASES = [
  { key: 'get-wait', label: 'GET, client left while waiting', method: 'GET', path: '/work', hangUp: { afterMs: HANG_UP_AFTER_MS } },
  { key: 'post-wait', label: 'POST, client left while waiting', method: 'POST', path: '/work', hangUp: { afterMs: HANG_UP_AFTER_MS } },
  { key: 'get-stream', label: 'GET, client left mid-stream', method: 'GET', path: '/stream', hangUp: { afterChunks: HANG_UP_AFTER_CHUNKS } },
  { key: 'post-stay', label: 'POST, client stayed', method: 'POST', path: '/work', hangUp: null }
]

/**
 * Resolves, never rejects, with what the client saw: `hungUpAt` if it left,
 * `status`/`body`/`answeredAt` if it got an answer first, `error` otherwise.
 */
function runClient (port, kase, id) {
  return new Promise((resolve) => {
    const result = { startedAt: now(), hungUpAt: null, status: null, body: '', answeredAt: null, error: null, timedOut: false }
    const payload = kase.method === 'POST' ? JSON.stringify({ question: 'the answer?' }) : null
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: kase.method,
      path: kase.path,
      agent: false,
      headers: { 'x-demo-id': id, ...(payload && { 'content-type': 'application/json' }) }
    })
    let done = false
    const finish = () => {
      if (done) return
      done = true
      clearTimeout(hangUpTimer)
      clearTimeout(deadline)
      resolve(result)
    }
    const hangUp = () => {
      result.hungUpAt = now()
      req.destroy()
      finish()
    }
    const hangUpTimer = kase.hangUp?.afterMs ? setTimeout(hangUp, kase.hangUp.afterMs) : null
    const deadline = setTimeout(() => { result.timedOut = true; req.destroy(); finish() }, CASE_TIMEOUT_MS)

    req.on('response', (res) => {
      result.status = res.statusCode
      res.setEncoding('utf8')
      res.on('data', (text) => {
        result.body += text
        const lines = result.body.split('\n').length - 1
        if (kase.hangUp?.afterChunks && lines >= kase.hangUp.afterChunks && !done) hangUp()
      })
      res.on('end', () => { result.answeredAt = now(); finish() })
      res.on('error', () => {})
    })
    req.on('error', (err) => { if (!done) { result.error = err; finish() } })
    req.end(payload)
  })
}

// ---------------------------------------------------------------------------
// One case against one proxy, then what to say about it.
// ---------------------------------------------------------------------------

async function runCase (kase, proxy, upstream) {
  const id = `${kase.key}/${proxy.variant.key}`
  const deadline = now() + CASE_TIMEOUT_MS
  const client = await runClient(proxy.port, kase, id)
  // Then wait until the upstream's side is over too: its response closed, or
  // the proxy's call failed without ever reaching it.
  let upstreamRecord, call
  while (now() < deadline) {
    upstreamRecord = upstream.records.get(id)
    call = proxy.calls.get(id)
    if (upstreamRecord?.closedAt != null) break
    if (upstreamRecord === undefined && call?.settledAt != null && now() - call.settledAt > 250) break
    await sleep(5)
  }
  return { kase, variant: proxy.variant, client, upstream: upstreamRecord, call }
}

const fmtMs = (ms) => (ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`)
const fmtS = (ms) => `${(ms / 1000).toFixed(2)} s`

/** What happened, in words, plus the numbers the summary adds up. */
function describe (r) {
  const { client, upstream, call } = r
  const out = { text: '', saved: 0, wasted: 0, failedWhileThere: false, ok: false, finished: true }
  const closed = upstream?.closedAt != null
  const workMs = closed ? upstream.closedAt - upstream.startedAt : null
  const streamed = r.kase.path === '/stream'
  const reason = (text) => {
    try { return JSON.parse(text).message } catch { return text.slice(0, 60) }
  }
  const answer = () => client.status === null
    ? `${client.error?.code ?? client.error?.message} after ${fmtMs(now() - client.startedAt)}`
    : `${client.status} after ${fmtMs(client.answeredAt - client.startedAt)} ("${reason(client.body)}")`

  if (client.timedOut || (upstream !== undefined && !closed) || (upstream === undefined && call?.settledAt == null)) {
    out.finished = false
    out.text = `did not finish within ${CASE_TIMEOUT_MS / 1000} s`
    return out
  }

  if (r.kase.hangUp === null) { // the client that stays for its answer
    out.ok = client.status === 200
    out.failedWhileThere = !out.ok
    out.text = out.ok
      ? `client served: ${client.status} after ${fmtS(client.answeredAt - client.startedAt)}`
      : `client FAILED: ${answer()}`
    return out
  }

  if (client.hungUpAt === null) { // it meant to leave, but got an answer first
    out.failedWhileThere = client.status !== 200
    out.text = `client FAILED before it could leave: ${answer()}`
    return out
  }

  if (upstream === undefined) { // the proxy's call was aborted before it was sent
    out.ok = true
    out.saved = WORK_MS
    out.text = 'the upstream call was aborted before it was sent; all its work saved'
  } else if (upstream.finished) {
    out.wasted = upstream.closedAt - client.hungUpAt
    out.text = streamed
      ? `upstream streamed all ${CHUNKS} chunks (${fmtS(workMs)}) to nobody; 0 s saved`
      : `upstream ran to completion (${fmtS(workMs)}) for nobody; 0 s saved`
  } else {
    const late = upstream.closedAt - client.hungUpAt
    out.ok = late < STOPPED_WITHIN_MS
    out.saved = Math.max(0, WORK_MS - workMs)
    out.wasted = Math.max(0, late)
    out.text = `upstream stopped ${fmtMs(late)} after the client hung up` +
      (streamed ? ` (${upstream.chunks}/${CHUNKS} chunks)` : '') +
      `; ${fmtS(out.saved)} of upstream work saved`
  }
  return out
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

async function main () {
  const started = now()
  const watchdog = setTimeout(() => {
    console.error(`\ndemo: still running after ${WATCHDOG_MS / 1000} s, giving up`)
    process.exit(2)
  }, WATCHDOG_MS)
  watchdog.unref()

  const fastifyVersion = require('fastify/package.json').version
  const undiciVersion = require('undici/package.json').version
  const upstream = await startUpstream()
  const proxies = []
  try {
    for (const variant of VARIANTS) proxies.push(await startProxy(variant, upstream.url))

    console.log(`fastify-hangup demo (Node ${process.version}, Fastify ${fastifyVersion}, undici ${undiciVersion})

The upstream does ${fmtS(WORK_MS)} of "slow work" per request (or streams ${CHUNKS} chunks over ${fmtS(WORK_MS)}).
Three Fastify proxies call it with undici.request(), with the same code but for the signal:
  no signal          none at all (like @fastify/reply-from)
  Fastify's signal   { signal: request.signal }, Fastify's own request.signal
  fastify-hangup     { signal: request.signal }, after app.register(hangup)
GET /work and POST /work return the upstream's JSON; GET /stream relays the upstream's chunks
itself (reply.hijack(), then reply.raw.write() per chunk, as an SSE relay does).
Clients hang up after ${HANG_UP_AFTER_MS} ms (or after ${HANG_UP_AFTER_CHUNKS} chunks); one POST client stays for its answer.
`)
    const caseW = Math.max(...CASES.map((c) => c.label.length)) + 3
    const varW = Math.max(...VARIANTS.map((v) => v.label.length)) + 3
    // Warm-up, not reported: the first request through a cold proxy is slower than the others.
    await Promise.all(proxies.flatMap((proxy) => [
      runClient(proxy.port, { method: 'POST', path: '/work', hangUp: { afterMs: 50 } }, `warm-up/post/${proxy.variant.key}`),
      runClient(proxy.port, { method: 'GET', path: '/stream', hangUp: { afterChunks: 1 } }, `warm-up/stream/${proxy.variant.key}`)
    ]))

    const results = []
    const lines = []
    for (const kase of CASES) {
      // The three proxies get the same case at the same time.
      const rows = await Promise.all(proxies.map((proxy) => runCase(kase, proxy, upstream)))
      rows.forEach((row, i) => {
        const d = describe(row)
        results.push({ ...row, d })
        lines.push((i === 0 ? kase.label : '').padEnd(caseW) + row.variant.label.padEnd(varW) + d.text)
      })
    }
    const rule = '-'.repeat(Math.min(110, Math.max(...lines.map((l) => l.length))))
    console.log('CASE'.padEnd(caseW) + 'PROXY'.padEnd(varW) + 'WHAT HAPPENED (measured)')
    console.log(rule)
    for (const line of lines) console.log(line)

    const cols = ['upstream work saved', 'work for gone clients', 'clients failed while connected']
    console.log('\n' + 'TOTALS'.padEnd(caseW) + 'PROXY'.padEnd(varW) + cols[0].padEnd(23) + cols[1].padEnd(25) + cols[2])
    console.log(rule)
    for (const variant of VARIANTS) {
      const mine = results.filter((r) => r.variant === variant)
      const sum = (key) => mine.reduce((total, r) => total + r.d[key], 0)
      const failed = mine.filter((r) => r.d.failedWhileThere).length
      const unfinished = mine.filter((r) => !r.d.finished).length
      console.log(''.padEnd(caseW) + variant.label.padEnd(varW) + fmtS(sum('saved')).padEnd(23) +
        fmtS(sum('wasted')).padEnd(25) + `${failed} of ${mine.length}` +
        (unfinished ? `   (${unfinished} case(s) did not finish)` : ''))
    }

    // The take-away states what this run showed, not what it was expected to show.
    const row = (caseKey, variantKey) => results.find((r) => r.kase.key === caseKey && r.variant.key === variantKey).d
    const said = ['', 'What to take away:']
    if (['get-wait', 'post-wait', 'get-stream'].some((k) => row(k, 'none').wasted > WORK_MS / 2)) {
      said.push('  - With no signal the upstream works on for a client that is gone: each hang-up costs the whole',
        '    upstream call (its connection, its database query, its tokens...).')
    }
    if (row('post-stay', 'fastify').failedWhileThere) {
      said.push(`  - Fastify ${fastifyVersion}'s own request.signal aborts a request with a body as soon as the body has`,
        '    been read (fastify/fastify#6725): the proxied POST failed at once, even for the client that stayed.')
    }
    if (row('get-stream', 'fastify').wasted > WORK_MS / 2) {
      said.push("  - Fastify's signal also stops following the client once a handler hijacks the reply to stream",
        '    by hand (reply.hijack() removes its listener): the client that left mid-stream went unnoticed.')
    }
    if (results.every((r) => r.variant.key !== 'hangup' || r.d.ok)) {
      said.push('  - With app.register(hangup), request.signal aborted when the client hung up, in every phase, and',
        '    never while the client was still there. Pass it on: undici.request(url, { signal: request.signal }).')
    }
    said.push("  (A handler that hands undici's body to reply.send() is covered mid-stream by Fastify itself,",
      '  which destroys that body when the client leaves; the signal covers code that reads the body itself.)')
    console.log(said.join('\n'))

    const unexpected = results.filter((r) => r.variant.key === 'hangup' && !r.d.ok)
    if (unexpected.length > 0) {
      console.log('\nUNEXPECTED: fastify-hangup did not do what it documents in:')
      for (const r of unexpected) console.log(`  ${r.kase.label}: ${r.d.text}`)
    }
    console.log(`\nDemo finished in ${fmtS(now() - started)}.`)
  } finally {
    upstream.server.closeAllConnections() // whatever still runs (only after a failed case) ends now
    await Promise.all(proxies.map((p) => p.app.close()))
    await undici.getGlobalDispatcher().close()
    await new Promise((resolve) => upstream.server.close(resolve))
    clearTimeout(watchdog)
  }
}

main().catch((err) => {
  console.error('demo failed to run:', err)
  process.exitCode = 1
  setTimeout(() => process.exit(1), 1000).unref()
})
