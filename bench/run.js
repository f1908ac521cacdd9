'use strict'

const { cli, list } = require('./cli.js')

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
const { loadPlugin } = require('./load-plugin.js')
const { VARIANTS } = require('./app.js')
const { machineInfo, warnIfBusy, othersCpu, othersCpuDelta, waitForQuiet, pinTo } = require('./machine.js')
const { median, quantile } = require('./stats.js')

const HELP = `usage: node bench/run.js [options]   (or: npm run bench -- [options])

  --duration <s>      seconds per measured run           (BENCH_DURATION, default 2)
  --warmup <s>        seconds of warm-up per server+route (BENCH_WARMUP, default 2)
  --connections <n>   autocannon connections              (BENCH_CONNECTIONS, default 50)
  --pipelining <n>    autocannon pipelining               (BENCH_PIPELINING, default 1)
  --pairs <n>         clean bare/plugin pairs per route   (BENCH_PAIRS, default 10)
  --max-pairs <n>     give up on clean pairs after n      (BENCH_MAX_PAIRS, default 1.4 x pairs)
  --min-cpu <0..1>    a run whose server used less than this share of a core
                      was throttled or client-bound: its pair is not clean
                      (BENCH_MIN_CPU, default 0.9); so is a pair during which
                      other processes used more than 5% of a core
  --routes <list>     comma-separated: ignore,read        (BENCH_ROUTES, default ignore,read)
  --pin / --no-pin    pin the servers to CPU 1 and the load generator to CPU 0
                      with taskset (BENCH_PIN=1/0, default: on when taskset exists
                      and the machine has 2+ CPUs)
  --against <variant> what to compare with bare Fastify (bench/app.js): plugin
                      (default: the plugin's defaults), or context,
                      no-context, no-fatal, no-abort, hook to tell what the
                      cost is made of, or autobind (autoBind: true)
  --baseline <variant> what --against is compared with (default bare: Fastify
                      alone); e.g. bare-undici (Fastify with undici loaded),
                      bare-require (with BENCH_REQUIRE's modules loaded) to
                      isolate what loading a module costs, or plugin with
                      --against autobind (target: at most 2 points below).
                      Targets: plugin >= 97% on Node 24+, >= 93% on 22;
                      no-context, no-fatal >= 97%; the /read route >= 100%
  --max-seconds <s>   stop taking new pairs after this long (BENCH_MAX_SECONDS,
                      default 170); the time is shared out between the routes
  --server-node <path> the Node binary the servers run on (BENCH_SERVER_NODE;
                      default: this one). The load generator stays on this
                      Node: a load generator that cannot keep up measures
                      itself, so this tells a slow generator from a slow
                      server (docs/benchmarks.md, Node 26)
  --no-wait           do not wait (up to 20 s before a pair) for other programs
                      to leave the CPU alone
  --prof <side>       run that server (bare, plugin = the --against side, or
                      both) under --cpu-prof;
                      profiles go to bench/results/profiles/ (BENCH_PROF)
  --out <file>        JSON output (default bench/results/<node-version>.json)
  --help
`

const { fail, parse } = cli('bench', HELP)

function readOptions () {
  const values = parse({
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    pipelining: { type: 'string' },
    pairs: { type: 'string' },
    'max-pairs': { type: 'string' },
    'min-cpu': { type: 'string' },
    routes: { type: 'string' },
    pin: { type: 'boolean' },
    'no-pin': { type: 'boolean' },
    prof: { type: 'string' },
    against: { type: 'string' },
    baseline: { type: 'string' },
    'max-seconds': { type: 'string' },
    'no-wait': { type: 'boolean' },
    'server-node': { type: 'string' },
    out: { type: 'string' },
  })
  const env = process.env
  const int = (name, flag, fallback, min) => {
    const raw = flag ?? env[name] ?? String(fallback)
    const n = Number(raw)
    if (!Number.isInteger(n) || n < min) fail(`${name.replace('BENCH_', '').toLowerCase()} must be an integer >= ${min}, got ${raw}`)
    return n
  }
  const routes = list(values.routes ?? env.BENCH_ROUTES ?? 'ignore,read')
  for (const r of routes) if (r !== 'ignore' && r !== 'read') fail(`unknown route ${r} (ignore, read)`)
  const prof = values.prof ?? env.BENCH_PROF ?? ''
  if (!['', 'bare', 'plugin', 'both'].includes(prof)) fail(`--prof must be bare, plugin or both, got ${prof}`)
  const against = values.against ?? 'plugin'
  if (against === 'bare' || !Object.hasOwn(VARIANTS, against)) fail(`--against must be one of ${Object.keys(VARIANTS).filter((v) => v !== 'bare').join(', ')}`)
  const baseline = values.baseline ?? 'bare'
  if (baseline === against || !Object.hasOwn(VARIANTS, baseline)) fail(`--baseline must be one of ${Object.keys(VARIANTS).join(', ')}, other than --against`)
  let pin = canPin()
  if (env.BENCH_PIN !== undefined) pin = env.BENCH_PIN === '1' || env.BENCH_PIN === 'true'
  if (values.pin) pin = true
  if (values['no-pin']) pin = false
  if (pin && !canPin()) fail('--pin needs taskset and 2+ CPUs')
  const pairs = int('BENCH_PAIRS', values.pairs, 10, 1)
  const minCpuRaw = values['min-cpu'] ?? env.BENCH_MIN_CPU ?? '0.9'
  const minCpu = Number(minCpuRaw)
  if (!(minCpu >= 0 && minCpu <= 1)) fail(`min-cpu must be between 0 and 1, got ${minCpuRaw}`)
  const serverNode = values['server-node'] ?? env.BENCH_SERVER_NODE ?? process.execPath
  // The servers' Node: the figures, the targets and the file name are its.
  const serverVersion = serverNode === process.execPath ? process.version : execFileSync(serverNode, ['-p', 'process.version'], { encoding: 'utf8' }).trim()
  return {
    duration: int('BENCH_DURATION', values.duration, 2, 1),
    warmup: int('BENCH_WARMUP', values.warmup, 2, 0),
    connections: int('BENCH_CONNECTIONS', values.connections, 50, 1),
    pipelining: int('BENCH_PIPELINING', values.pipelining, 1, 1),
    pairs,
    maxPairs: Math.max(pairs, int('BENCH_MAX_PAIRS', values['max-pairs'], Math.ceil(1.4 * pairs), 1)),
    minCpu,
    maxOthers: 0.05,
    maxSeconds: int('BENCH_MAX_SECONDS', values['max-seconds'], 170, 10),
    waitQuiet: !values['no-wait'],
    childPids: [],
    routes,
    pin,
    prof,
    against,
    baseline,
    serverNode,
    serverVersion,
    out: values.out ?? path.join(__dirname, 'results', `${serverVersion}.json`)
  }
}

/**
 * The targets of a comparison, per route, or null when there is none. Against
 * bare Fastify: the defaults (`asyncContext: 'auto'`) at >= 97% on Node 24
 * and later, >= 93% on Node 22, measured and reported on Node 20 (end of
 * life); the plugin without the async context (`no-context`, `no-fatal`) at
 * >= 97% on every Node; a route that reads the signal at >= 100% (the
 * plugin's signal is lazier than Fastify's own). `autoBind` at most 2 points
 * below the defaults: `--baseline plugin --against autobind` >= 98%, or
 * against `plugin-undici` (undici loaded on both sides: the plugin's own
 * share).
 */
function targetFor (against, baseline, nodeMajor) {
  const withRead = (minRatio, from) => ({ minRatio, from, byRoute: { read: Math.max(minRatio, 1) } })
  if (baseline === 'bare') {
    if (against === 'plugin') {
      if (nodeMajor >= 24) return withRead(0.97, 'the defaults, Node 24 and later')
      if (nodeMajor === 22) return withRead(0.93, 'the defaults, Node 22')
      return null
    }
    if (against === 'no-context' || against === 'no-fatal') return withRead(0.97, 'the plugin without async context')
    return null
  }
  if (against === 'autobind' && (baseline === 'plugin' || baseline === 'plugin-undici')) {
    return { minRatio: 0.98, from: `autoBind at most 2 points below ${baseline}`, byRoute: {} }
  }
  return null
}

/** A route's own target where it has one (the signal-reading route), else the comparison's. */
function routeTarget (target, route) {
  return target.byRoute[route] ?? target.minRatio
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

/**
 * role: 'bare' (the baseline: opts.baseline, bare Fastify by default) or
 * 'plugin' (the side compared with it, which runs opts.against).
 */
async function startServer (role, opts) {
  const variant = role === 'bare' ? opts.baseline : opts.against
  // The parent's flags (e.g. --experimental-async-context-frame) apply to the servers too.
  const execArgv = [...process.execArgv]
  if (opts.prof === role || opts.prof === 'both') {
    const dir = path.join(__dirname, 'results', 'profiles')
    fs.mkdirSync(dir, { recursive: true })
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${variant}-${opts.serverVersion}-${Date.now()}.cpuprofile`)
  }
  const child = fork(path.join(__dirname, 'server.js'), [variant], { execPath: opts.serverNode, execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const msg = await new Promise((resolve, reject) => {
    const onExit = (code) => reject(new Error(`${variant} server exited with code ${code} before it was ready`))
    child.once('exit', onExit)
    child.once('message', (m) => {
      child.removeListener('exit', onExit)
      resolve(m)
    })
  })
  if (msg.type !== 'ready') throw new Error(`${variant} server: unexpected message ${JSON.stringify(msg)}`)
  if (opts.pin) pinTo(msg.pid, 1)
  return { role, variant, child, node: msg.node, port: msg.port, url: `http://127.0.0.1:${msg.port}` }
}

async function stopServer (server) {
  const child = server.child
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  if (child.connected) child.send('stop')
  // SIGKILL, not SIGTERM: with the plugin's `fatal` on, SIGTERM starts a
  // graceful close of up to its 10 s grace period instead of ending the process.
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

/** The child's next message; rejects if it exits first (a server that died mid-run). */
function nextMessage (server) {
  return new Promise((resolve, reject) => {
    const onExit = (code, signal) => {
      server.child.removeListener('message', onMessage)
      reject(new Error(`${server.variant} server exited (code ${code}, signal ${signal}) during the benchmark`))
    }
    const onMessage = (msg) => {
      server.child.removeListener('exit', onExit)
      resolve(msg)
    }
    server.child.once('exit', onExit)
    server.child.once('message', onMessage)
  })
}

async function cpuSample (server) {
  const reply = nextMessage(server)
  server.child.send('cpu')
  return await reply
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
  const ours = new Set([process.pid, ...opts.childPids])
  const othersBefore = othersCpu(ours)
  const result = await autocannon({
    url: `${server.url}/${route}`,
    connections: opts.connections,
    pipelining: opts.pipelining,
    duration: seconds
  })
  const othersMs = othersCpuDelta(othersBefore, othersCpu(ours))
  const after = await cpuSample(server)
  const cpuMicros = (after.cpu.user - before.cpu.user) + (after.cpu.system - before.cpu.system)
  const wallMs = after.at - before.at
  const bad = result.errors + result.timeouts + result.non2xx
  if (bad > 0) {
    throw new Error(`${server.variant} /${route}: ${result.errors} errors, ${result.timeouts} timeouts, ${result.non2xx} non-2xx`)
  }
  return {
    variant: server.variant,
    role: server.role,
    rps: result.requests.average,
    requests: result.requests.total,
    latencyP50: result.latency.p50,
    latencyP99: result.latency.p99,
    // Share of one core the server used. ~95%+ means the server, not
    // autocannon, was the bottleneck. Much less means the VM was throttled
    // (on a burstable VM both vCPUs busy can halve the speed for seconds)
    // or the load generator could not keep up: such a pair is not clean.
    serverCpu: cpuMicros / 1000 / wallMs,
    // CPU used by every other process (and kernel thread) meanwhile, in
    // cores: another program competing for the CPU makes the pair unclean.
    othersCpu: othersMs / wallMs,
    // Requests per second of server CPU time: what the server would do on a
    // core of its own. The guest's CPU clock does not run while the host
    // holds the vCPU back, so this moves less than the wall-clock rps.
    cpuRps: result.requests.total / (cpuMicros / 1e6)
  }
}

async function measurePair (autocannon, servers, route, index, opts) {
  const order = index % 2 === 0 ? ['bare', 'plugin'] : ['plugin', 'bare']
  const pair = { order: order.map((role) => servers[role].variant) }
  for (const role of order) pair[role] = await load(autocannon, servers[role], route, opts.duration, opts)
  pair.ratio = pair.plugin.rps / pair.bare.rps
  pair.clean = [pair.bare, pair.plugin].every((r) => r.serverCpu >= opts.minCpu && r.othersCpu <= opts.maxOthers)
  return pair
}

function spread (values) {
  const med = median(values)
  const min = Math.min(...values)
  const max = Math.max(...values)
  return { median: med, q1: quantile(values, 0.25), q3: quantile(values, 0.75), min, max, rangePct: (max - min) / med * 100 }
}

function stats (pairs) {
  const bare = pairs.map((p) => p.bare)
  const plugin = pairs.map((p) => p.plugin)
  const bareMedianRps = median(bare.map((r) => r.rps))
  const pluginMedianRps = median(plugin.map((r) => r.rps))
  const bareCpuRps = median(bare.map((r) => r.cpuRps))
  const pluginCpuRps = median(plugin.map((r) => r.cpuRps))
  return {
    pairs: pairs.length,
    bareMedianRps,
    pluginMedianRps,
    ratio: pluginMedianRps / bareMedianRps,
    pairRatios: spread(pairs.map((p) => p.ratio)),
    bareRps: spread(bare.map((r) => r.rps)),
    pluginRps: spread(plugin.map((r) => r.rps)),
    bareCpuRps,
    pluginCpuRps,
    cpuRatio: pluginCpuRps / bareCpuRps,
    bareLatencyP99Median: median(bare.map((r) => r.latencyP99)),
    pluginLatencyP99Median: median(plugin.map((r) => r.latencyP99)),
    bareServerCpuMedian: median(bare.map((r) => r.serverCpu)),
    pluginServerCpuMedian: median(plugin.map((r) => r.serverCpu))
  }
}

/**
 * The headline uses the clean pairs (server saturated in both runs) when
 * there are at least 3 of them, or all pairs otherwise (then `basis` says so).
 */
function summarize (route, pairs) {
  const clean = pairs.filter((p) => p.clean)
  const all = stats(pairs)
  const cleanStats = clean.length > 0 ? stats(clean) : null
  const useClean = cleanStats !== null && clean.length >= Math.min(3, pairs.length)
  return {
    route,
    basis: useClean ? 'clean pairs' : 'all pairs (too few clean ones: the machine was throttled, busy with other programs, or the load generator saturated)',
    ...(useClean ? cleanStats : all),
    cleanPairs: clean.length,
    totalPairs: pairs.length,
    allPairs: all
  }
}

const fmt = (n) => Math.round(n).toLocaleString('en-US')
const pct = (n) => `${(n * 100).toFixed(1)}%`

function printSummary (summaries, label, base) {
  const rows = [['route', `${base} rps`, `${label} rps`, `${label}/${base}`, 'pair ratio median [IQR]', 'pair ratios min..max', `${base} ±`, `${label} ±`, 'clean']]
  for (const s of summaries) {
    rows.push([
      `/${s.route}`,
      fmt(s.bareMedianRps),
      fmt(s.pluginMedianRps),
      pct(s.ratio),
      `${pct(s.pairRatios.median)} [${pct(s.pairRatios.q1)}..${pct(s.pairRatios.q3)}]`,
      `${pct(s.pairRatios.min)}..${pct(s.pairRatios.max)}`,
      `${(s.bareRps.rangePct / 2).toFixed(1)}%`,
      `${(s.pluginRps.rangePct / 2).toFixed(1)}%`,
      `${s.cleanPairs}/${s.totalPairs}`
    ])
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)))
  const line = (r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')
  console.log('\n' + line(rows[0]))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows.slice(1)) console.log(line(r))
  console.log(`
rps: median over the clean pairs (server saturated, no other program on the CPU), else over all.
${label}/${base}: median ${label} rps / median ${base} rps. pair ratio: ${label}/${base} within one pair
(back-to-back runs); its median and interquartile range, then its extremes.
±: half the max-min range of the runs, in % of their median: the noise of single runs.`)
  for (const s of summaries) if (!s.basis.startsWith('clean')) console.log(`/${s.route}: ${s.basis}`)
}

async function runRoute (autocannon, servers, route, deadline, opts) {
  for (const v of ['bare', 'plugin']) {
    await sanity(servers[v], route)
    if (opts.warmup > 0) await load(autocannon, servers[v], route, opts.warmup, opts)
  }
  const pairs = []
  const ours = new Set([process.pid, ...opts.childPids])
  const pairMs = 2 * (opts.duration + 0.3) * 1000
  let clean = 0
  for (let i = 0; clean < opts.pairs && i < opts.maxPairs; i++) {
    if (opts.waitQuiet) {
      const { waited, quiet } = await waitForQuiet(ours, { maxWaitMs: Math.min(20_000, Math.max(0, deadline - Date.now() - pairMs)) })
      if (waited > 1000) console.log(`  waited ${(waited / 1000).toFixed(1)} s for other programs to leave the CPU${quiet ? '' : ' (they did not)'}`)
    }
    if (Date.now() + pairMs > deadline && i > 0) {
      console.log(`/${route}: time is up after ${i} pairs (--max-seconds)`)
      break
    }
    const pair = await measurePair(autocannon, servers, route, i, opts)
    pairs.push(pair)
    if (pair.clean) clean++
    const cpu = `server CPU ${pct(pair.bare.serverCpu)}/${pct(pair.plugin.serverCpu)}`
    const foreign = `others ${pair.bare.othersCpu.toFixed(2)}/${pair.plugin.othersCpu.toFixed(2)} cores`
    console.log(`/${route} pair ${i + 1} (${pair.order.join(' then ')}): ${opts.baseline} ${fmt(pair.bare.rps)} rps, ${opts.against} ${fmt(pair.plugin.rps)} rps, ratio ${pct(pair.ratio)}, ${cpu}, ${foreign}${pair.clean ? '' : ' (not clean)'}`)
  }
  return pairs
}

async function main () {
  const opts = readOptions()
  loadPlugin() // fails early, with a clear message, when dist/ is not built
  const autocannon = require('autocannon')
  const fastifyVersion = require('fastify/package.json').version
  const autocannonVersion = require('autocannon/package.json').version
  const perRun = opts.duration + 0.2
  const estimate = opts.routes.length * 2 * (opts.warmup + 0.2 + opts.pairs * perRun)
  const worst = Math.min(opts.maxSeconds, opts.routes.length * 2 * (opts.warmup + 0.2 + opts.maxPairs * perRun))
  const loadNode = opts.serverVersion === process.version ? '' : ` (load generator on Node ${process.version})`
  console.log(`fastify-hangup throughput: Node ${opts.serverVersion}${loadNode}, fastify ${fastifyVersion}, autocannon ${autocannonVersion}; ${opts.baseline === 'bare' ? 'bare Fastify' : opts.baseline} vs ${opts.against}`)
  console.log(`${os.cpus()[0]?.model} x${os.cpus().length}; -c ${opts.connections} -p ${opts.pipelining} -d ${opts.duration}s, warm-up ${opts.warmup}s, ${opts.pairs} clean pairs per route (at most ${opts.maxPairs})${opts.pin ? ', servers pinned to CPU 1, load generator to CPU 0' : ''}; about ${Math.ceil(estimate)} s, at most ${Math.ceil(worst)} s`)
  if (opts.pairs < 5) console.log('note: fewer than 5 pairs: the medians are rough')
  const idleBeforeStart = await warnIfBusy()
  const machine = machineInfo() // before pinning, which narrows availableParallelism
  if (opts.pin) pinTo(process.pid, 0)

  const servers = {}
  try {
    servers.bare = await startServer('bare', opts)
    servers.plugin = await startServer('plugin', opts)
    opts.childPids = [servers.bare.child.pid, servers.plugin.child.pid]
    const startedAt = Date.now()
    const summaries = []
    const pairsByRoute = {}
    const deadline = Date.now() - performance.now() + opts.maxSeconds * 1000 // from the process start
    for (const [k, route] of opts.routes.entries()) {
      const routeDeadline = Date.now() + (deadline - Date.now()) / (opts.routes.length - k)
      pairsByRoute[route] = await runRoute(autocannon, servers, route, routeDeadline, opts)
      summaries.push(summarize(route, pairsByRoute[route]))
    }
    printSummary(summaries, opts.against, opts.baseline)

    const serverMajor = Number(opts.serverVersion.slice(1).split('.')[0])
    const target = targetFor(opts.against, opts.baseline, serverMajor)
    const report = {
      benchmark: 'throughput',
      date: new Date().toISOString(),
      seconds: Math.round((Date.now() - startedAt) / 1000),
      command: `node ${[...process.execArgv, 'bench/run.js', ...process.argv.slice(2)].join(' ')}`.trim(),
      ...([opts.against, opts.baseline].includes('bare-require') ? { required: (process.env.BENCH_REQUIRE ?? '').split(',').filter(Boolean) } : {}),
      machine: { ...machine, idleBeforeStart },
      versions: { node: opts.serverVersion, loadGenerator: process.version, fastify: fastifyVersion, autocannon: autocannonVersion, plugin: require('../package.json').version },
      autocannon: { connections: opts.connections, pipelining: opts.pipelining, duration: opts.duration, warmup: opts.warmup },
      pairing: { wanted: opts.pairs, max: opts.maxPairs, minServerCpu: opts.minCpu, maxOthersCpu: opts.maxOthers },
      pinned: opts.pin,
      against: opts.against,
      baseline: opts.baseline,
      target,
      summaries,
      pairs: pairsByRoute
    }
    fs.mkdirSync(path.dirname(opts.out), { recursive: true })
    fs.writeFileSync(opts.out, JSON.stringify(report, null, 2) + '\n')
    console.log(`\nwritten ${path.relative(process.cwd(), opts.out)}`)
    if (target !== null) {
      const missed = summaries.filter((s) => s.ratio < routeTarget(target, s.route))
      const why = (s) => s.pairRatios.q3 >= routeTarget(target, s.route) ? ", the pairs' IQR reaches it: within this machine's noise" : ''
      for (const s of missed) console.log(`below the ${pct(routeTarget(target, s.route))} target (${target.from}): /${s.route} ${pct(s.ratio)} (pair ratio median ${pct(s.pairRatios.median)}${why(s)})`)
      if (missed.length === 0) console.log(`target met (${target.from}): ${summaries.map((s) => `/${s.route} ${pct(s.ratio)} >= ${pct(routeTarget(target, s.route))}`).join(', ')}`)
    } else {
      console.log(`no target for ${opts.against} against ${opts.baseline} on Node ${serverMajor} (measured and reported)`)
    }
  } finally {
    await Promise.all(Object.values(servers).map(stopServer))
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
