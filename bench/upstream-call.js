'use strict'

const { cli } = require('./cli.js')

// Cost of one upstream call bound by autoBind, against the same call unbound
// (node bench/upstream-call.js). See bench/README.md.
//
//   client --(raw TCP, keep-alive)--> Fastify + fastify-hangup { autoBind: true }
//                                       --(undici.request, global dispatcher)--> upstream
//                                       --(or http.get, keep-alive Agent: --client http)--> upstream
//
// One process: the upstream (node:http on 127.0.0.1:0, a 2-byte body at once),
// the Fastify app (logger off) and the client. The route makes `k` sequential
// undici.request() calls (with --client http: node:http `http.get()` calls on
// a keep-alive Agent of one socket, bound through Node's diagnostics channel)
// to the upstream with no `signal`, reading each body:
//   GET /bound/:k           the calls run in the request's context: each is
//                           bound (the interceptor's getStore(), the request's
//                           controller created on the first call, an 'abort'
//                           listener added and removed, a wrapper handler
//                           forwarding undici's callbacks)
//   GET /unbound/:k         the same loop inside detach(): the interceptor
//                           finds no request and passes each call through
//   GET /unbound-signal/:k  reads request.signal, then the unbound loop: the
//                           request's controller exists (and is aborted when
//                           the response is sent, abortOnResponse), as in
//                           /bound, but no call is bound. It splits the cost
//                           of binding into a per-request part (the lazily
//                           created controller: unbound-signal vs unbound)
//                           and a per-call part (bound vs unbound-signal).
// Same process, same dispatcher and agent (one pooled connection to the
// upstream), same code path but for the binding. The client sends one request
// at a time on one socket.
//
// The modes take turns in rounds of `--calls` upstream calls each (A B C, then
// C B A, ...), so a slow spell of the VM lands on all; per round the wall time
// and the CPU time (process.cpuUsage) per call are taken, and the figure is
// the median over rounds of the ratio bound/unbound within a round. The
// headline is wall time per call (what the target is about: time per call);
// the CPU time is a check: it is the same work on one thread here. Everything
// else in the process (the upstream's own server, Fastify's request, the
// client) costs the same in every mode: the "extra ns per call" is the
// binding's cost, the percentage is relative to a whole call to a local
// upstream, and depends on how many calls share one request (--per-request).

const http = require('node:http')
const net = require('node:net')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { loadPlugin } = require('./load-plugin.js')
const { machineInfo, warnIfBusy, othersCpu, othersCpuDelta, waitForQuiet, pinTo, versions: benchVersions } = require('./machine.js')
const { quantile } = require('./stats.js')

const BLOCK = 10
const MODES = ['bound', 'unbound', 'unbound-signal']
const COMPARISONS = [
  { name: 'binding', a: 'bound', b: 'unbound' },
  { name: 'perCallPart', a: 'bound', b: 'unbound-signal' },
  { name: 'perRequestPart', a: 'unbound-signal', b: 'unbound' }
]
const TARGET = { maxRatio: 1.03, from: 'a bound upstream call takes at most 3% more time than an unbound one' }

const HELP = `usage: node bench/upstream-call.js [options]

  --per-request <list>  upstream calls per Fastify request, one case each
                        (default 1,10: a route with one call, where the
                        request's controller is created for that call, and
                        one with ten)
  --rounds <n>          clean alternation rounds per case     (default 100,
                        taken in blocks of 10; a block during which other
                        programs used the CPU is dropped, and at most twice
                        this many rounds are tried)
  --calls <n>           upstream calls per mode per round     (default 2000;
                        a multiple of each --per-request)
  --warmup <n>          unmeasured calls per mode and case    (default 4000)
  --max-seconds <s>     stop taking rounds after this long    (default 240);
                        the time is shared out between the cases
  --client <name>       undici (undici.request through the global dispatcher)
                        or http (node:http's http.get on a keep-alive Agent)
                                                              (default undici)
  --keep-busy           keep the blocks during which other programs used the
                        CPU, and do not wait for a quiet machine: for a
                        machine that is never quiet (the figures are rough,
                        and the JSON says so: keptBusy)
  --no-pin              do not pin the process to the last CPU (taskset)
  --out <file>          JSON output (default bench/results/upstream-call-<node-version>.json,
                        upstream-call-<node-version>-http.json with --client http)
  --help
`

const { fail, int, parse } = cli('upstream-call', HELP)

function readOptions () {
  const values = parse({
    'per-request': { type: 'string' },
    rounds: { type: 'string' },
    calls: { type: 'string' },
    warmup: { type: 'string' },
    'max-seconds': { type: 'string' },
    client: { type: 'string' },
    'keep-busy': { type: 'boolean' },
    'no-pin': { type: 'boolean' },
    out: { type: 'string' },
  })
  const perRequest = (values['per-request'] ?? '1,10').split(',').map((k) => int('--per-request', k.trim(), 1, 1))
  const calls = int('--calls', values.calls, 2000, 1)
  for (const k of perRequest) if (calls % k !== 0) fail(`--calls (${calls}) must be a multiple of each --per-request (${k})`)
  const client = values.client ?? 'undici'
  if (client !== 'undici' && client !== 'http') fail(`--client must be undici or http, not ${JSON.stringify(client)}`)
  return {
    client,
    perRequest,
    rounds: int('--rounds', values.rounds, 100, BLOCK),
    calls,
    warmup: int('--warmup', values.warmup, 4000, 0),
    maxSeconds: int('--max-seconds', values['max-seconds'], 240, 5),
    pin: !values['no-pin'],
    keepBusy: values['keep-busy'] === true,
    out: values.out ?? path.join(__dirname, 'results', `upstream-call-${process.version}${client === 'http' ? '-http' : ''}.json`)
  }
}

/* ---------- the upstream, the app, the client ---------- */

async function startUpstream () {
  const body = Buffer.from('ok')
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length })
    res.end(body)
  })
  server.listen(0, '127.0.0.1')
  await new Promise((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  return server
}

/** One upstream call with undici: through the global dispatcher, which autoBind composes. */
function undiciCall () {
  const undici = require('undici')
  return async function undiciGet (url) {
    const { statusCode, body } = await undici.request(url)
    return { statusCode, text: await body.text() }
  }
}

/** One upstream call with node:http, on a keep-alive Agent of one socket (as undici's pool above). */
function httpCall () {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  return function httpGet (url) {
    return new Promise((resolve, reject) => {
      const req = http.get(url, { agent }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk) => { text += chunk })
        res.on('end', () => resolve({ statusCode: res.statusCode, text }))
        res.on('error', reject)
      })
      req.on('error', reject)
    })
  }
}

async function buildApp (upstreamUrl, client) {
  const Fastify = require('fastify')
  const hangup = loadPlugin()
  const app = Fastify({ logger: false })
  await app.register(hangup, { autoBind: true })
  const get = client === 'http' ? httpCall() : undiciCall()

  // A repository layer: no signal passed, the binding decides.
  async function callUpstream (k) {
    let bytes = 0
    for (let i = 0; i < k; i++) {
      const { statusCode, text } = await get(upstreamUrl)
      if (statusCode !== 200) throw new Error(`upstream answered ${statusCode}`)
      bytes += text.length
    }
    return bytes
  }
  // The same shape for every route: a wrapper call around the loop.
  const inContext = (fn) => fn()
  const schema = { params: { type: 'object', properties: { k: { type: 'integer', minimum: 1 } }, required: ['k'] } }
  app.get('/bound/:k', { schema }, async function bound (request) {
    return { bytes: await inContext(() => callUpstream(request.params.k)) }
  })
  app.get('/unbound/:k', { schema }, async function unbound (request) {
    return { bytes: await hangup.detach(() => callUpstream(request.params.k)) }
  })
  app.get('/unbound-signal/:k', { schema }, async function unboundSignal (request) {
    if (request.signal.aborted) throw new Error('aborted before the calls')
    return { bytes: await hangup.detach(() => callUpstream(request.params.k)) }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return app
}

const HEADER_END = Buffer.from('\r\n\r\n')

/** One keep-alive HTTP/1.1 connection, one request at a time; just enough of a client for these routes. */
class RawClient {
  constructor (port) {
    this.port = port
    this.socket = null
    this.buffer = Buffer.alloc(0)
    this.pending = null
  }

  async connect () {
    this.socket = net.connect(this.port, '127.0.0.1')
    this.socket.setNoDelay(true)
    this.socket.on('data', (chunk) => this.onData(chunk))
    this.socket.on('error', (err) => this.settle(err))
    this.socket.on('close', () => this.settle(new Error('connection closed')))
    await new Promise((resolve, reject) => {
      this.socket.once('connect', resolve)
      this.socket.once('error', reject)
    })
  }

  get (url) {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject }
      this.socket.write(`GET ${url} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    })
  }

  onData (chunk) {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    const end = this.buffer.indexOf(HEADER_END)
    if (end === -1) return
    const head = this.buffer.subarray(0, end).toString('latin1')
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1])
    if (!Number.isInteger(length)) return this.settle(new Error(`no content-length in ${JSON.stringify(head)}`))
    if (this.buffer.length < end + 4 + length) return
    const status = Number(head.slice(9, 12))
    const body = this.buffer.subarray(end + 4, end + 4 + length).toString()
    this.buffer = this.buffer.subarray(end + 4 + length)
    this.settle(null, { status, body })
  }

  settle (err, value) {
    const pending = this.pending
    if (pending === null) return
    this.pending = null
    if (err) pending.reject(err)
    else pending.resolve(value)
  }

  close () {
    this.socket.destroy()
  }
}

/* ---------- measuring ---------- */

/** `calls` upstream calls in `mode`, `k` per Fastify request; returns µs per call, wall and CPU. */
async function measure (client, mode, k, calls) {
  const url = `/${mode}/${k}`
  const expected = JSON.stringify({ bytes: 2 * k })
  const requests = calls / k
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < requests; i++) {
    const res = await client.get(url)
    if (res.status !== 200 || res.body !== expected) throw new Error(`${url}: unexpected answer ${res.status} ${res.body}`)
  }
  const wallMs = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  return { wall: wallMs * 1000 / calls, cpu: (cpu.user + cpu.system) / calls }
}

/** Checks that /bound binds each call and the other routes none (the plugin's counters). */
async function checkBinding (app, client) {
  const boundSoFar = () => app.hangup.stats().upstream.bound
  for (const mode of MODES) {
    const before = boundSoFar()
    await measure(client, mode, 3, 3)
    const bound = boundSoFar() - before
    if (bound !== (mode === 'bound' ? 3 : 0)) throw new Error(`binding check failed: /${mode}/3 bound ${bound} calls`)
  }
}

function describe (values, digits) {
  const r = (v) => Math.round(v * 10 ** digits) / 10 ** digits
  return { median: r(quantile(values, 0.5)), iqr: [r(quantile(values, 0.25)), r(quantile(values, 0.75))], min: r(Math.min(...values)), max: r(Math.max(...values)) }
}

function summarize (rounds) {
  const out = {}
  for (const measureName of ['wall', 'cpu']) {
    const m = { microsPerCall: {} }
    for (const mode of MODES) m.microsPerCall[mode] = describe(rounds.map((r) => r[mode][measureName]), 3)
    for (const c of COMPARISONS) {
      m[c.name] = {
        of: `${c.a} / ${c.b}`,
        // The figure: a/b within a round, over the rounds.
        ratio: describe(rounds.map((r) => r[c.a][measureName] / r[c.b][measureName]), 4),
        extraNanosPerCall: describe(rounds.map((r) => (r[c.a][measureName] - r[c.b][measureName]) * 1000), 0)
      }
    }
    out[measureName] = m
  }
  return out
}

async function runCase (app, client, k, deadline, opts) {
  const ours = new Set([process.pid])
  const warmCalls = Math.ceil(opts.warmup / k) * k
  if (warmCalls > 0) {
    for (let i = 0; i < 4; i++) {
      for (const mode of MODES) await measure(client, mode, k, Math.max(k, Math.floor(warmCalls / 4 / k) * k))
    }
  }
  const rounds = []
  let dropped = 0
  let waitedMs = 0
  let timeUp = false
  // Rounds are short (tens of ms) and /proc counts other programs' CPU in
  // 10 ms ticks, so the check for other programs is made over blocks of
  // BLOCK rounds (about a second): a block during which they used more than
  // 5% of a core is dropped whole. At most twice --rounds are tried.
  for (let tried = 0; rounds.length < opts.rounds && tried < 2 * opts.rounds; tried += BLOCK) {
    if (Date.now() > deadline && rounds.length >= 3) {
      timeUp = true
      break
    }
    if (!opts.keepBusy) waitedMs += (await waitForQuiet(ours, { maxWaitMs: 10_000, windowMs: 300 })).waited
    const before = othersCpu(ours)
    const t0 = performance.now()
    const block = []
    for (let i = 0; i < BLOCK; i++) {
      const order = (tried + i) % 2 === 0 ? MODES : [...MODES].reverse()
      const round = { order }
      for (const mode of order) round[mode] = await measure(client, mode, k, opts.calls)
      block.push(round)
    }
    if (!opts.keepBusy && othersCpuDelta(before, othersCpu(ours)) / (performance.now() - t0) > 0.05) dropped += BLOCK
    else rounds.push(...block)
  }
  if (rounds.length < 3) throw new Error(`${k} call(s) per request: fewer than 3 clean rounds: the machine is busy with something else`)
  return {
    perRequest: k,
    requestsPerRound: opts.calls / k,
    cleanRounds: rounds.length,
    droppedRounds: dropped,
    waitedSeconds: Math.round(waitedMs / 100) / 10,
    timeUp,
    ...summarize(rounds),
    rounds: rounds.map((r) => Object.fromEntries([
      ['order', r.order.join(',')],
      ...MODES.map((mode) => [mode, { wall: round3(r[mode].wall), cpu: round3(r[mode].cpu) }])
    ]))
  }
}

function round3 (v) {
  return Math.round(v * 1000) / 1000
}

const pct = (r) => `${(r * 100).toFixed(1)}%`

function printCase (c) {
  console.log(`\n${c.perRequest} upstream call(s) per request (${c.cleanRounds} rounds x ${c.requestsPerRound} requests per mode${c.droppedRounds > 0 ? `, ${c.droppedRounds} dropped: other programs used the CPU` : ''}${c.timeUp ? ', stopped by --max-seconds' : ''})`)
  console.log(`µs per call (median): ${['wall', 'cpu'].map((name) => `${name} ${MODES.map((mode) => `${mode} ${c[name].microsPerCall[mode].median.toFixed(2)}`).join(', ')}`).join('; ')}`)
  console.log('measure  comparison                       ratio [IQR]                extra ns/call [IQR]')
  for (const name of ['wall', 'cpu']) {
    for (const comp of COMPARISONS) {
      const m = c[name][comp.name]
      const ratio = `${pct(m.ratio.median)} [${pct(m.ratio.iqr[0])}..${pct(m.ratio.iqr[1])}]`
      const extra = `${m.extraNanosPerCall.median} [${m.extraNanosPerCall.iqr[0]}..${m.extraNanosPerCall.iqr[1]}]`
      const label = `${comp.a}/${comp.b}${comp.name === 'binding' && name === 'wall' ? ' (headline)' : ''}`
      console.log(`${name.padEnd(7)}  ${label.padEnd(31)}  ${ratio.padEnd(25)}  ${extra}`)
    }
  }
}

async function main () {
  const opts = readOptions()
  loadPlugin() // fails early, with a clear message, when dist/ is not built
  const versions = benchVersions()
  console.log(`fastify-hangup cost per bound upstream call (${opts.client === 'http' ? 'node:http' : 'undici'}): Node ${versions.node}, fastify ${versions.fastify}, undici ${versions.undici}`)
  console.log(`${os.cpus()[0]?.model} x${os.cpus().length}; ${opts.rounds} rounds x ${opts.calls} calls per mode, ${opts.perRequest.join(' and ')} call(s) per request, warm-up ${opts.warmup} calls per mode`)
  const idleBeforeStart = await warnIfBusy()
  const machine = machineInfo() // before pinning, which narrows availableParallelism
  let pinned = false
  if (opts.pin && os.cpus().length > 1) {
    // Best effort: one busy core (no throttling on a burstable VM), no migrations.
    try {
      pinTo(process.pid, os.cpus().length - 1)
      pinned = true
    } catch {}
  }

  const upstream = await startUpstream()
  const upstreamUrl = `http://127.0.0.1:${upstream.address().port}/item`
  const app = await buildApp(upstreamUrl, opts.client)
  const client = new RawClient(app.server.address().port)
  const startedAt = Date.now()
  const cases = []
  try {
    await client.connect()
    await checkBinding(app, client)
    const deadline = startedAt + opts.maxSeconds * 1000
    for (const [i, k] of opts.perRequest.entries()) {
      const caseDeadline = Date.now() + (deadline - Date.now()) / (opts.perRequest.length - i)
      const c = await runCase(app, client, k, caseDeadline, opts)
      cases.push(c)
      printCase(c)
    }
  } finally {
    client.close()
    await app.close()
    upstream.closeAllConnections?.()
    upstream.close()
  }

  const verdicts = cases.map((c) => ({ perRequest: c.perRequest, ratio: c.wall.binding.ratio.median, met: c.wall.binding.ratio.median <= TARGET.maxRatio }))
  const report = {
    benchmark: 'upstream-call',
    date: new Date().toISOString(),
    seconds: Math.round((Date.now() - startedAt) / 1000),
    command: `node bench/upstream-call.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { ...machine, idleBeforeStart },
    versions,
    options: { client: opts.client, keptBusy: opts.keepBusy, perRequest: opts.perRequest, rounds: opts.rounds, calls: opts.calls, warmup: opts.warmup, maxSeconds: opts.maxSeconds },
    pinned,
    headline: 'cases[].wall.binding: median over rounds of (wall time per bound call / wall time per unbound call) within a round',
    target: { ...TARGET, met: verdicts.every((v) => v.met), cases: verdicts },
    cases
  }
  fs.mkdirSync(path.dirname(opts.out), { recursive: true })
  fs.writeFileSync(opts.out, JSON.stringify(report, null, 2) + '\n')
  console.log(`
µs per call: median over rounds. ratio: within a round (back-to-back, same
process), its median over rounds and interquartile range. bound/unbound is the
cost of binding (the headline: wall time); bound/unbound-signal its per-call
part, unbound-signal/unbound its per-request part (the request's controller).
cpu (process.cpuUsage of this one process: client, app and upstream) is the check.`)
  for (const v of verdicts) {
    const c = cases.find((x) => x.perRequest === v.perRequest)
    const note = !v.met && c.wall.binding.ratio.iqr[0] <= TARGET.maxRatio ? ' (the IQR reaches it: within this machine\'s noise)' : ''
    console.log(`${v.perRequest} call(s) per request: a bound call takes ${pct(v.ratio)} of an unbound call's time: ${v.met ? 'within' : 'above'} the ${pct(TARGET.maxRatio)} target${note}`)
  }
  console.log(`\nwritten ${path.relative(process.cwd(), opts.out)}`)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
