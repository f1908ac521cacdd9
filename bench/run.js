'use strict'

// Throughput of bare Fastify vs Fastify + fastify-hangup (npm run bench).
//
// The parent forks one server per variant (bench/server.js) and drives them
// with autocannon's programmatic API, so the load generator never shares a
// server's event loop. Runs alternate between the variants (A B, then B A,
// ...) so that drift (thermal, noisy neighbours, GC of the parent) lands on
// both; the summary is the median of each variant and the ratio plugin/bare.
// See bench/README.md for the method and how to read the numbers.

const { fork, execFileSync } = require('node:child_process')
const { once } = require('node:events')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { parseArgs } = require('node:util')
const { loadPlugin } = require('./load-plugin.js')

const HELP = `usage: node bench/run.js [options]   (or: npm run bench -- [options])

  --duration <s>      seconds per measured run           (BENCH_DURATION, default 3)
  --warmup <s>        seconds of warm-up per server+route (BENCH_WARMUP, default 2)
  --connections <n>   autocannon connections              (BENCH_CONNECTIONS, default 50)
  --pipelining <n>    autocannon pipelining               (BENCH_PIPELINING, default 1)
  --pairs <n>         bare/plugin pairs per route         (BENCH_PAIRS, default 6)
  --routes <list>     comma-separated: ignore,read        (BENCH_ROUTES, default ignore,read)
  --pin / --no-pin    pin the servers to CPU 1 and the load generator to CPU 0
                      with taskset (BENCH_PIN=1/0, default: on when taskset exists
                      and the machine has 2+ CPUs)
  --prof <variant>    run that server (bare, plugin or both) under --cpu-prof;
                      profiles go to bench/results/profiles/ (BENCH_PROF)
  --out <file>        JSON output (default bench/results/<node-version>.json)
  --help
`

function readOptions () {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      pipelining: { type: 'string' },
      pairs: { type: 'string' },
      routes: { type: 'string' },
      pin: { type: 'boolean' },
      'no-pin': { type: 'boolean' },
      prof: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean' }
    }
  })
  if (values.help) {
    process.stdout.write(HELP)
    process.exit(0)
  }
  const env = process.env
  const int = (name, flag, fallback, min) => {
    const raw = flag ?? env[name] ?? String(fallback)
    const n = Number(raw)
    if (!Number.isInteger(n) || n < min) fail(`${name.replace('BENCH_', '').toLowerCase()} must be an integer >= ${min}, got ${raw}`)
    return n
  }
  const routes = (values.routes ?? env.BENCH_ROUTES ?? 'ignore,read').split(',').map((r) => r.trim()).filter(Boolean)
  for (const r of routes) if (r !== 'ignore' && r !== 'read') fail(`unknown route ${r} (ignore, read)`)
  const prof = values.prof ?? env.BENCH_PROF ?? ''
  if (!['', 'bare', 'plugin', 'both'].includes(prof)) fail(`--prof must be bare, plugin or both, got ${prof}`)
  let pin = canPin()
  if (env.BENCH_PIN !== undefined) pin = env.BENCH_PIN === '1' || env.BENCH_PIN === 'true'
  if (values.pin) pin = true
  if (values['no-pin']) pin = false
  if (pin && !canPin()) fail('--pin needs taskset and 2+ CPUs')
  return {
    duration: int('BENCH_DURATION', values.duration, 3, 1),
    warmup: int('BENCH_WARMUP', values.warmup, 2, 0),
    connections: int('BENCH_CONNECTIONS', values.connections, 50, 1),
    pipelining: int('BENCH_PIPELINING', values.pipelining, 1, 1),
    pairs: int('BENCH_PAIRS', values.pairs, 6, 1),
    routes,
    pin,
    prof,
    out: values.out ?? path.join(__dirname, 'results', `${process.version}.json`)
  }
}

function fail (message) {
  console.error(`bench: ${message}\n`)
  process.stderr.write(HELP)
  process.exit(2)
}

function canPin () {
  if (os.cpus().length < 2) return false
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Pins every thread of `pid` to `cpu` (-a: V8 and libuv threads too). */
function pinTo (pid, cpu) {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' })
}

async function startServer (variant, opts) {
  const execArgv = []
  if (opts.prof === variant || opts.prof === 'both') {
    const dir = path.join(__dirname, 'results', 'profiles')
    fs.mkdirSync(dir, { recursive: true })
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${variant}-${process.version}-${Date.now()}.cpuprofile`)
  }
  const child = fork(path.join(__dirname, 'server.js'), [variant], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const [msg] = await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(([code]) => { throw new Error(`${variant} server exited with code ${code} before it was ready`) })
  ])
  if (msg.type !== 'ready') throw new Error(`${variant} server: unexpected message ${JSON.stringify(msg)}`)
  if (opts.pin) pinTo(msg.pid, 1)
  return { variant, child, port: msg.port, url: `http://127.0.0.1:${msg.port}` }
}

async function stopServer (server) {
  if (server.child.exitCode !== null) return
  const exited = once(server.child, 'exit')
  server.child.send('stop')
  const timer = setTimeout(() => server.child.kill(), 10_000)
  await exited
  clearTimeout(timer)
}

async function cpuSample (server) {
  const reply = once(server.child, 'message')
  server.child.send('cpu')
  const [msg] = await reply
  return msg
}

/** Checks that each server answers each route as expected before timing it. */
async function sanity (server, route) {
  const res = await fetch(`${server.url}/${route}`)
  const body = await res.json()
  const expected = route === 'read' ? { hello: 'world', aborted: false } : { hello: 'world' }
  if (res.status !== 200 || JSON.stringify(body) !== JSON.stringify(expected)) {
    throw new Error(`${server.variant} /${route}: unexpected answer ${res.status} ${JSON.stringify(body)}`)
  }
}

async function load (autocannon, server, route, seconds, opts) {
  const before = await cpuSample(server)
  const result = await autocannon({
    url: `${server.url}/${route}`,
    connections: opts.connections,
    pipelining: opts.pipelining,
    duration: seconds
  })
  const after = await cpuSample(server)
  const cpuMicros = (after.cpu.user - before.cpu.user) + (after.cpu.system - before.cpu.system)
  const bad = result.errors + result.timeouts + result.non2xx
  if (bad > 0) {
    throw new Error(`${server.variant} /${route}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx`)
  }
  return {
    variant: server.variant,
    rps: result.requests.average,
    requests: result.requests.total,
    latencyP50: result.latency.p50,
    latencyP99: result.latency.p99,
    // Share of one core the server used: ~100% means the server, not
    // autocannon, was the bottleneck, so the ratio measures the server.
    serverCpu: cpuMicros / 1000 / (after.at - before.at)
  }
}

function median (values) {
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

function spread (values) {
  const med = median(values)
  return { min: Math.min(...values), max: Math.max(...values), median: med, rangePct: (Math.max(...values) - Math.min(...values)) / med * 100 }
}

function summarize (route, runs) {
  const bare = runs.filter((r) => r.variant === 'bare')
  const plugin = runs.filter((r) => r.variant === 'plugin')
  const pairRatios = bare.map((b, i) => plugin[i].rps / b.rps)
  const bareMedian = median(bare.map((r) => r.rps))
  const pluginMedian = median(plugin.map((r) => r.rps))
  return {
    route,
    bareMedianRps: bareMedian,
    pluginMedianRps: pluginMedian,
    ratio: pluginMedian / bareMedian,
    pairRatios: spread(pairRatios),
    bareSpread: spread(bare.map((r) => r.rps)),
    pluginSpread: spread(plugin.map((r) => r.rps)),
    bareLatencyP99Median: median(bare.map((r) => r.latencyP99)),
    pluginLatencyP99Median: median(plugin.map((r) => r.latencyP99)),
    bareServerCpuMedian: median(bare.map((r) => r.serverCpu)),
    pluginServerCpuMedian: median(plugin.map((r) => r.serverCpu))
  }
}

const fmt = (n) => Math.round(n).toLocaleString('en-US')
const pct = (n) => `${(n * 100).toFixed(1)}%`

function printSummary (summaries) {
  const rows = [['route', 'bare rps', 'plugin rps', 'plugin/bare', 'pair ratios min..max', 'bare range', 'plugin range', 'server CPU b/p']]
  for (const s of summaries) {
    rows.push([
      `/${s.route}`,
      fmt(s.bareMedianRps),
      fmt(s.pluginMedianRps),
      pct(s.ratio),
      `${pct(s.pairRatios.min)}..${pct(s.pairRatios.max)}`,
      `±${(s.bareSpread.rangePct / 2).toFixed(1)}%`,
      `±${(s.pluginSpread.rangePct / 2).toFixed(1)}%`,
      `${pct(s.bareServerCpuMedian)}/${pct(s.pluginServerCpuMedian)}`
    ])
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)))
  const line = (r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')
  console.log('\n' + line(rows[0]))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows.slice(1)) console.log(line(r))
  console.log('\nrps: median of the runs; ratio = median plugin / median bare; range = (max - min) / 2 around the median.')
}

function machine () {
  const cpus = os.cpus()
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    availableParallelism: os.availableParallelism?.() ?? cpus.length,
    totalMemoryMB: Math.round(os.totalmem() / 2 ** 20),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8
  }
}

async function main () {
  const opts = readOptions()
  loadPlugin() // fails early, with a clear message, when dist/ is not built
  const autocannon = require('autocannon')
  const fastifyVersion = require('fastify/package.json').version
  const autocannonVersion = require('autocannon/package.json').version
  const perRun = opts.duration + 0.3
  const estimate = opts.routes.length * (2 * opts.warmup + 2 * opts.pairs * perRun)
  console.log(`fastify-hangup throughput: Node ${process.version}, fastify ${fastifyVersion}, autocannon ${autocannonVersion}`)
  console.log(`${os.cpus()[0]?.model} x${os.cpus().length}; -c ${opts.connections} -p ${opts.pipelining} -d ${opts.duration}s, warm-up ${opts.warmup}s, ${opts.pairs} pairs per route${opts.pin ? ', servers pinned to CPU 1, load generator to CPU 0' : ''}; about ${Math.ceil(estimate)} s`)
  if (opts.pairs < 5) console.log('note: fewer than 5 pairs: the medians are rough')
  if (opts.pin) pinTo(process.pid, 0)

  const servers = {}
  try {
    servers.bare = await startServer('bare', opts)
    servers.plugin = await startServer('plugin', opts)
    const summaries = []
    const allRuns = {}
    for (const route of opts.routes) {
      for (const v of ['bare', 'plugin']) {
        await sanity(servers[v], route)
        if (opts.warmup > 0) await load(autocannon, servers[v], route, opts.warmup, opts)
      }
      const runs = []
      for (let i = 0; i < opts.pairs; i++) {
        const order = i % 2 === 0 ? ['bare', 'plugin'] : ['plugin', 'bare']
        const pair = {}
        for (const v of order) pair[v] = await load(autocannon, servers[v], route, opts.duration, opts)
        runs.push(pair.bare, pair.plugin)
        console.log(`/${route} pair ${i + 1}/${opts.pairs} (${order.join(' then ')}): bare ${fmt(pair.bare.rps)} rps, plugin ${fmt(pair.plugin.rps)} rps, ratio ${pct(pair.plugin.rps / pair.bare.rps)}`)
      }
      allRuns[route] = runs
      summaries.push(summarize(route, runs))
    }
    printSummary(summaries)

    const report = {
      benchmark: 'throughput',
      date: new Date().toISOString(),
      machine: machine(),
      versions: { node: process.version, fastify: fastifyVersion, autocannon: autocannonVersion, plugin: require('../package.json').version },
      autocannon: { connections: opts.connections, pipelining: opts.pipelining, duration: opts.duration, warmup: opts.warmup, pairs: opts.pairs },
      pinned: opts.pin,
      target: { minRatio: 0.97 },
      summaries,
      runs: allRuns
    }
    fs.mkdirSync(path.dirname(opts.out), { recursive: true })
    fs.writeFileSync(opts.out, JSON.stringify(report, null, 2) + '\n')
    console.log(`written ${path.relative(process.cwd(), opts.out)}`)
    const missed = summaries.filter((s) => s.ratio < 0.97)
    if (missed.length > 0) console.log(`below the 97% target: ${missed.map((s) => `/${s.route} ${pct(s.ratio)}`).join(', ')}`)
  } finally {
    await Promise.all(Object.values(servers).map(stopServer))
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
