'use strict'

const { cli, list } = require('./cli.js')

// Time from a client's hang-up to the upstream seeing its request closed
// (node bench/hangup-latency.js). See bench/README.md.
//
//   client --(raw TCP)--> Fastify proxy --(undici.request)--> upstream
//
// The upstream holds every request (10 s by default) and stamps
// performance.now() when its response closes. The client sends a request,
// waits until the upstream has it, stamps performance.now() and destroys its
// socket. Client, proxies and upstream live in this one process, so both
// stamps come from the same monotonic clock. Modes:
//
//   plugin   fastify-hangup's request.signal passed to undici
//   fastify  Fastify's own request.signal (no plugin); for a GET on HTTP/1 it
//            does abort on the request's 'close'
//   none     no signal: the upstream is never told and holds for its full time
//
// plugin and fastify are measured in alternation (ABBA...) so that drift of
// the machine lands on both; none runs last with a few requests and a shorter
// hold (it takes the full hold each time, by design).

const http = require('node:http')
const net = require('node:net')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { loadPlugin } = require('./load-plugin.js')
const { machineInfo, warnIfBusy, versions: benchVersions } = require('./machine.js')

const HELP = `usage: node bench/hangup-latency.js [options]

  --n <count>          measured hang-ups per signal mode      (BENCH_N, default 1000)
  --warmup <count>     unmeasured hang-ups per mode first     (BENCH_WARMUP_N, default 50)
  --hold <ms>          how long the upstream holds a request  (default 10000)
  --none-n <count>     requests for the no-signal mode        (default 5)
  --none-hold <ms>     upstream hold in the no-signal mode    (default 1000)
  --max-seconds <s>    stop measuring after this long         (default 90)
  --modes <list>       plugin,fastify,none                    (default all)
  --out <file>         JSON output (default bench/results/hangup-latency-<node-version>.json)
  --help
`

const { fail, int, parse } = cli('hangup-latency', HELP)

function readOptions () {
  const values = parse({
    n: { type: 'string' },
    warmup: { type: 'string' },
    hold: { type: 'string' },
    'none-n': { type: 'string' },
    'none-hold': { type: 'string' },
    'max-seconds': { type: 'string' },
    modes: { type: 'string' },
    out: { type: 'string' },
  })
  const modes = list(values.modes ?? 'plugin,fastify,none')
  for (const m of modes) if (!['plugin', 'fastify', 'none'].includes(m)) fail(`unknown mode ${m}`)
  return {
    n: int('--n', values.n ?? process.env.BENCH_N, 1000, 1),
    warmup: int('--warmup', values.warmup ?? process.env.BENCH_WARMUP_N, 50, 0),
    hold: int('--hold', values.hold, 10_000, 1),
    noneN: int('--none-n', values['none-n'], 5, 1),
    noneHold: int('--none-hold', values['none-hold'], 1000, 1),
    maxSeconds: int('--max-seconds', values['max-seconds'], 90, 1),
    modes,
    out: values.out ?? path.join(__dirname, 'results', `hangup-latency-${process.version}.json`)
  }
}

/**
 * The upstream: holds each request `hold` ms (a timer cleared when the
 * request closes early) and reports when it received it and when its
 * response closed. Requests are matched by the `id` in the query string.
 */
async function startUpstream () {
  const waiting = new Map()
  let hold = 0
  const server = http.createServer((req, res) => {
    const id = new URL(req.url, 'http://upstream').searchParams.get('id')
    const record = { receivedAt: performance.now(), closedAt: 0, completed: false }
    const timer = setTimeout(() => {
      record.completed = true
      res.end('held to the end')
    }, hold)
    res.on('close', () => {
      record.closedAt = performance.now()
      clearTimeout(timer)
      waiting.get(id)?.closed(record)
    })
    waiting.get(id)?.received(record)
  })
  server.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    setHold (ms) { hold = ms },
    /** Promises for request `id`: received by the upstream, then closed. */
    expect (id) {
      const w = {}
      w.receivedP = new Promise((resolve) => { w.received = resolve })
      w.closedP = new Promise((resolve) => { w.closed = resolve })
      waiting.set(id, w)
      return w
    },
    forget (id) { waiting.delete(id) },
    close () {
      server.closeAllConnections()
      return new Promise((resolve) => server.close(resolve))
    }
  }
}

/** A proxy: GET /proxy?id= calls the upstream with undici, with or without a signal. */
async function startProxy (mode, upstream, undici, marks) {
  const Fastify = require('fastify')
  const app = Fastify({ logger: false })
  if (mode === 'plugin') await app.register(loadPlugin())
  const dispatcher = new undici.Agent()
  app.get('/proxy', async function proxy (request) {
    const id = request.query.id
    const options = { dispatcher }
    if (mode !== 'none') {
      options.signal = request.signal
      // Registered before undici's own listener, so it runs just before it.
      const signal = options.signal
      signal.addEventListener('abort', () => {
        marks.set(id, { at: performance.now(), reason: reasonName(signal.reason) })
      }, { once: true })
    }
    const res = await undici.request(`${upstream.url}/?id=${id}`, options)
    return res.body.text()
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    mode,
    port: app.server.address().port,
    async close () {
      await app.close()
      await dispatcher.close()
    }
  }
}

/** FST_HANGUP_CLIENT_DISCONNECTED, or a DOMException's name (its numeric code says little). */
function reasonName (reason) {
  if (typeof reason?.code === 'string') return reason.code
  return reason?.name ?? String(reason)
}

let nextId = 0

/** One hang-up: send, wait until the upstream has the request, hang up, wait for its close. */
async function hangUp (proxy, upstream, marks, timeoutMs) {
  const id = String(++nextId)
  const w = upstream.expect(id)
  const socket = net.connect(proxy.port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(`GET /proxy?id=${id} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
  let timer
  const timeout = new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs, null) })
  try {
    const received = await Promise.race([w.receivedP, timeout])
    if (received === null) return { id, timedOut: 'before the upstream received the request' }
    const hungUpAt = performance.now()
    socket.destroy()
    const record = await Promise.race([w.closedP, timeout])
    if (record === null) return { id, timedOut: 'before the upstream closed' }
    const mark = marks.get(id)
    const abortAt = mark?.at
    return {
      id,
      latencyMs: record.closedAt - hungUpAt,
      toSignalMs: abortAt === undefined ? null : abortAt - hungUpAt,
      signalToUpstreamMs: abortAt === undefined ? null : record.closedAt - abortAt,
      upstreamHeldMs: record.closedAt - record.receivedAt,
      upstreamCompleted: record.completed,
      abortReason: mark?.reason ?? null
    }
  } finally {
    clearTimeout(timer)
    socket.destroy()
    upstream.forget(id)
    marks.delete(id)
  }
}

function quantile (sorted, q) {
  if (sorted.length === 0) return null
  // Nearest rank: the smallest value with at least q of the samples at or below it.
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]
}

function distribution (values) {
  const s = values.filter((v) => v !== null).sort((a, b) => a - b)
  if (s.length === 0) return null
  const round = (v) => Math.round(v * 1000) / 1000
  return {
    count: s.length,
    p50: round(quantile(s, 0.5)),
    p90: round(quantile(s, 0.9)),
    p99: round(quantile(s, 0.99)),
    max: round(s[s.length - 1]),
    min: round(s[0]),
    mean: round(s.reduce((a, b) => a + b, 0) / s.length)
  }
}

function summarize (mode, results, wanted, hold) {
  const ok = results.filter((r) => r.timedOut === undefined)
  const reasons = {}
  for (const r of ok) if (r.abortReason !== null) reasons[r.abortReason] = (reasons[r.abortReason] ?? 0) + 1
  return {
    mode,
    upstreamHoldMs: hold,
    wanted,
    measured: ok.length,
    timedOut: results.length - ok.length,
    upstreamCompleted: ok.filter((r) => r.upstreamCompleted).length,
    abortReasons: reasons,
    hangupToUpstreamCloseMs: distribution(ok.map((r) => r.latencyMs)),
    over2Ms: ok.filter((r) => r.latencyMs > 2).length,
    hangupToSignalAbortMs: distribution(ok.map((r) => r.toSignalMs)),
    signalAbortToUpstreamCloseMs: distribution(ok.map((r) => r.signalToUpstreamMs)),
    upstreamHeldMs: distribution(ok.map((r) => r.upstreamHeldMs))
  }
}

const ms = (v) => (v === null || v === undefined ? '-' : v < 100 ? v.toFixed(3) : v.toFixed(0))

function printSummary (summaries) {
  const rows = [['mode', 'n', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', '> 2 ms', 'to signal p50/p99', 'upstream ran to the end']]
  for (const s of summaries) {
    const d = s.hangupToUpstreamCloseMs ?? {}
    const sig = s.hangupToSignalAbortMs
    rows.push([
      s.mode,
      String(s.measured),
      ms(d.p50), ms(d.p90), ms(d.p99), ms(d.max), String(s.over2Ms),
      sig === null ? '-' : `${ms(sig.p50)}/${ms(sig.p99)}`,
      `${s.upstreamCompleted}/${s.measured} (hold ${s.upstreamHoldMs} ms)`
    ])
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)))
  const line = (r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')
  console.log('\n' + line(rows[0]))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows.slice(1)) console.log(line(r))
  console.log('\nms: from the client destroying its socket to the upstream response\'s \'close\' (one process, one clock).')
  console.log('to signal: from the hang-up to request.signal\'s \'abort\' event in the proxy.')
}

async function main () {
  const opts = readOptions()
  loadPlugin() // fails early, with a clear message, when dist/ is not built
  const undici = require('undici')
  console.log(`fastify-hangup hang-up latency: Node ${process.version}, fastify ${require('fastify/package.json').version}, undici ${require('undici/package.json').version}`)
  console.log(`${os.cpus()[0]?.model} x${os.cpus().length}; n=${opts.n} per signal mode (+${opts.warmup} warm-up), upstream hold ${opts.hold} ms; no signal: n=${opts.noneN}, hold ${opts.noneHold} ms`)

  const idleBeforeStart = await warnIfBusy()
  const upstream = await startUpstream()
  const marks = new Map()
  const proxies = {}
  const startedAt = Date.now()
  const deadline = Date.now() + opts.maxSeconds * 1000
  const summaries = []
  try {
    for (const mode of opts.modes) proxies[mode] = await startProxy(mode, upstream, undici, marks)

    const signalModes = opts.modes.filter((m) => m !== 'none')
    if (signalModes.length > 0) {
      upstream.setHold(opts.hold)
      const timeoutMs = opts.hold + 2000
      for (let i = 0; i < opts.warmup; i++) {
        for (const m of signalModes) await hangUp(proxies[m], upstream, marks, timeoutMs)
      }
      const results = Object.fromEntries(signalModes.map((m) => [m, []]))
      for (let i = 0; i < opts.n && Date.now() < deadline; i++) {
        const order = i % 2 === 0 ? signalModes : [...signalModes].reverse()
        for (const m of order) results[m].push(await hangUp(proxies[m], upstream, marks, timeoutMs))
      }
      for (const m of signalModes) summaries.push(summarize(m, results[m], opts.n, opts.hold))
      if (results[signalModes[0]].length < opts.n) console.log(`stopped after ${opts.maxSeconds} s: ${results[signalModes[0]].length} of ${opts.n} hang-ups per mode`)
    }

    if (opts.modes.includes('none')) {
      upstream.setHold(opts.noneHold)
      const results = []
      for (let i = 0; i < opts.noneN; i++) results.push(await hangUp(proxies.none, upstream, marks, opts.noneHold + 5000))
      summaries.push(summarize('none', results, opts.noneN, opts.noneHold))
    }
  } finally {
    for (const p of Object.values(proxies)) await p.close()
    await upstream.close()
  }

  printSummary(summaries)
  const report = {
    benchmark: 'hangup-latency',
    date: new Date().toISOString(),
    seconds: Math.round((Date.now() - startedAt) / 1000),
    command: `node bench/hangup-latency.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { ...machineInfo(), idleBeforeStart },
    versions: benchVersions(),
    options: { n: opts.n, warmup: opts.warmup, hold: opts.hold, noneN: opts.noneN, noneHold: opts.noneHold, maxSeconds: opts.maxSeconds },
    target: { p99Ms: 2 },
    summaries
  }
  fs.mkdirSync(path.dirname(opts.out), { recursive: true })
  fs.writeFileSync(opts.out, JSON.stringify(report, null, 2) + '\n')
  console.log(`\nwritten ${path.relative(process.cwd(), opts.out)}`)
  const plugin = summaries.find((s) => s.mode === 'plugin')
  if (plugin?.hangupToUpstreamCloseMs && plugin.hangupToUpstreamCloseMs.p99 > 2) console.log(`plugin p99 ${plugin.hangupToUpstreamCloseMs.p99} ms is above the 2 ms target`)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
