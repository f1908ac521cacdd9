'use strict'

// Soak (node bench/soak.js): a long mixed workload through one Fastify app
// with the plugin, watching for what only shows after many requests: heap
// that grows, handles that stay, warnings (MaxListenersExceeded and the
// like), counters that drift. See bench/README.md.
//
//   clients (Node's http) --HTTP/1.1--> app (bench/soak-server.js, child) --undici--> upstream
//   \_____________ this process ______________/                                  (this process)
//
// Every request has a kind, from a fixed cycle of 20 (SCHEDULE): completed
// requests (no upstream call, one call, GET and POST, a fan-out of 4) on
// keep-alive and on fresh connections, hang-ups in every phase (upload,
// handler, response, and during a fan-out), and handler timeouts. A client
// that hangs up waits for the event that puts its request in the phase it
// wants (the server's 100 Continue, the upstream receiving the call, the
// first chunk of the response), so each hang-up's phase is known, not timed.
//
// At every mark (--sample-every, and 10% of the run) the load pauses, the
// process tree goes quiet (no request in flight anywhere, every connection
// closed) and the app reports its heap after GC, its active handles, the
// plugin's counters, its log lines by level and its warnings. The checks:
// heap growth from the 10% mark to the end under --max-growth-mb; the handles
// at every mark the same as after the warm-up; no warning; no log line at
// warn or above; every request answered as its kind expects; the plugin's
// disconnect counts and the upstream's cancelled calls equal to what the
// clients did. Exit code 1 if a check fails.

const http = require('node:http')
const net = require('node:net')
const fs = require('node:fs')
const path = require('node:path')
const { fork } = require('node:child_process')
const { once } = require('node:events')
const { setTimeout: sleep } = require('node:timers/promises')
const { isDeepStrictEqual } = require('node:util')
const { cli, list } = require('./cli.js')
const { loadPlugin } = require('./load-plugin.js')
const { machineInfo, warnIfBusy, versions: benchVersions } = require('./machine.js')

const HELP = `usage: node bench/soak.js [options]

  --requests <n>       requests after the warm-up                         (default 1000000)
  --warmup <n>         requests before the baseline sample                (default 2000)
  --concurrency <n>    clients in flight at once                          (default 32)
  --sample-every <n>   a quiet sample every n requests    (default: 1/20 of --requests)
  --max-growth-mb <n>  target: heap growth (after GC) from the 10% mark
                       to the end                                         (default 5)
  --pipelined <n>      requests pipelined behind the waiting one of a
                       hangup-pipelined (answered, never delivered)       (default 5)
  --kinds <list>       only these kinds of request, in the cycle's order
                       (default: the whole cycle; see KINDS in the source)
  --out <file>         JSON output (default bench/results/soak-<node-version>.json)
  --quiet              no line per sample
  --help
`

const { fail, int, parse } = cli('soak', HELP)

/** Bound on every wait for an event of one request (a stuck request is a failure, not a hang). */
const STEP_TIMEOUT_MS = 10_000
/** Bound on the wait for the process tree to go quiet at a mark. */
const QUIET_TIMEOUT_MS = 15_000
const FANOUT = 4
const BODY = Buffer.from(JSON.stringify({ payload: 'x'.repeat(1024) }))

function readOptions () {
  const values = parse({
    requests: { type: 'string' },
    warmup: { type: 'string' },
    concurrency: { type: 'string' },
    'sample-every': { type: 'string' },
    'max-growth-mb': { type: 'string' },
    kinds: { type: 'string' },
    pipelined: { type: 'string' },
    out: { type: 'string' },
    quiet: { type: 'boolean' }
  })
  const requests = int('--requests', values.requests, 1_000_000, 1000)
  const growthMb = Number(values['max-growth-mb'] ?? 5)
  if (!(growthMb > 0)) fail(`--max-growth-mb must be a number > 0, got ${values['max-growth-mb']}`)
  const schedule = values.kinds === undefined ? SCHEDULE : list(values.kinds)
  for (const k of schedule) if (!Object.hasOwn(KINDS, k)) fail(`unknown kind ${k}; the kinds: ${Object.keys(KINDS).join(', ')}`)
  return {
    requests,
    schedule,
    warmup: int('--warmup', values.warmup, 2000, 0),
    concurrency: int('--concurrency', values.concurrency, 32, 1),
    pipelined: int('--pipelined', values.pipelined, 5, 1),
    sampleEvery: int('--sample-every', values['sample-every'], Math.max(1000, Math.round(requests / 20)), 100),
    maxGrowthBytes: growthMb * 2 ** 20,
    out: values.out ?? path.join(__dirname, 'results', `soak-${process.version}.json`),
    quiet: values.quiet ?? false
  }
}

// ---------------------------------------------------------------- upstream

/**
 * The upstream, in this process so that a client can wait for its call to
 * arrive. /work answers at once (POST: the byte count of the body); /stall
 * never answers; /stream writes a chunk every 5 ms until its client goes.
 * Counts calls by path and whether each ended by completing or by closing early.
 */
async function startUpstream () {
  const counts = { started: 0, completed: 0, closedEarly: 0, byPath: {} }
  let open = 0
  const waiters = new Map()

  function arrived (id) {
    const w = waiters.get(id)
    if (w !== undefined && --w.left === 0) {
      waiters.delete(id)
      w.resolve()
    }
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://upstream')
    const p = url.pathname
    const id = url.searchParams.get('id')
    counts.started++
    counts.byPath[p] = (counts.byPath[p] ?? 0) + 1
    open++
    res.once('close', () => {
      open--
      if (res.writableFinished) counts.completed++
      else counts.closedEarly++
    })
    if (p === '/work') {
      let bytes = 0
      req.on('data', (chunk) => { bytes += chunk.length })
      req.once('end', () => {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify(req.method === 'POST' ? { bytes } : { id }))
      })
    } else if (p === '/stall') {
      req.resume()
      arrived(id)
    } else if (p === '/stream') {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('chunk\n')
      const timer = setInterval(() => res.write('chunk\n'), 5)
      res.once('close', () => clearInterval(timer))
      arrived(id)
    } else {
      res.statusCode = 404
      res.end()
    }
  })
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    counts,
    open: () => open,
    /** Resolves once `n` calls of request `id` reached the upstream; call before sending. */
    arrival (id, n) {
      return new Promise((resolve) => waiters.set(id, { left: n, resolve }))
    },
    forget (id) { waiters.delete(id) },
    closeIdle: () => server.closeIdleConnections(),
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve) })
  }
}

// ---------------------------------------------------------------- the app

async function startApp (upstreamUrl) {
  const child = fork(path.join(__dirname, 'soak-server.js'), [upstreamUrl], {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const [ready] = await once(child, 'message')
  if (ready?.type !== 'ready') throw new Error(`soak server: unexpected first message ${JSON.stringify(ready)}`)
  let pending = null
  child.on('message', (msg) => {
    if (msg?.type === 'sample' && pending !== null) pending.resolve(msg)
  })
  const exited = once(child, 'exit')
  exited.then(() => pending?.reject(new Error('soak server exited')))
  return {
    port: ready.port,
    pid: ready.pid,
    /** One sample (heap after GC, handles, counters, logs), within 10 s. */
    sample () {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => settle(reject, new Error('soak server: no sample in 10 s')), 10_000)
        function settle (how, value) {
          clearTimeout(timer)
          pending = null
          how(value)
        }
        pending = { resolve: (msg) => settle(resolve, msg), reject: (err) => settle(reject, err) }
        child.send('sample')
      })
    },
    async stop () {
      if (child.exitCode === null && child.signalCode === null) {
        child.send('stop')
        const kill = setTimeout(() => child.kill('SIGKILL'), 10_000)
        await exited
        clearTimeout(kill)
      }
    }
  }
}

// ---------------------------------------------------------------- clients

/** Resolves with the first of `emitter`'s `event`, rejects on 'error' or after STEP_TIMEOUT_MS. */
function next (emitter, event) {
  return once(emitter, event, { signal: AbortSignal.timeout(STEP_TIMEOUT_MS) })
}

function within (promise, what) {
  let timer
  return Promise.race([
    promise,
    new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`no ${what} in ${STEP_TIMEOUT_MS} ms`)), STEP_TIMEOUT_MS) })
  ]).finally(() => clearTimeout(timer))
}

function clients (port, upstream, pipelined) {
  let agent = new http.Agent({ keepAlive: true, maxSockets: Infinity })

  function open (method, p, { fresh = false, headers = {} } = {}) {
    return http.request({ host: '127.0.0.1', port, method, path: p, agent: fresh ? false : agent, headers })
  }

  /** Sends the whole request: a POST carries BODY. */
  function send (method, p, fresh = false) {
    const body = method === 'POST' ? BODY : undefined
    const req = open(method, p, { fresh, headers: body ? { 'content-type': 'application/json', 'content-length': body.length } : {} })
    req.end(body)
    return req
  }

  /** A whole exchange: resolves { status, body } once the response ended. */
  async function exchange (method, p, { fresh = false } = {}) {
    const req = send(method, p, fresh)
    const [res] = await next(req, 'response')
    const chunks = []
    res.on('data', (c) => chunks.push(c))
    await next(res, 'end')
    return { status: res.statusCode, body: Buffer.concat(chunks).toString() }
  }

  /** Sends, waits for `ready` (the event that sets the phase), then destroys the socket. */
  async function hangUp (req, ready) {
    req.on('error', () => {}) // the client's own "socket hang up" after destroy()
    try {
      await ready
    } finally {
      req.destroy()
    }
  }

  return {
    exchange,
    /** Upload: the server's 100 Continue says it has the request; half the body, then gone. */
    async hangUpUpload (p) {
      const req = open('POST', p, { headers: { 'content-type': 'application/json', 'content-length': BODY.length, expect: '100-continue' } })
      req.flushHeaders()
      await hangUp(req, next(req, 'continue').then(() => { req.write(BODY.subarray(0, BODY.length >> 1)) }))
    },
    /** Handler: gone once the upstream has all `calls` of this request. */
    async hangUpHandler (method, p, id, calls, fresh) {
      const arrival = upstream.arrival(id, calls)
      const req = send(method, p, fresh)
      try {
        await hangUp(req, within(arrival, `upstream call of ${p}`))
      } finally {
        upstream.forget(id)
      }
    },
    /** Response: gone after the first chunk of a streamed response. */
    async hangUpResponse (p) {
      const req = send('GET', p)
      await hangUp(req, next(req, 'response').then(([res]) => {
        if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`)
        return next(res, 'data')
      }))
    },
    /**
     * Pipelined: a GET that waits on the upstream and `pipelined` GET /fast
     * behind it, in one write on one connection, reset (RST) once the
     * upstream has the first one's call. The write is small (about 40 bytes
     * a request): the app reads it at once, and answers the ones behind the
     * first (queued) before the first's call can leave it, so each is known
     * to be in its phase.
     */
    async hangUpPipelined (p, id) {
      const arrival = upstream.arrival(id, 1)
      const socket = net.connect(port, '127.0.0.1')
      socket.on('error', () => {})
      try {
        await next(socket, 'connect')
        const head = (target) => `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`
        socket.write(head(p) + head('/fast').repeat(pipelined))
        await within(arrival, `upstream call of ${p}`)
      } finally {
        upstream.forget(id)
        socket.resetAndDestroy()
      }
    },
    /** Closes every idle keep-alive connection (at a mark, so the process tree can go quiet). */
    reset () {
      agent.destroy()
      agent = new http.Agent({ keepAlive: true, maxSockets: Infinity })
    },
    destroy: () => agent.destroy()
  }
}

// ---------------------------------------------------------------- the mix

function expectJson (expected) {
  return ({ status, body }) => {
    if (status !== 200 || body !== JSON.stringify(expected)) throw new Error(`expected 200 ${JSON.stringify(expected)}, got ${status} ${body.slice(0, 200)}`)
  }
}

const POST_BYTES = BODY.length // Fastify parses the JSON and /proxy re-serializes it: same bytes

/**
 * The kinds of request. `calls`: upstream calls it makes; `cancels`: those
 * left running for the plugin to cancel; `phase`: the phase its hang-up is
 * counted in; `explicit`: its calls are given `request.signal` (the others
 * are bound by autoBind alone). `fresh` connections send `Connection: close`
 * (Node's http without an agent); the others share one keep-alive agent, so
 * most hang-ups cut a connection that served requests before.
 */
const KINDS = {
  fast: { calls: 0, run: (c) => c.exchange('GET', '/fast').then(expectJson({ ok: true })) },
  'proxy-get': { calls: 1, run: (c, id) => c.exchange('GET', `/proxy?id=${id}`).then(expectJson({ id: String(id) })) },
  'proxy-get-signal': { calls: 1, explicit: true, run: (c, id) => c.exchange('GET', `/proxy?id=${id}&signal=1`).then(expectJson({ id: String(id) })) },
  'proxy-post': { calls: 1, run: (c, id) => c.exchange('POST', `/proxy?id=${id}`).then(expectJson({ bytes: POST_BYTES })) },
  'fresh-get': { calls: 1, run: (c, id) => c.exchange('GET', `/proxy?id=${id}`, { fresh: true }).then(expectJson({ id: String(id) })) },
  'fresh-post': { calls: 1, run: (c, id) => c.exchange('POST', `/proxy?id=${id}&signal=1`, { fresh: true }).then(expectJson({ bytes: POST_BYTES })) },
  fanout: { calls: FANOUT, run: (c, id) => c.exchange('GET', `/fanout?id=${id}&n=${FANOUT}`).then(expectJson({ n: FANOUT })) },
  timeout: {
    calls: 1,
    cancels: 1,
    run: (c, id) => c.exchange('GET', `/timeout?id=${id}`).then(({ status }) => {
      if (status !== 503) throw new Error(`expected 503 from the handler timeout, got ${status}`)
    })
  },
  'hangup-upload': { phase: 'upload', calls: 0, run: (c) => c.hangUpUpload('/proxy') },
  'hangup-handler': { phase: 'handler', calls: 1, cancels: 1, explicit: true, run: (c, id) => c.hangUpHandler('GET', `/stall?id=${id}&signal=1`, String(id), 1, false) },
  'hangup-handler-post-fresh': { phase: 'handler', calls: 1, cancels: 1, run: (c, id) => c.hangUpHandler('POST', `/stall?id=${id}`, String(id), 1, true) },
  'hangup-fanout': { phase: 'handler', calls: FANOUT, cancels: FANOUT, run: (c, id) => c.hangUpHandler('GET', `/fanout?id=${id}&n=${FANOUT}&path=stall`, String(id), FANOUT, false) },
  'hangup-response': { phase: 'response', calls: 1, cancels: 1, run: (c, id) => c.hangUpResponse(`/stream?id=${id}`) },
  // `queued`: --pipelined requests behind it, hang-ups in phase 'response' (answered, never delivered).
  'hangup-pipelined': { phase: 'handler', queued: true, calls: 1, cancels: 1, run: (c, id) => c.hangUpPipelined(`/stall?id=${id}`, String(id)) }
}

/**
 * The cycle of 20: 13 completed (5 with no upstream call, 6 with one, among
 * them 2 on fresh connections, 1 fan-out), 6 hang-ups (upload, handler GET
 * on a kept-alive connection, handler POST on a fresh one, response,
 * fan-out, pipelined) and 1 handler timeout.
 */
const SCHEDULE = [
  'fast', 'proxy-get', 'hangup-handler', 'fast', 'proxy-post', 'fresh-get', 'hangup-upload',
  'fast', 'proxy-get-signal', 'fanout', 'hangup-response', 'fast', 'timeout', 'proxy-post',
  'hangup-handler-post-fresh', 'hangup-pipelined', 'fresh-post', 'hangup-fanout', 'fast', 'proxy-get'
]

function kindOf (schedule, i) {
  return schedule[i % schedule.length]
}

/** What the clients did, by kind, and what that should have made the app and the upstream count. */
function tally (pipelined) {
  const byKind = Object.fromEntries(Object.keys(KINDS).map((k) => [k, { sent: 0, failed: 0 }]))
  const failures = []
  return {
    byKind,
    failures,
    record (kind, err) {
      byKind[kind].sent++
      if (err !== undefined) {
        byKind[kind].failed++
        if (failures.length < 20) failures.push(`${kind}: ${err.message}`)
      }
    },
    expected () {
      const disconnects = { upload: 0, handler: 0, response: 0 }
      let completedCalls = 0
      let hangUpCalls = 0
      let timeoutCalls = 0
      const cancelledBy = { clientDisconnected: 0, handlerTimeout: 0 }
      for (const [kind, { sent }] of Object.entries(byKind)) {
        const k = KINDS[kind]
        if (k.phase) disconnects[k.phase] += sent
        if (k.queued) disconnects.response += pipelined * sent
        completedCalls += (k.calls - (k.cancels ?? 0)) * sent
        if (k.phase) hangUpCalls += (k.cancels ?? 0) * sent
        else timeoutCalls += (k.cancels ?? 0) * sent
        // A call given request.signal is aborted by undici's own listener on
        // it, which ends the call before the interceptor gets to cancel it:
        // stats() counts only the calls autoBind alone cancelled.
        if (!k.explicit) cancelledBy[k.phase ? 'clientDisconnected' : 'handlerTimeout'] += (k.cancels ?? 0) * sent
      }
      return { disconnects, completedCalls, hangUpCalls, timeoutCalls, cancelledBy: since(cancelledBy, {}) }
    }
  }
}

/** Runs requests [from, to) of the cycle, `concurrency` at a time. */
async function runRange (from, to, { concurrency, schedule }, c, counts) {
  let i = from
  async function lane () {
    while (i < to) {
      const id = i++
      const kind = kindOf(schedule, id)
      try {
        await KINDS[kind].run(c, id)
        counts.record(kind)
      } catch (err) {
        counts.record(kind, err)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
}

// ---------------------------------------------------------------- marks

/**
 * Waits until nothing is in flight anywhere (the app's counter, the
 * upstream's open calls) and no connection is left (the clients' keep-alive
 * sockets are closed, then the upstream's idle ones, so undici's go too),
 * then takes the sample. Polls the app every 20 ms, at most QUIET_TIMEOUT_MS.
 */
async function quietSample (app, upstream, c, baseline) {
  c.reset()
  const deadline = Date.now() + QUIET_TIMEOUT_MS
  let s
  for (;;) {
    upstream.closeIdle()
    s = await app.sample()
    const sockets = s.resources.TCPSocketWrap ?? 0
    const quiet = s.stats.inflight === 0 && upstream.open() === 0 && s.connections === 0 && sockets === 0
    if (quiet && (baseline === undefined || isDeepStrictEqual(s.resources, baseline.resources))) return { ...s, quiet: true }
    if (Date.now() > deadline) return { ...s, quiet: false, upstreamOpen: upstream.open() }
    await sleep(20)
  }
}

function mb (bytes) {
  return (bytes / 2 ** 20).toFixed(2)
}

function marksOf (opts) {
  const marks = new Set([Math.round(opts.requests / 10), opts.requests])
  for (let m = opts.sampleEvery; m < opts.requests; m += opts.sampleEvery) marks.add(m)
  return [...marks].sort((a, b) => a - b)
}

// ---------------------------------------------------------------- checks

/** Log lines whose key ("<level> <message> (<code>)", bench/log-counter.js) passes `which`. */
function sumLines (byMessage, which) {
  let n = 0
  for (const [key, count] of Object.entries(byMessage)) if (which(key, Number(key.split(' ', 1)[0]))) n += count
  return n
}

/** `now` minus `then`, key by key (counters since the baseline). */
function since (now, then) {
  return Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - (then[k] ?? 0)]).filter(([, v]) => v !== 0))
}

function checksOf (result, opts) {
  const { baseline, samples, expected, final } = result
  const growthMark = samples.find((s) => s.requests === Math.round(opts.requests / 10))
  const end = samples.at(-1)
  const growth = end.heapUsed - growthMark.heapUsed
  // Fastify logs each handler timeout twice at `error`, with or without the
  // plugin: its 503 ("Request timed out ...") and, once the handler rejects
  // with the signal's reason, "Promise errored, but reply.sent = true was
  // set". Server-side events, counted apart; everything else at warn or above
  // (a hang-up's aftermath above all) is a failure.
  const timeoutLines = sumLines(result.logLines, (key) => key.endsWith('(FST_ERR_HANDLER_TIMEOUT)'))
  const warnOrAbove = sumLines(result.logLines, (key, level) => level >= 40 && !key.endsWith('(FST_ERR_HANDLER_TIMEOUT)'))
  const failed = Object.values(result.byKind).reduce((n, k) => n + k.failed, 0)
  const up = result.upstream
  const timeoutsSeen = up.closedEarly - expected.hangUpCalls
  return [
    { name: `heap growth ${growthMark.requests} -> ${end.requests} requests < ${mb(opts.maxGrowthBytes)} MB`, value: `${mb(growth)} MB`, ok: growth < opts.maxGrowthBytes },
    { name: 'every sample quiet, with the baseline\'s handles', value: samples.filter((s) => !s.quiet).map((s) => s.requests).join(', ') || 'all', ok: samples.every((s) => s.quiet) && isDeepStrictEqual(end.resources, baseline.resources) },
    { name: 'no warning (app and load generator)', value: [...final.warnings, ...result.warnings].join('; ') || 'none', ok: final.warnings.length === 0 && result.warnings.length === 0 },
    { name: 'no log line at warn or above (handler timeouts apart)', value: warnOrAbove, ok: warnOrAbove === 0 },
    { name: 'Fastify\'s two error lines per handler timeout, no more', value: `${timeoutLines} for ${result.byKind.timeout.sent} timeouts`, ok: timeoutLines === 2 * result.byKind.timeout.sent },
    { name: 'every request answered as its kind expects', value: failed, ok: failed === 0 },
    { name: 'disconnects counted by phase = hang-ups sent', value: JSON.stringify(final.stats.disconnects), ok: isDeepStrictEqual(final.stats.disconnects, expected.disconnects) },
    { name: 'upstream: every call of a request that completed completed', value: `${up.completed} of ${expected.completedCalls}`, ok: up.completed === expected.completedCalls },
    // A hang-up waits for its calls to reach the upstream, so each is there
    // to be cancelled; a timeout's call may be cancelled before it is sent
    // (the 20 ms can run out while it connects): at most one per timeout.
    {
      name: 'upstream: every call left running by a hang-up closed early, and by a timeout at most',
      value: `${up.closedEarly} closed early: ${expected.hangUpCalls} left by hang-ups, ${timeoutsSeen} of ${expected.timeoutCalls} by timeouts (the others cancelled before they were sent)`,
      ok: timeoutsSeen >= 0 && timeoutsSeen <= expected.timeoutCalls && up.started === up.completed + up.closedEarly
    },
    { name: 'upstream calls the plugin cancelled, by reason', value: JSON.stringify(final.stats.upstream.cancelled), ok: isDeepStrictEqual(final.stats.upstream.cancelled, expected.cancelledBy) },
    { name: 'app: nothing in flight, no fatal', value: `inflight ${final.stats.inflight}, fatal ${final.stats.fatal}`, ok: final.stats.inflight === 0 && final.stats.fatal === 0 }
  ]
}

// ---------------------------------------------------------------- main

function summary (s, requests, t0) {
  return {
    requests,
    seconds: Math.round((Date.now() - t0) / 100) / 10,
    quiet: s.quiet,
    heapUsed: s.heap.heapUsed,
    heapTotal: s.heap.heapTotal,
    external: s.heap.external,
    rss: s.heap.rss,
    resources: s.resources,
    connections: s.connections,
    inflight: s.stats.inflight,
    disconnects: s.stats.disconnects,
    upstream: s.stats.upstream,
    logLines: s.logs.lines,
    warnings: s.warnings.length
  }
}

async function main () {
  const opts = readOptions()
  loadPlugin() // fails early, with a clear message, when dist/ is not built
  const versions = benchVersions()
  console.log(`fastify-hangup soak: Node ${versions.node}, fastify ${versions.fastify}, undici ${versions.undici}; ${opts.requests} requests after ${opts.warmup} of warm-up, ${opts.concurrency} at once`)
  const warnings = []
  process.on('warning', (w) => { if (warnings.length < 20) warnings.push(`${w.name}: ${w.message}`) })
  const idleBeforeStart = await warnIfBusy()
  const startedAt = new Date()
  const upstream = await startUpstream()
  const app = await startApp(upstream.url)
  const c = clients(app.port, upstream, opts.pipelined)
  const counts = tally(opts.pipelined)
  const samples = []
  let result
  try {
    await runRange(0, opts.warmup, opts, c, tally(opts.pipelined))
    const warm = await quietSample(app, upstream, c)
    if (!warm.quiet) throw new Error(`the process tree did not go quiet after the warm-up: ${JSON.stringify(warm.resources)}`)
    const baseline = summary(warm, 0, Date.now())
    const upstreamAtBaseline = { ...upstream.counts }
    const statsAtBaseline = warm.stats
    if (!opts.quiet) console.log(`baseline: heap ${mb(baseline.heapUsed)} MB, rss ${mb(baseline.rss)} MB, handles ${JSON.stringify(baseline.resources)}`)
    const t0 = Date.now()
    let done = 0
    let final
    for (const mark of marksOf(opts)) {
      await runRange(opts.warmup + done, opts.warmup + mark, opts, c, counts)
      done = mark
      final = await quietSample(app, upstream, c, baseline)
      const s = summary(final, mark, t0)
      samples.push(s)
      if (!opts.quiet) {
        console.log(`${String(mark).padStart(8)} requests ${String(s.seconds).padStart(6)} s  heap ${mb(s.heapUsed).padStart(6)} MB (${s.heapUsed >= baseline.heapUsed ? '+' : ''}${mb(s.heapUsed - baseline.heapUsed)})  rss ${mb(s.rss)} MB  handles ${s.quiet ? 'as at the baseline' : `NOT QUIET ${JSON.stringify(s.resources)}`}`)
      }
    }
    // The last mark's sample is the end state. Its counters since the
    // baseline: the warm-up's requests are not in `counts`.
    final.stats = {
      ...final.stats,
      disconnects: { upload: 0, handler: 0, response: 0, ...since(final.stats.disconnects, statsAtBaseline.disconnects) },
      upstream: { bound: final.stats.upstream.bound - statsAtBaseline.upstream.bound, cancelled: since(final.stats.upstream.cancelled, statsAtBaseline.upstream.cancelled) }
    }
    const elapsed = (Date.now() - t0) / 1000
    result = {
      benchmark: 'soak',
      date: startedAt.toISOString(),
      machine: { ...machineInfo(), idleBeforeStart },
      versions,
      options: { ...opts, out: undefined },
      seconds: Math.round(elapsed * 10) / 10,
      requestsPerSecond: Math.round(opts.requests / elapsed),
      baseline,
      samples,
      byKind: counts.byKind,
      failures: counts.failures,
      expected: counts.expected(),
      upstream: { started: upstream.counts.started - upstreamAtBaseline.started, completed: upstream.counts.completed - upstreamAtBaseline.completed, closedEarly: upstream.counts.closedEarly - upstreamAtBaseline.closedEarly },
      final: { stats: final.stats, warnings: final.warnings },
      logLines: since(final.logs.byMessage, warm.logs.byMessage),
      logSamples: final.logs.samples,
      warnings
    }
    result.checks = checksOf(result, opts)
  } finally {
    c.destroy()
    await app.stop()
    await upstream.close()
  }
  fs.mkdirSync(path.dirname(opts.out), { recursive: true })
  fs.writeFileSync(opts.out, JSON.stringify(result, null, 2) + '\n')
  console.log(`\n${opts.requests} requests in ${result.seconds} s (${result.requestsPerSecond}/s); results: ${path.relative(process.cwd(), opts.out)}`)
  for (const check of result.checks) console.log(`${check.ok ? 'ok  ' : 'FAIL'}  ${check.name}: ${check.value}`)
  if (result.failures.length > 0) console.log(`first failures:\n  ${result.failures.join('\n  ')}`)
  process.exitCode = result.checks.every((check) => check.ok) ? 0 : 1
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
