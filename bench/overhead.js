'use strict'

// CPU cost per request of each variant (node bench/overhead.js): a finer
// instrument than run.js for a difference of a few percent on a noisy VM.
//
// Each variant (bench/app.js) runs in its own child process together with a
// minimal pipelined HTTP/1.1 client on raw TCP sockets, and serves a fixed
// number of requests when told to; the child reports the CPU time it used.
// Only one child works at a time, so the machine never has more than one busy
// core (a burstable VM throttles when both are), and the variants take turns
// in short chunks (A B C D, then D C B A, ...), so that a slow spell of the
// host lands on neighbouring chunks of every variant. The figure is the median
// over the rounds of each variant's CPU per request relative to bare Fastify
// in the same round.
//
// The in-process client's own (small, constant) cost is included in every
// variant, so "extra ns per request" is exact and the percentage slightly
// understates the server-only overhead. Throughput proper is run.js's job.

const { fork } = require('node:child_process')
const { once } = require('node:events')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { cli } = require('./cli.js')
const { quantile } = require('./stats.js')

const HELP = `usage: node bench/overhead.js [options]

  --routes <list>     ignore,read                        (default ignore,read)
  --variants <list>   bare first, then any of hook, no-abort, no-fatal,
                      no-context, plugin, autobind, bare-undici (bench/app.js)
                      (default bare,hook,no-abort,no-fatal,no-context,plugin)
  --rounds <n>        alternation rounds per route       (default 100)
  --chunk <n>         requests per variant per round     (default 5000)
  --connections <n>   client connections                 (default 16)
  --depth <n>         requests in flight per connection  (default 1: no
                      pipelining, the common case; with more, some responses
                      wait in Node's queue, which the plugin watches differently)
  --out <file>        JSON output (default bench/results/overhead-<node-version>.json)
  --help
`

/* ---------- child: one variant's server plus the client ---------- */

const RESPONSE_START = Buffer.from('HTTP/1.1 ')

/** Sends `n` GET /route over `connections` sockets, `depth` in flight each; resolves with the CPU used. */
function drive (port, route, n, connections, depth) {
  return new Promise((resolve, reject) => {
    const request = Buffer.from(`GET /${route} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    const batches = new Map()
    const batch = (k) => {
      if (!batches.has(k)) batches.set(k, Buffer.concat(Array(k).fill(request)))
      return batches.get(k)
    }
    let sent = 0
    let received = 0
    const sockets = []
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    for (let c = 0; c < connections; c++) {
      const socket = net.connect(port, '127.0.0.1')
      sockets.push(socket)
      socket.setNoDelay(true)
      socket.on('error', reject)
      let inflight = 0
      let tail = Buffer.alloc(0)
      const refill = () => {
        const k = Math.min(depth - inflight, n - sent)
        if (k <= 0) return
        sent += k
        inflight += k
        socket.write(batch(k))
      }
      socket.on('connect', refill)
      socket.on('data', (chunk) => {
        // Counts status lines; the tail keeps a marker split across chunks.
        const buf = tail.length > 0 ? Buffer.concat([tail, chunk]) : chunk
        let got = 0
        for (let i = buf.indexOf(RESPONSE_START); i !== -1; i = buf.indexOf(RESPONSE_START, i + RESPONSE_START.length)) got++
        tail = buf.subarray(Math.max(0, buf.length - RESPONSE_START.length + 1))
        received += got
        inflight -= got
        if (received >= n) {
          const cpu = process.cpuUsage(cpu0)
          for (const s of sockets) s.destroy()
          resolve({ cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - t0 })
        } else if (inflight <= depth / 2) {
          refill()
        }
      })
    }
  })
}

// Variants with the plugin's `fatal` on (plugin, no-context) have its process
// handlers here: SIGINT/SIGTERM close the app gracefully and exit 0, and an
// uncaught error would exit 1 silently (logger: false). So the child catches
// what a chunk throws and reports it, and the parent watches for an exit.
async function child (variant) {
  const { buildApp } = require('./app.js')
  const app = await buildApp(variant)
  const { port } = app.server.address()
  process.on('message', (msg) => {
    if (msg.cmd === 'stop') {
      app.close().then(() => process.exit(0), () => process.exit(1))
      return
    }
    drive(port, msg.route, msg.n, msg.connections, msg.depth).then(
      (result) => process.send(result),
      (err) => process.send({ error: String(err?.stack ?? err) })
    )
  })
  process.on('disconnect', () => process.exit(0))
  process.on('uncaughtExceptionMonitor', (err) => console.error(`overhead child ${variant}:`, err))
  process.send({ ready: true, pid: process.pid })
}

/* ---------- parent ---------- */

function readOptions (values) {
  const int = (name, fallback, min) => {
    const n = Number(values[name] ?? fallback)
    if (!Number.isInteger(n) || n < min) {
      console.error(`overhead: --${name} must be an integer >= ${min}\n${HELP}`)
      process.exit(2)
    }
    return n
  }
  const { VARIANTS } = require('./app.js')
  const variants = (values.variants ?? 'bare,hook,no-abort,no-fatal,no-context,plugin').split(',').map((v) => v.trim())
  const routes = (values.routes ?? 'ignore,read').split(',').map((r) => r.trim())
  if (variants[0] !== 'bare' || variants.length < 2 || variants.some((v) => !Object.hasOwn(VARIANTS, v))) {
    console.error(`overhead: --variants must start with bare and name known variants (${Object.keys(VARIANTS).join(', ')})`)
    process.exit(2)
  }
  if (routes.some((r) => r !== 'ignore' && r !== 'read')) {
    console.error('overhead: --routes takes ignore and/or read')
    process.exit(2)
  }
  return {
    routes,
    variants,
    rounds: int('rounds', 100, 3),
    chunk: int('chunk', 5000, 100),
    connections: int('connections', 16, 1),
    depth: int('depth', 1, 1),
    out: values.out ?? path.join(__dirname, 'results', `overhead-${process.version}.json`)
  }
}

async function parent (opts) {
  const { loadPlugin } = require('./load-plugin.js')
  const { machineInfo, warnIfBusy, othersCpu, othersCpuDelta, waitForQuiet, pinTo } = require('./machine.js')
  loadPlugin()
  console.log(`fastify-hangup CPU per request: Node ${process.version}, fastify ${require('fastify/package.json').version}`)
  console.log(`${os.cpus()[0]?.model} x${os.cpus().length}; ${opts.rounds} rounds x ${opts.chunk} requests per variant and route, ${opts.connections} connections x ${opts.depth} in flight`)
  const idleBeforeStart = await warnIfBusy()
  const children = {}
  const startedAt = Date.now()
  const results = {}
  try {
    const ours = new Set([process.pid])
    for (const v of opts.variants) {
      children[v] = fork(__filename, ['--child', v], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
      const msg = await nextMessage(children[v], v)
      ours.add(msg.pid)
      // Best effort: without taskset the variants simply share the CPUs.
      if (os.cpus().length > 1) try { pinTo(msg.pid, os.cpus().length - 1) } catch {}
    }
    const run = async (v, route, n) => {
      const reply = nextMessage(children[v], v)
      children[v].send({ route, n, connections: opts.connections, depth: opts.depth })
      const msg = await reply
      if (msg.error !== undefined) throw new Error(`${v} /${route}: ${msg.error}`)
      return msg.cpuMs * 1000 / n // µs per request
    }
    for (const route of opts.routes) {
      for (let k = 0; k < 3; k++) for (const v of opts.variants) await run(v, route, Math.max(opts.chunk, 20_000))
      const perRound = []
      let dirty = 0
      let waitedMs = 0
      for (let i = 0; i < opts.rounds; i++) {
        if (i % 10 === 0) waitedMs += (await waitForQuiet(ours, { maxWaitMs: 10_000, windowMs: 300 })).waited
        const round = {}
        const order = i % 2 === 0 ? opts.variants : [...opts.variants].reverse()
        const before = othersCpu(ours)
        const t0 = performance.now()
        for (const v of order) round[v] = await run(v, route, opts.chunk)
        // A round during which another program used the CPU is dropped.
        if (othersCpuDelta(before, othersCpu(ours)) / (performance.now() - t0) > 0.05) dirty++
        else perRound.push(round)
      }
      if (dirty > 0 || waitedMs > 2000) console.log(`\n/${route}: ${dirty} rounds dropped (other programs used the CPU), ${(waitedMs / 1000).toFixed(1)} s spent waiting for quiet`)
      if (perRound.length < 3) throw new Error(`/${route}: fewer than 3 clean rounds: the machine is busy with something else`)
      results[route] = { ...summarize(opts.variants, perRound), cleanRounds: perRound.length, droppedRounds: dirty }
      printRoute(route, results[route])
    }
  } finally {
    await Promise.all(Object.values(children).map(stopChild))
  }
  const report = {
    benchmark: 'overhead',
    date: new Date().toISOString(),
    seconds: Math.round((Date.now() - startedAt) / 1000),
    command: `node bench/overhead.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { ...machineInfo(), idleBeforeStart },
    versions: { node: process.version, fastify: require('fastify/package.json').version, plugin: require('../package.json').version },
    options: { rounds: opts.rounds, chunk: opts.chunk, connections: opts.connections, depth: opts.depth },
    results
  }
  fs.mkdirSync(path.dirname(opts.out), { recursive: true })
  fs.writeFileSync(opts.out, JSON.stringify(report, null, 2) + '\n')
  console.log(`\nwritten ${path.relative(process.cwd(), opts.out)}`)
}

/** The child's next message; rejects if it exits first. */
function nextMessage (child, variant) {
  return new Promise((resolve, reject) => {
    const onExit = (code, signal) => {
      child.removeListener('message', onMessage)
      reject(new Error(`${variant} child exited (code ${code}, signal ${signal})`))
    }
    const onMessage = (msg) => {
      child.removeListener('exit', onExit)
      resolve(msg)
    }
    child.once('exit', onExit)
    child.once('message', onMessage)
  })
}

/**
 * Stops a child and waits for its exit, at most 10 s: then SIGKILL, not
 * SIGTERM, which with the plugin's `fatal` on starts a graceful close instead.
 */
async function stopChild (child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  if (child.connected) child.send({ cmd: 'stop' })
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

function summarize (variants, perRound) {
  const out = {}
  for (const v of variants) {
    const micros = perRound.map((r) => r[v])
    const ratios = perRound.map((r) => r[v] / r.bare)
    const extra = perRound.map((r) => (r[v] - r.bare) * 1000)
    out[v] = {
      microsPerRequest: round3(quantile(micros, 0.5)),
      costVsBare: round3(quantile(ratios, 0.5)),
      costVsBareIqr: [round3(quantile(ratios, 0.25)), round3(quantile(ratios, 0.75))],
      // What a saturated server would lose in throughput: bare cost / variant cost.
      throughputVsBare: round3(1 / quantile(ratios, 0.5)),
      extraNanosPerRequest: Math.round(quantile(extra, 0.5)),
      extraNanosIqr: [Math.round(quantile(extra, 0.25)), Math.round(quantile(extra, 0.75))]
    }
  }
  return out
}

function round3 (v) {
  return Math.round(v * 1000) / 1000
}

function printRoute (route, result) {
  console.log(`\n/${route} (${result.cleanRounds} rounds)`)
  console.log('variant      µs/req  cost vs bare (IQR)         extra ns/req (IQR)     throughput-equivalent')
  for (const [v, r] of Object.entries(result)) {
    if (typeof r !== 'object') continue
    if (v === 'bare') {
      console.log(`${v.padEnd(11)} ${r.microsPerRequest.toFixed(2).padStart(7)}`)
      continue
    }
    const cost = `${(r.costVsBare * 100).toFixed(1)}% (${(r.costVsBareIqr[0] * 100).toFixed(1)}..${(r.costVsBareIqr[1] * 100).toFixed(1)})`
    const extra = `${r.extraNanosPerRequest} (${r.extraNanosIqr[0]}..${r.extraNanosIqr[1]})`
    console.log(`${v.padEnd(11)} ${r.microsPerRequest.toFixed(2).padStart(7)}  ${cost.padEnd(25)}  ${extra.padEnd(21)}  ${(r.throughputVsBare * 100).toFixed(1)}%`)
  }
}

const { parse } = cli('overhead', HELP)
const values = parse({
  child: { type: 'string' },
  routes: { type: 'string' },
  variants: { type: 'string' },
  rounds: { type: 'string' },
  chunk: { type: 'string' },
  connections: { type: 'string' },
  depth: { type: 'string' },
  out: { type: 'string' }
})

if (values.child !== undefined) {
  child(values.child).catch((err) => {
    console.error(err)
    process.exit(1)
  })
} else {
  parent(readOptions(values)).catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
}
