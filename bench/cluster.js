'use strict'

const { cli, list } = require('./cli.js')

// fastify-hangup/cluster under crashes (node bench/cluster.js). See bench/README.md.
//
// bench/cluster-app.js runs a startCluster() primary with 2 workers (Fastify +
// the plugin's defaults) on 127.0.0.1, in its own process group; this script
// reads the primary's log lines (stdout) and measures from outside, with real
// clients:
//
//   1. restart time: send GET /crash (a throw in a timer: the worker answers
//      500 and closes gracefully, the primary forks its replacement at once),
//      then open a new connection every ~2 ms with GET /pid until a pid that
//      did not exist before the crash answers. The figure is from the 500 to
//      that first answer. The primary's own restartMs (its closing message ->
//      the replacement listening, from its 'worker listening' line) is
//      collected alongside.
//   2. throughput under periodic crashes: autocannon on GET / for a few
//      seconds, crash-free, then with a GET /crash every 500 ms (and 1000 ms)
//      from a separate client, in rounds with the order alternated; medians
//      and the ratio crashing/crash-free, and what autocannon saw go wrong
//      (connection errors, non-2xx) besides the crash requests themselves. A
//      low-rate keep-alive client that honours `Connection: close` (Node's
//      http.Agent) runs alongside as a probe of what a well-behaved client
//      loses.
//   3. refused and lost under crashes (--phases clients): `--clients`
//      keep-alive clients (each its own http.Agent, one request at a time,
//      no retry) on GET / while a GET /crash comes every 500 ms for 10 s;
//      every failure by code (ECONNREFUSED: the port went unanswered), in
//      `--client-runs` runs.
//
// --hogs N starts N busy loops (node -e 'for(;;){}') beside the cluster for
// the whole run, and kills them after: the figures under CPU pressure. They
// are left out of the "other programs on the CPU" figures.
//
// The cluster runs a copy of dist/cjs taken at the start (--no-snapshot: in
// place), so that a rebuild during the run does not break the workers it
// starts. Everything is bounded: each wait has a timeout, the script stops taking
// rounds at --max-seconds, and the cluster's whole process group gets SIGKILL
// on the way out (after a SIGTERM and a bounded graceful stop), whatever
// happens, Ctrl-C included.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const { createInterface } = require('node:readline')
const { setTimeout: sleep } = require('node:timers/promises')
const { machineInfo, warnIfBusy, othersCpu, waitForQuiet } = require('./machine.js')
const { median, quantile } = require('./stats.js')

const HELP = `usage: node bench/cluster.js [options]

  --workers <n>          cluster workers                              (default 2)
  --samples <n>          restart-time samples (one crash each)        (default 20)
  --sample-timeout <ms>  give up on a sample after this long          (default 5000)
  --poll <ms>            interval between new-connection polls        (default 2)
  --restart-seconds <s>  time budget of the restart-time phase        (default 60)
  --duration <s>         seconds per throughput run                   (default 5)
  --warmup <s>           crash-free warm-up before each run, unmeasured (default 1)
  --rounds <n>           throughput rounds (each: one run per mode)   (default 5)
  --intervals <list>     crash intervals in ms for the crashing runs  (default 500,1000)
  --connections <n>      autocannon connections                       (default 50)
  --probe <ms>           the keep-alive probe's interval, 0: none     (default 10)
  --phases <list>        restart,throughput,clients          (default restart,throughput)
  --clients <n>          keep-alive clients of the clients phase      (default 8)
  --client-runs <n>      runs of the clients phase                    (default 3)
  --crash-seconds <s>    seconds of crashes per clients run           (default 10)
  --hogs <n>             busy-loop processes beside the cluster       (default 0)
  --grace <ms>           the workers' fatal.gracePeriod     (default: the plugin's, 10 s)
  --max-seconds <s>      stop taking rounds after this long; rounds
                         that would not fit drop the longest interval
                         first                                        (default 170)
  --no-wait              do not wait (up to 10 s) for other programs to
                         leave the CPU alone before each run
  --no-snapshot          run dist/cjs in place, not a copy taken at the start
                         (a rebuild during the run then breaks it)
  --dist <dir>           the compiled plugin to run instead of dist/cjs (e.g. a
                         copy of one build, to run the same on each Node; its
                         requires resolve through this repository's node_modules)
  --out <file>           JSON output (default bench/results/cluster-<node-version>.json)
  --help
`

const { fail, int, parse } = cli('cluster', HELP)

const HOST = '127.0.0.1'
/** The compiled plugin the cluster runs (--dist to run another copy, e.g. the same build on each Node). */
let DIST = path.join(__dirname, '..', 'dist', 'cjs')
/** Temporary copies of dist/cjs, removed on the way out. */
const snapshots = new Set()
const TARGET_RESTART_MS = 500
/** The longest wait for the cluster to start, to settle, to stop. */
const START_TIMEOUT_MS = 20_000
const SETTLE_TIMEOUT_MS = 15_000
const STOP_TIMEOUT_MS = 12_000
const TIMELINE_BUCKET_MS = 250
/** A run or a sample during which other programs used more cores than this is not quiet. */
const QUIET_MAX_OTHERS = 0.1

function readOptions () {
  const values = parse({
    workers: { type: 'string' },
    samples: { type: 'string' },
    'sample-timeout': { type: 'string' },
    poll: { type: 'string' },
    'restart-seconds': { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    rounds: { type: 'string' },
    intervals: { type: 'string' },
    connections: { type: 'string' },
    probe: { type: 'string' },
    phases: { type: 'string' },
    clients: { type: 'string' },
    'client-runs': { type: 'string' },
    'crash-seconds': { type: 'string' },
    hogs: { type: 'string' },
    grace: { type: 'string' },
    'max-seconds': { type: 'string' },
    'no-wait': { type: 'boolean' },
    'no-snapshot': { type: 'boolean' },
    dist: { type: 'string' },
    out: { type: 'string' },
  })
  const intervals = list(values.intervals ?? '500,1000').map((s) => int('--intervals', s, 0, 50))
  const phases = list(values.phases ?? 'restart,throughput')
  for (const p of phases) if (!['restart', 'throughput', 'clients'].includes(p)) fail(`unknown phase ${p} (restart, throughput, clients)`)
  if (phases.length === 0) fail('--phases: nothing to run')
  return {
    workers: int('--workers', values.workers, 2, 2),
    samples: int('--samples', values.samples, 20, 1),
    sampleTimeout: int('--sample-timeout', values['sample-timeout'], 5000, 100),
    poll: int('--poll', values.poll, 2, 1),
    restartSeconds: int('--restart-seconds', values['restart-seconds'], 60, 1),
    duration: int('--duration', values.duration, 5, 1),
    warmup: int('--warmup', values.warmup, 1, 0),
    rounds: int('--rounds', values.rounds, 5, 1),
    intervals: [...new Set(intervals)].sort((a, b) => a - b),
    connections: int('--connections', values.connections, 50, 1),
    probe: int('--probe', values.probe, 10, 0),
    phases,
    clients: int('--clients', values.clients, 8, 1),
    clientRuns: int('--client-runs', values['client-runs'], 3, 1),
    crashSeconds: int('--crash-seconds', values['crash-seconds'], 10, 1),
    hogs: int('--hogs', values.hogs, 0, 0),
    grace: values.grace === undefined ? null : int('--grace', values.grace, 0, 1),
    maxSeconds: int('--max-seconds', values['max-seconds'], 170, 10),
    dist: values.dist === undefined ? null : path.resolve(values.dist),
    waitQuiet: !values['no-wait'],
    snapshot: !values['no-snapshot'],
    out: values.out ?? path.join(__dirname, 'results', `cluster-${process.version}.json`)
  }
}

// ---------------------------------------------------------------------------
// The cluster under test: bench/cluster-app.js in its own process group.

/** Every cluster started, for the exit handler's SIGKILL. */
const clusters = new Set()

class ClusterProcess {
  /** `dist`: the plugin's compiled directory the workers load (a snapshot, or dist/cjs itself). */
  constructor (workers, dist, gracePeriod = null) {
    this.workers = workers
    this.dist = dist
    this.gracePeriod = gracePeriod
    this.logs = []
    this.others = [] // non-JSON lines of the primary's stdout
    this.byId = new Map() // worker id -> { id, pid, replaces, listening, closing, exited, ... }
    this.ports = new Set()
    this.waiters = new Set()
    this.exit = null
    this.child = null
  }

  start () {
    const nodePath = [path.join(__dirname, '..', 'node_modules'), process.env.NODE_PATH].filter(Boolean).join(path.delimiter)
    const env = {
      ...process.env,
      NODE_PATH: nodePath,
      BENCH_CLUSTER: JSON.stringify({ workers: this.workers, port: 0, host: HOST, exitWithParent: true, dist: this.dist, gracePeriod: this.gracePeriod ?? undefined })
    }
    // Its own process group (detached): the primary and every worker it forks
    // can be killed at once with process.kill(-pgid). Its stdin is a pipe
    // from this process: if this one dies without its exit handler (SIGKILL),
    // the pipe ends and the primary stops its cluster (bench/cluster-app.js).
    this.child = spawn(process.execPath, [...process.execArgv, path.join(__dirname, 'cluster-app.js')], {
      env,
      stdio: ['pipe', 'pipe', 'inherit'],
      detached: true
    })
    this.pgid = this.child.pid
    clusters.add(this)
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal, at: performance.now() }
        this.notify()
        resolve(this.exit)
      })
    })
    this.child.once('error', (err) => { this.exit ??= { code: null, signal: null, error: err.message, at: performance.now() } })
    createInterface({ input: this.child.stdout }).on('line', (text) => this.onLine(text))
    return this.waitFor(() => this.listeningCount() >= this.workers, START_TIMEOUT_MS, 'the workers to listen')
  }

  onLine (text) {
    let line
    try {
      line = JSON.parse(text)
    } catch {
      this.others.push(text)
      return
    }
    line.at = performance.now()
    this.logs.push(line)
    const w = this.byId.get(line.worker)
    switch (line.msg) {
      case 'worker forked':
        this.byId.set(line.worker, { id: line.worker, pid: line.workerPid, replaces: line.replaces ?? null, forkedTime: line.time, listening: false, closing: false, exited: false })
        break
      case 'worker listening':
        if (w) {
          w.listening = true
          w.listeningTime = line.time
        }
        this.ports.add(line.port)
        break
      case 'worker closing':
        if (w) w.closing = true
        break
      case 'worker exited':
        if (w) w.exited = true
        break
    }
    this.notify()
  }

  notify () {
    for (const waiter of this.waiters) waiter()
  }

  /** Resolves true when `predicate()` holds, false after `timeoutMs` or if the primary exits. */
  waitFor (predicate, timeoutMs) {
    if (predicate()) return Promise.resolve(true)
    return new Promise((resolve) => {
      const done = (value) => {
        clearTimeout(timer)
        this.waiters.delete(check)
        resolve(value)
      }
      const check = () => {
        if (predicate()) done(true)
        else if (this.exit !== null) done(false)
      }
      const timer = setTimeout(done, timeoutMs, false)
      this.waiters.add(check)
      check()
    })
  }

  get port () {
    return [...this.ports][0]
  }

  listeningCount () {
    let n = 0
    for (const w of this.byId.values()) if (w.listening && !w.closing && !w.exited) n++
    return n
  }

  /** `workers` workers listen and every other one has exited: no restart under way. */
  steady () {
    for (const w of this.byId.values()) if (!w.exited && (!w.listening || w.closing)) return false
    return this.listeningCount() === this.workers
  }

  /** Pids of the workers that have not exited. */
  livePids () {
    return new Set([...this.byId.values()].filter((w) => !w.exited).map((w) => w.pid))
  }

  allPids () {
    return [this.child.pid, ...[...this.byId.values()].map((w) => w.pid)]
  }

  linesSince (index, msg) {
    return this.logs.slice(index).filter((l) => l.msg === msg)
  }

  /** SIGTERM to the primary (it stops its workers gracefully), then SIGKILL to the group. */
  async stop () {
    const report = { graceful: false, code: null, signal: null, leftBehind: [] }
    if (this.exit === null) {
      try { this.child.kill('SIGTERM') } catch {}
      const timer = setTimeout(() => this.killGroup(), STOP_TIMEOUT_MS)
      await this.exited
      clearTimeout(timer)
    }
    report.code = this.exit?.code ?? null
    report.signal = this.exit?.signal ?? null
    report.graceful = report.code === 0
    // Workers outlive a primary only by a bug (or a SIGKILL of the primary):
    // whatever is left of the group goes now, and is reported.
    await sleep(200)
    report.leftBehind = this.allPids().filter(isAlive)
    this.killGroup()
    clusters.delete(this)
    return report
  }

  /**
   * CPU time (ms) the cluster has used so far: the primary's own, its reaped
   * workers' (the kernel adds them to its cutime/cstime) and its live (or
   * not yet reaped) workers'. Linux /proc; null elsewhere.
   */
  cpuMs () {
    const primary = procTimes(this.child.pid)
    if (primary === null) return null
    let ticks = primary.self + primary.children
    for (const w of this.byId.values()) {
      const t = procTimes(w.pid)
      // A pid reused by another process after the worker was reaped is not ours.
      if (t !== null && t.ppid === this.child.pid) ticks += t.self
    }
    return ticks * 10
  }

  killGroup () {
    try { process.kill(-this.pgid, 'SIGKILL') } catch {}
    for (const pid of this.allPids()) {
      try { process.kill(pid, 'SIGKILL') } catch {}
    }
  }
}

/** utime+stime and cutime+cstime (clock ticks, 100 per second) and the parent of a process, from /proc. */
function procTimes (pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    // After the command name (which may hold spaces): state is field 3, ppid 4, utime 14 ... cstime 17.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { ppid: Number(f[1]), self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) }
  } catch {
    return null
  }
}

/**
 * Which build of the plugin ran: a hash of every .js file under dist/cjs. lib/ is compiled
 * to dist/ by `npm run build`, which empties dist/cjs first: a rebuild during
 * a run makes workers fail to start, and a different build different figures.
 */
function distFingerprint (dir = DIST) {
  const hash = require('node:crypto').createHash('sha256')
  let newest = 0
  try {
    // Recursive: lib/ has a folder per concern.
    for (const name of fs.readdirSync(dir, { recursive: true }).filter((n) => n.endsWith('.js')).sort()) {
      const file = path.join(dir, name)
      hash.update(name).update(fs.readFileSync(file))
      newest = Math.max(newest, fs.statSync(file).mtimeMs)
    }
  } catch {
    return null
  }
  return { sha256: hash.digest('hex').slice(0, 16), newestFile: new Date(newest).toISOString() }
}

/**
 * A copy of dist/cjs in a temporary directory, taken at the start, for the
 * cluster to run: a rebuild of dist/ during the run (`npm run build` empties
 * it first) then changes nothing. Retried while a build is under way.
 * The copy's own requires (fastify-plugin, @fastify/error) resolve through
 * NODE_PATH, set to this repository's node_modules.
 */
async function snapshotDist () {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fastify-hangup-bench-'))
  snapshots.add(root)
  const dest = path.join(root, 'cjs')
  for (let attempt = 1; ; attempt++) {
    try {
      fs.rmSync(dest, { recursive: true, force: true })
      const before = distFingerprint()
      fs.cpSync(DIST, dest, { recursive: true })
      const copy = distFingerprint(dest)
      if (before !== null && copy?.sha256 === before.sha256 && distFingerprint()?.sha256 === before.sha256 &&
          fs.existsSync(path.join(dest, 'index.js')) && fs.existsSync(path.join(dest, 'cluster.js'))) {
        return { root, dist: dest, build: { ...before, snapshot: dest } }
      }
    } catch {}
    if (attempt === 10) throw new Error(`could not copy a stable ${DIST} in 10 tries (a build under way?)`)
    await sleep(2000)
  }
}

function removeSnapshots () {
  for (const root of snapshots) {
    try { fs.rmSync(root, { recursive: true, force: true }) } catch {}
  }
  snapshots.clear()
}

function isAlive (pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function killAll () {
  for (const c of clusters) c.killGroup()
  clusters.clear()
  stopHogs()
}

/** The busy loops of --hogs. */
const hogs = []

function startHogs (n) {
  for (let i = 0; i < n; i++) hogs.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }))
}

function stopHogs () {
  for (const hog of hogs.splice(0)) {
    try { hog.kill('SIGKILL') } catch {}
  }
}

/** This process's pids, the cluster's and the hogs': not "other programs". */
function ourPids (cluster) {
  return new Set([process.pid, ...cluster.allPids(), ...hogs.map((h) => h.pid)])
}

process.on('exit', () => {
  killAll()
  removeSnapshots()
})
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    console.error(`\ncluster bench: ${signal}: killing the cluster`)
    killAll()
    process.exit(130)
  })
}

// ---------------------------------------------------------------------------
// Clients

/**
 * One request on a new connection (agent: false: `Connection: close`).
 * Resolves with the status, the body and when the response's headers
 * arrived; rejects with the socket error (or code TIMEOUT).
 */
function get (port, urlPath, timeoutMs, agent = false) {
  return new Promise((resolve, reject) => {
    const sentAt = performance.now()
    const req = http.request({ host: HOST, port, path: urlPath, agent }, (res) => {
      const at = performance.now()
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { body += chunk })
      res.on('end', () => {
        clearTimeout(timer)
        resolve({ status: res.statusCode, body, sentAt, at, endAt: performance.now(), connection: res.headers.connection })
      })
      res.on('error', fail)
    })
    const timer = setTimeout(() => {
      const err = new Error(`no answer in ${timeoutMs} ms`)
      err.code = 'TIMEOUT'
      req.destroy(err)
    }, timeoutMs)
    function fail (err) {
      clearTimeout(timer)
      reject(err)
    }
    req.on('error', fail)
    req.end()
  })
}

function pidOf (answer) {
  try {
    return JSON.parse(answer.body).pid
  } catch {
    return null
  }
}

function tally (map, key) {
  map[key] = (map[key] ?? 0) + 1
}

/**
 * Opens a new connection every `pollMs` (at most 8 in flight) with GET /pid
 * until a pid outside `before` answers, or `timeoutMs`.
 */
function pollForNewPid (port, before, pollMs, timeoutMs) {
  return new Promise((resolve) => {
    const startedAt = performance.now()
    const deadline = startedAt + timeoutMs
    const out = { found: null, polls: 0, answers: 0, errors: {}, answeredBy: {} }
    let inflight = 0
    let done = false
    let timer = null
    const finish = (found) => {
      if (done) return
      done = true
      clearTimeout(timer)
      out.found = found
      resolve(out)
    }
    const tick = () => {
      if (done) return
      if (performance.now() > deadline) return finish(null)
      if (inflight < 8) {
        inflight++
        out.polls++
        get(port, '/pid', 2000).then((answer) => {
          inflight--
          out.answers++
          const pid = pidOf(answer)
          tally(out.answeredBy, String(pid))
          if (answer.status === 200 && pid !== null && !before.has(pid)) finish({ pid, at: answer.at, sentAt: answer.sentAt })
        }, (err) => {
          inflight--
          tally(out.errors, err.code ?? err.message)
        })
      }
      timer = setTimeout(tick, pollMs)
    }
    tick()
  })
}

// ---------------------------------------------------------------------------
// 1. Restart time

async function restartSample (cluster, opts) {
  const before = cluster.livePids()
  const logIndex = cluster.logs.length
  const sample = { ok: false }
  const cpu = othersCpuStart(cluster)
  const startedAt = performance.now()
  let crash
  try {
    crash = await get(cluster.port, '/crash', opts.sampleTimeout)
  } catch (err) {
    sample.error = `the crash request failed: ${err.code ?? err.message}`
    return sample
  }
  sample.crashStatus = crash.status
  sample.crashAnswerMs = round(crash.at - crash.sentAt)
  const poll = await pollForNewPid(cluster.port, before, opts.poll, opts.sampleTimeout)
  sample.polls = poll.polls
  sample.pollErrors = poll.errors
  if (poll.found !== null) {
    sample.ok = crash.status === 500
    sample.newPid = poll.found.pid
    // From the 500's headers to the first answer of the new worker; and to
    // when that poll was sent (a lower bound: the poll before it, ~2 ms
    // earlier, still went to an old worker).
    sample.outsideMs = round(poll.found.at - crash.at)
    sample.outsideSentMs = round(poll.found.sentAt - crash.at)
  } else {
    sample.error = `no new worker answered within ${opts.sampleTimeout} ms`
  }
  // Other programs on the CPU meanwhile (cores): a slow sample with a busy machine says little of the cluster.
  sample.othersCpu = round(othersCpuSince(cpu) / (performance.now() - startedAt), 3)
  // The primary's view: its closing, fork and listening lines for this crash.
  await cluster.waitFor(() => cluster.linesSince(logIndex, 'worker listening').some((l) => l.restartMs !== undefined), 3000)
  const closing = cluster.linesSince(logIndex, 'worker closing')[0]
  const listening = cluster.linesSince(logIndex, 'worker listening').find((l) => l.restartMs !== undefined)
  const forked = cluster.linesSince(logIndex, 'worker forked')[0]
  sample.crashedPid = closing?.workerPid ?? null
  sample.closingCause = closing?.cause ?? null
  sample.reqId = closing?.reqId ?? null
  sample.restartMs = listening?.restartMs ?? null
  // Date.now() stamps of the primary's lines: 1 ms resolution.
  sample.forkToListeningMs = forked && listening ? listening.time - forked.time : null
  sample.closingToForkMs = closing && forked ? forked.time - closing.time : null
  // Answers from the crashed worker after its 500: it served connections the
  // primary had already handed to it (each with Connection: close).
  sample.answersFromCrashed = closing ? (poll.answeredBy[String(closing.workerPid)] ?? 0) : null
  return sample
}

async function restartPhase (cluster, opts, deadline) {
  const samples = []
  const ours = () => ourPids(cluster)
  for (let i = 0; i < opts.samples && performance.now() < deadline; i++) {
    const settled = await cluster.waitFor(() => cluster.steady(), SETTLE_TIMEOUT_MS)
    if (!settled) {
      samples.push({ ok: false, error: `the cluster did not settle (${opts.workers} workers listening, the others exited) within ${SETTLE_TIMEOUT_MS} ms` })
      break
    }
    // The replacement of the last sample has just started: a moment for its
    // start-up work (and the old worker's exit) to leave the CPU.
    await sleep(200)
    if (opts.waitQuiet) await waitForQuiet(ours(), { maxWaitMs: 5000, windowMs: 300, threshold: QUIET_MAX_OTHERS })
    const sample = await restartSample(cluster, opts)
    samples.push(sample)
    const s = sample.ok
      ? `500 -> new pid ${sample.outsideMs} ms (${sample.polls} polls${Object.keys(sample.pollErrors).length > 0 ? `, errors ${JSON.stringify(sample.pollErrors)}` : ''}), primary restartMs ${sample.restartMs}, fork -> listening ${sample.forkToListeningMs} ms, others ${sample.othersCpu} cores`
      : `failed: ${sample.error ?? `crash answered ${sample.crashStatus}`}`
    console.log(`  restart ${i + 1}: ${s}`)
  }
  return samples
}

function distribution (values) {
  const v = values.filter((x) => typeof x === 'number')
  if (v.length === 0) return null
  return {
    count: v.length,
    median: round(median(v)),
    p90: round(quantile(v, 0.9)),
    max: round(Math.max(...v)),
    min: round(Math.min(...v))
  }
}

function summarizeRestarts (samples) {
  const ok = samples.filter((s) => s.ok)
  const pollErrors = {}
  for (const s of samples) for (const [k, n] of Object.entries(s.pollErrors ?? {})) pollErrors[k] = (pollErrors[k] ?? 0) + n
  return {
    samples: samples.length,
    ok: ok.length,
    failed: samples.length - ok.length,
    outsideMs: distribution(ok.map((s) => s.outsideMs)),
    primaryRestartMs: distribution(ok.map((s) => s.restartMs)),
    forkToListeningMs: distribution(ok.map((s) => s.forkToListeningMs)),
    crashAnswerMs: distribution(ok.map((s) => s.crashAnswerMs)),
    pollErrors,
    polls: ok.reduce((a, s) => a + s.polls, 0),
    othersCpuMax: Math.max(...samples.map((s) => s.othersCpu ?? 0)),
    busySamples: samples.filter((s) => s.othersCpu > QUIET_MAX_OTHERS).length,
    // The same over the samples during which other programs left the CPU alone.
    quietOutsideMs: distribution(ok.filter((s) => s.othersCpu <= QUIET_MAX_OTHERS).map((s) => s.outsideMs)),
    quietPrimaryRestartMs: distribution(ok.filter((s) => s.othersCpu <= QUIET_MAX_OTHERS).map((s) => s.restartMs)),
    supervisorShareMs: round(median(ok.filter((s) => s.restartMs !== null && s.forkToListeningMs !== null).map((s) => s.restartMs - s.forkToListeningMs))),
    target: { maxMs: TARGET_RESTART_MS, medianMet: null, p90Met: null, maxMet: null }
  }
}

// ---------------------------------------------------------------------------
// 2. Throughput under periodic crashes

/** GET /crash every `intervalMs` (the first at half an interval) for `durationMs`, each on its own connection. */
function startCrashes (port, intervalMs, durationMs) {
  const out = { sent: 0, statuses: {}, errors: {}, atMs: [], pending: [] }
  const timers = []
  const startedAt = performance.now()
  for (let t = intervalMs / 2; t < durationMs; t += intervalMs) {
    timers.push(setTimeout(() => {
      out.sent++
      out.atMs.push(Math.round(performance.now() - startedAt))
      out.pending.push(get(port, '/crash', 5000).then((a) => tally(out.statuses, String(a.status)), (err) => tally(out.errors, err.code ?? err.message)))
    }, t))
  }
  return {
    async done () {
      for (const timer of timers) clearTimeout(timer)
      await Promise.all(out.pending)
      delete out.pending
      return out
    }
  }
}

/**
 * A well-behaved client beside autocannon: keep-alive connections (Node's
 * http.Agent, which honours `Connection: close`), one request every
 * `intervalMs`, no retries. What it loses, a real client would.
 */
function startProbe (port, intervalMs) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 })
  const out = { sent: 0, ok: 0, statuses: {}, errors: {} }
  const pending = new Set()
  const timer = setInterval(() => {
    out.sent++
    const p = get(port, '/', 5000, agent).then((a) => {
      if (a.status === 200) out.ok++
      else tally(out.statuses, String(a.status))
    }, (err) => tally(out.errors, err.code ?? err.message)).finally(() => pending.delete(p))
    pending.add(p)
  }, intervalMs)
  return {
    async done () {
      clearInterval(timer)
      await Promise.all(pending)
      agent.destroy()
      return out
    }
  }
}

/** CPU of every process but this one and the cluster's (those known at the end): diff with othersCpuSince(). */
function othersCpuStart (cluster) {
  return { snapshot: othersCpu(new Set([process.pid])), cluster }
}

function othersCpuSince (start) {
  const exclude = new Set([...ourPids(start.cluster)].map(String))
  const after = othersCpu(new Set([process.pid]))
  let ms = 0
  for (const [pid, t] of after) if (!exclude.has(pid)) ms += t - (start.snapshot.get(pid) ?? 0)
  return ms
}

async function load (autocannon, cluster, seconds, connections, onStart) {
  const errorCodes = {}
  let closeResponses = 0
  const instance = autocannon({
    url: `http://${HOST}:${cluster.port}/`,
    connections,
    pipelining: 1,
    duration: seconds,
    // autocannon's parser (http-parser-js) says whether a response keeps its
    // connection: count the `Connection: close` ones.
    setupClient: (client) => client.on('headers', (info) => { if (info.shouldKeepAlive === false) closeResponses++ })
  })
  instance.on('reqError', (err) => tally(errorCodes, err.code ?? err.message))
  // Responses per bucket, for the JSON: the dip after each crash.
  const timeline = []
  let count = 0
  instance.on('response', () => { count++ })
  const ticker = setInterval(() => {
    timeline.push(count)
    count = 0
  }, TIMELINE_BUCKET_MS)
  onStart?.()
  try {
    const result = await instance
    return { result, errorCodes, closeResponses, timeline }
  } finally {
    clearInterval(ticker)
  }
}

async function measureRun (autocannon, cluster, mode, opts) {
  const durationMs = opts.duration * 1000
  const logIndex = cluster.logs.length
  const cpu = othersCpuStart(cluster)
  const clusterCpuBefore = cluster.cpuMs()
  const benchCpuBefore = process.cpuUsage()
  let crashes = null
  let probe = null
  const startedAt = performance.now()
  const { result, errorCodes, closeResponses, timeline } = await load(autocannon, cluster, opts.duration, opts.connections, () => {
    if (mode.interval !== null) crashes = startCrashes(cluster.port, mode.interval, durationMs)
    if (opts.probe > 0) probe = startProbe(cluster.port, opts.probe)
  })
  const wallMs = performance.now() - startedAt
  const clusterCpuAfter = cluster.cpuMs()
  const benchCpu = process.cpuUsage(benchCpuBefore)
  const crash = crashes === null ? null : await crashes.done()
  const probeResult = probe === null ? null : await probe.done()
  const othersMs = othersCpuSince(cpu)
  const closing = cluster.linesSince(logIndex, 'worker closing')
  const run = {
    mode: mode.name,
    interval: mode.interval,
    rps: result.requests.average,
    ok2xx: result['2xx'],
    okRps: result['2xx'] / (wallMs / 1000),
    sent: result.requests.sent,
    answered: result.latency.totalCount,
    // Requests autocannon wrote and never got an answer to, besides the one
    // in flight on each connection when the run ends. autocannon neither
    // retries nor honours `Connection: close`: it writes its next request on
    // a connection the server is ending, and reconnects on the 'end' without
    // counting an error (or counts one, on a reset).
    unanswered: result.requests.sent - result.latency.totalCount - opts.connections,
    closeResponses,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([k, v]) => [k, v.count])),
    errorCodes,
    latencyP50: result.latency.p50,
    latencyP99: result.latency.p99,
    latencyMax: result.latency.max,
    othersCpu: round(othersMs / wallMs, 3),
    // Cores the cluster (primary and workers, started and exited ones
    // included) and this process (autocannon, the crash client, the probe) used.
    clusterCpuMs: clusterCpuBefore === null || clusterCpuAfter === null ? null : clusterCpuAfter - clusterCpuBefore,
    clusterCpu: clusterCpuBefore === null || clusterCpuAfter === null ? null : round((clusterCpuAfter - clusterCpuBefore) / wallMs, 3),
    benchCpu: round((benchCpu.user + benchCpu.system) / 1000 / wallMs, 3),
    crash,
    // A crash that reached a worker already closing (it keeps serving until its
    // connections end) is answered 500 but starts no second restart.
    restartsStarted: closing.filter((l) => l.cause === 'fatal').length,
    restartMs: [],
    probe: probeResult,
    // autocannon's responses per TIMELINE_BUCKET_MS from the start of the run (crash.atMs: when each crash was sent).
    timeline: { bucketMs: TIMELINE_BUCKET_MS, responses: timeline }
  }
  return run
}

/** After a run: the cluster back to `workers` listening and the crashed ones exited; their restartMs. */
async function settle (cluster, logIndex) {
  const t0 = performance.now()
  const settled = await cluster.waitFor(() => cluster.steady(), SETTLE_TIMEOUT_MS)
  return {
    settled,
    settleMs: round(performance.now() - t0),
    restartMs: cluster.linesSince(logIndex, 'worker listening').map((l) => l.restartMs).filter((v) => v !== undefined)
  }
}

async function throughputPhase (autocannon, cluster, opts, deadline) {
  const perRunS = opts.warmup + opts.duration + 1.5 // + settling, the crash requests' tail, waiting for quiet
  const intervals = [...opts.intervals]
  const remainingS = () => (deadline - performance.now()) / 1000
  // Drop the longest interval first if the rounds cannot all fit.
  while (intervals.length > 1 && opts.rounds * (1 + intervals.length) * perRunS > remainingS()) {
    const dropped = intervals.pop()
    console.log(`  not enough time for ${opts.rounds} rounds with every interval (--max-seconds): crash every ${dropped} ms left out`)
  }
  const modes = [{ name: 'crash-free', interval: null }, ...intervals.map((ms) => ({ name: `crash/${ms}ms`, interval: ms }))]
  const runs = []
  const ours = () => ourPids(cluster)
  for (let round = 0; round < opts.rounds; round++) {
    if (remainingS() < modes.length * perRunS) {
      console.log(`  time is up after ${round} rounds (--max-seconds)`)
      break
    }
    const order = round % 2 === 0 ? modes : [...modes].reverse()
    for (const mode of order) {
      const logIndex = cluster.logs.length
      const before = await settle(cluster, logIndex)
      if (!before.settled) throw new Error(`the cluster did not settle within ${SETTLE_TIMEOUT_MS} ms before a run`)
      if (opts.waitQuiet) await waitForQuiet(ours(), { maxWaitMs: 10_000, windowMs: 300, threshold: QUIET_MAX_OTHERS })
      // Crash-free warm-up: the workers that replaced crashed ones start cold.
      if (opts.warmup > 0) await load(autocannon, cluster, opts.warmup, opts.connections)
      const runIndex = cluster.logs.length
      const run = await measureRun(autocannon, cluster, mode, opts)
      const after = await settle(cluster, runIndex)
      run.round = round + 1
      run.restartMs = after.restartMs
      run.settledAfterMs = after.settleMs
      run.settled = after.settled
      runs.push(run)
      const crashPart = run.crash === null
        ? ''
        : `, ${run.crash.sent} crashes (${JSON.stringify(run.crash.statuses)}${Object.keys(run.crash.errors).length > 0 ? ` errors ${JSON.stringify(run.crash.errors)}` : ''}), ${run.restartsStarted} restarts (restartMs ${run.restartMs.join(' ')})`
      const probePart = run.probe === null ? '' : `, probe ${run.probe.ok}/${run.probe.sent}`
      console.log(`  round ${round + 1} ${mode.name.padEnd(12)} ${fmt(run.rps)} rps, errors ${run.errors}${run.errors > 0 ? ` ${JSON.stringify(run.errorCodes)}` : ''}, non-2xx ${run.non2xx}, unanswered ${run.unanswered} (Connection: close ${run.closeResponses})${crashPart}${probePart}, CPU: cluster ${run.clusterCpu}, bench ${run.benchCpu}, others ${run.othersCpu} cores`)
      if (!after.settled) throw new Error(`the cluster did not settle within ${SETTLE_TIMEOUT_MS} ms after a run`)
    }
  }
  return { modes, runs }
}

// ---------------------------------------------------------------------------
// 3. Refused and lost under crashes

/** `n` keep-alive clients, each its own agent and one request at a time, GET / until `done()`: what they lose, by code. */
function startClients (port, n) {
  const out = { sent: 0, ok: 0, statuses: {}, errors: {} }
  const state = { stopped: false }
  const agents = Array.from({ length: n }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }))
  const loops = agents.map(async (agent) => {
    while (!state.stopped) {
      out.sent++
      try {
        const a = await get(port, '/', 5000, agent)
        if (a.status === 200) out.ok++
        else tally(out.statuses, String(a.status))
      } catch (err) {
        tally(out.errors, err.code ?? err.message)
      }
    }
  })
  return {
    async done () {
      state.stopped = true
      await Promise.all(loops)
      for (const agent of agents) agent.destroy()
      return out
    }
  }
}

async function clientsRun (cluster, opts) {
  const logIndex = cluster.logs.length
  const cpu = othersCpuStart(cluster)
  const startedAt = performance.now()
  const clients = startClients(cluster.port, opts.clients)
  const crashes = startCrashes(cluster.port, 500, opts.crashSeconds * 1000)
  await sleep(opts.crashSeconds * 1000)
  const crash = await crashes.done()
  const c = await clients.done()
  const wallMs = performance.now() - startedAt
  const after = await settle(cluster, logIndex)
  const lost = c.sent - c.ok
  return {
    seconds: round(wallMs / 1000),
    crash,
    restartsStarted: cluster.linesSince(logIndex, 'worker closing').filter((l) => l.cause === 'fatal').length,
    restartMs: after.restartMs,
    settled: after.settled,
    sent: c.sent,
    ok: c.ok,
    lost,
    lostShare: c.sent === 0 ? null : lost / c.sent,
    refused: c.errors.ECONNREFUSED ?? 0,
    errors: c.errors,
    statuses: c.statuses,
    othersCpu: round(othersCpuSince(cpu) / wallMs, 3)
  }
}

async function clientsPhase (cluster, opts, deadline) {
  const runs = []
  for (let i = 0; i < opts.clientRuns; i++) {
    if (performance.now() + (opts.crashSeconds + 5) * 1000 > deadline) {
      console.log(`  time is up after ${i} runs (--max-seconds)`)
      break
    }
    const before = await settle(cluster, cluster.logs.length)
    if (!before.settled) throw new Error(`the cluster did not settle within ${SETTLE_TIMEOUT_MS} ms before a run`)
    const run = await clientsRun(cluster, opts)
    runs.push(run)
    const restart = distribution(run.restartMs)
    console.log(`  run ${i + 1}: ${run.crash.sent} crashes (${JSON.stringify(run.crash.statuses)}), ${run.restartsStarted} restarts, restartMs median ${restart?.median ?? '-'} max ${restart?.max ?? '-'}; ${fmt(run.sent)} requests, ${run.lost} lost, ${run.refused} refused${run.lost > 0 ? ` ${JSON.stringify({ ...run.errors, ...run.statuses })}` : ''}`)
    if (!run.settled) throw new Error(`the cluster did not settle within ${SETTLE_TIMEOUT_MS} ms after a run`)
  }
  return runs
}

function summarizeClients (runs, opts) {
  const sum = (f) => runs.reduce((a, r) => a + f(r), 0)
  return {
    clients: opts.clients,
    crashEveryMs: 500,
    crashSeconds: opts.crashSeconds,
    runs: runs.length,
    crashesSent: sum((r) => r.crash.sent),
    crashStatuses: merged(runs.map((r) => r.crash.statuses)),
    crashErrors: merged(runs.map((r) => r.crash.errors)),
    restartsStarted: sum((r) => r.restartsStarted),
    restartMs: distribution(runs.flatMap((r) => r.restartMs)),
    sent: sum((r) => r.sent),
    ok: sum((r) => r.ok),
    lost: sum((r) => r.lost),
    refused: sum((r) => r.refused),
    lostPerRun: runs.map((r) => r.lost),
    refusedPerRun: runs.map((r) => r.refused),
    errors: merged(runs.map((r) => r.errors)),
    statuses: merged(runs.map((r) => r.statuses)),
    othersCpuMax: Math.max(...runs.map((r) => r.othersCpu))
  }
}

/**
 * Rates (rps, ratio, latency, CPU) over the quiet rounds (every run with
 * other programs under QUIET_MAX_OTHERS cores) when there are at least 3 of
 * them, else over all rounds (`basis` says which); counts of what went wrong
 * over every run.
 */
function summarizeThroughput (modes, allRuns) {
  const sum = (list, f) => list.reduce((a, r) => a + (f(r) ?? 0), 0)
  const rounds = [...new Set(allRuns.map((r) => r.round))]
  const quietRounds = rounds.filter((n) => allRuns.filter((r) => r.round === n).every((r) => r.othersCpu <= QUIET_MAX_OTHERS))
  const useQuiet = quietRounds.length >= Math.min(3, rounds.length)
  const runs = useQuiet ? allRuns.filter((r) => quietRounds.includes(r.round)) : allRuns
  const free = runs.filter((r) => r.interval === null)
  const freeRps = median(free.map((r) => r.rps))
  const out = []
  for (const mode of modes) {
    const all = allRuns.filter((r) => r.mode === mode.name)
    const list = runs.filter((r) => r.mode === mode.name)
    if (list.length === 0) continue
    const rps = median(list.map((r) => r.rps))
    // crashing/crash-free within each round (back-to-back runs).
    const roundRatios = mode.interval === null
      ? []
      : list.map((r) => r.rps / (free.find((f) => f.round === r.round)?.rps ?? NaN)).filter((x) => !Number.isNaN(x))
    out.push({
      mode: mode.name,
      interval: mode.interval,
      runs: list.length,
      medianRps: rps,
      ratio: mode.interval === null ? 1 : rps / freeRps,
      roundRatioMedian: roundRatios.length === 0 ? null : median(roundRatios),
      roundRatios,
      rpsMin: Math.min(...list.map((r) => r.rps)),
      rpsMax: Math.max(...list.map((r) => r.rps)),
      latencyP99Median: median(list.map((r) => r.latencyP99)),
      allRounds: { runs: all.length, medianRps: median(all.map((r) => r.rps)) },
      requests: sum(all, (r) => r.answered),
      errors: sum(all, (r) => r.errors),
      unanswered: sum(all, (r) => r.unanswered),
      closeResponses: sum(all, (r) => r.closeResponses),
      timeouts: sum(all, (r) => r.timeouts),
      non2xx: sum(all, (r) => r.non2xx),
      errorCodes: merged(all.map((r) => r.errorCodes)),
      errorsPerRunMedian: median(all.map((r) => r.errors)),
      crashesSent: sum(all, (r) => r.crash?.sent),
      crashStatuses: merged(all.map((r) => r.crash?.statuses)),
      crashErrors: merged(all.map((r) => r.crash?.errors)),
      restartsStarted: sum(all, (r) => r.restartsStarted),
      restartMsUnderLoad: distribution(list.flatMap((r) => r.restartMs)),
      probeSent: sum(all, (r) => r.probe?.sent),
      probeOk: sum(all, (r) => r.probe?.ok),
      probeErrors: merged(all.flatMap((r) => [r.probe?.errors, r.probe?.statuses])),
      othersCpuMax: Math.max(...all.map((r) => r.othersCpu)),
      clusterCpuMedian: median(list.map((r) => r.clusterCpu).filter((v) => v !== null)),
      benchCpuMedian: median(list.map((r) => r.benchCpu)),
      // Requests served per second of the cluster's CPU time.
      requestsPerCpuSecond: median(list.filter((r) => r.clusterCpuMs).map((r) => r.ok2xx / (r.clusterCpuMs / 1000)))
    })
  }
  return {
    basis: useQuiet ? 'quiet rounds' : 'all rounds (too few quiet ones: other programs used the CPU)',
    quietRounds: quietRounds.length,
    rounds: rounds.length,
    modes: out
  }
}

/** Sums maps of counts. */
function merged (maps) {
  const m = {}
  for (const map of maps) for (const [k, n] of Object.entries(map ?? {})) m[k] = (m[k] ?? 0) + n
  return m
}

// ---------------------------------------------------------------------------
// Output

const round = (v, digits = 1) => Math.round(v * 10 ** digits) / 10 ** digits
const fmt = (n) => Math.round(n).toLocaleString('en-US')
const pct = (n) => `${(n * 100).toFixed(1)}%`
const ms = (d, key) => (d === null ? '-' : String(d[key]))

function table (rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)))
  const line = (r) => r.map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join('  ')
  console.log('\n' + line(rows[0]))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows.slice(1)) console.log(line(r))
}

function printRestart (s) {
  table([
    ['restart time (ms)', 'n', 'median', 'p90', 'max', 'min'],
    ['500 -> new worker answers (outside)', s.outsideMs?.count ?? 0, ms(s.outsideMs, 'median'), ms(s.outsideMs, 'p90'), ms(s.outsideMs, 'max'), ms(s.outsideMs, 'min')],
    ['primary restartMs (closing -> listening)', s.primaryRestartMs?.count ?? 0, ms(s.primaryRestartMs, 'median'), ms(s.primaryRestartMs, 'p90'), ms(s.primaryRestartMs, 'max'), ms(s.primaryRestartMs, 'min')],
    ['  of which fork -> listening', s.forkToListeningMs?.count ?? 0, ms(s.forkToListeningMs, 'median'), ms(s.forkToListeningMs, 'p90'), ms(s.forkToListeningMs, 'max'), ms(s.forkToListeningMs, 'min')],
    ...(s.busySamples === 0
      ? []
      : [
          ['outside, quiet samples only', s.quietOutsideMs?.count ?? 0, ms(s.quietOutsideMs, 'median'), ms(s.quietOutsideMs, 'p90'), ms(s.quietOutsideMs, 'max'), ms(s.quietOutsideMs, 'min')],
          ['restartMs, quiet samples only', s.quietPrimaryRestartMs?.count ?? 0, ms(s.quietPrimaryRestartMs, 'median'), ms(s.quietPrimaryRestartMs, 'p90'), ms(s.quietPrimaryRestartMs, 'max'), ms(s.quietPrimaryRestartMs, 'min')]
        ])
  ])
  const errors = Object.keys(s.pollErrors).length === 0 ? 'none' : JSON.stringify(s.pollErrors)
  console.log(`\n${s.ok}/${s.samples} samples; ${s.polls} polls (new connections) during the restarts, errors: ${errors}`)
  console.log('outside: from the 500 of GET /crash to the first answer from a new pid (a new connection every ~2 ms).')
  console.log('restartMs: the primary\'s, from the worker\'s closing message to its replacement listening; fork -> listening is')
  console.log(`the replacement's own start (Node, Fastify, the plugin, listen), the rest (median ${s.supervisorShareMs} ms) the supervisor's.`)
  if (s.busySamples > 0) console.log(`${s.busySamples} samples had other programs on the CPU (> ${QUIET_MAX_OTHERS} core, see othersCpu in the JSON): quiet samples only, the others left out`)
  if (s.outsideMs !== null) {
    const verdict = (d) => ['median', 'p90', 'max'].map((k) => `${k} ${d[k] <= TARGET_RESTART_MS ? 'met' : 'MISSED'}`).join(', ')
    console.log(`target <= ${TARGET_RESTART_MS} ms from outside: ${verdict(s.outsideMs)}${s.busySamples > 0 && s.quietOutsideMs !== null ? `; quiet samples only: ${verdict(s.quietOutsideMs)}` : ''}`)
  }
}

function printThroughput (throughput, connections, duration) {
  const summaries = throughput.modes
  const rows = [['mode', 'runs', 'median rps', 'vs crash-free', 'per round', 'rps min..max', 'p99 ms', 'cluster CPU', 'req/CPU-s', 'restarts', 'restartMs med/max', 'ac errors', 'non-2xx', 'unanswered', 'conn: close', 'probe lost']]
  for (const s of summaries) {
    rows.push([
      s.mode,
      s.runs,
      fmt(s.medianRps),
      s.interval === null ? '-' : pct(s.ratio),
      s.roundRatioMedian === null ? '-' : pct(s.roundRatioMedian),
      `${fmt(s.rpsMin)}..${fmt(s.rpsMax)}`,
      String(s.latencyP99Median),
      Number.isNaN(s.clusterCpuMedian) ? '-' : s.clusterCpuMedian.toFixed(2),
      Number.isNaN(s.requestsPerCpuSecond) ? '-' : fmt(s.requestsPerCpuSecond),
      s.interval === null ? '-' : `${s.restartsStarted}/${s.crashesSent}`,
      s.restartMsUnderLoad === null ? '-' : `${s.restartMsUnderLoad.median}/${s.restartMsUnderLoad.max}`,
      String(s.errors),
      String(s.non2xx),
      String(s.unanswered),
      String(s.closeResponses),
      s.probeSent === 0 ? '-' : `${s.probeSent - s.probeOk}/${s.probeSent}`
    ])
  }
  table(rows)
  console.log(`
rates over ${throughput.basis} (${throughput.quietRounds} of ${throughput.rounds} rounds quiet: other programs under
${QUIET_MAX_OTHERS} core in each run); counts (restarts, errors, unanswered, conn: close, probe) are totals over every run.
autocannon -c ${connections} -p 1, ${duration} s per run, GET /; the crash requests come from another client and
are not counted. vs crash-free: median rps / crash-free median rps; per round: the median of that ratio
within each round. cluster CPU: cores the primary and its workers used (started and exited workers
included); req/CPU-s: responses per second of that CPU time. restarts: crashes that started a restart /
crashes sent (a crash that reaches a worker already closing is answered 500 and starts none).
restartMs: the primary's, under load. ac errors: autocannon's connection errors and timeouts.
unanswered: requests autocannon wrote and got no answer to (the last one of each connection at the end
of a run left out), errors included: autocannon neither retries nor honours Connection: close, it
writes its next request on a connection the closing worker is ending. conn: close: responses
autocannon got with Connection: close (the closing worker's). probe lost: requests of the keep-alive
probe (Node's http.Agent, which honours Connection: close) that failed / sent.`)
  for (const s of summaries) {
    if (Object.keys(s.errorCodes).length > 0) console.log(`${s.mode}: autocannon errors by code ${JSON.stringify(s.errorCodes)}`)
    if (Object.keys(s.probeErrors).length > 0) console.log(`${s.mode}: probe failures ${JSON.stringify(s.probeErrors)}`)
    if (Object.keys(s.crashErrors ?? {}).length > 0) console.log(`${s.mode}: crash requests that failed ${JSON.stringify(s.crashErrors)}`)
  }
}

function printClients (c, hogCount) {
  const r = c.restartMs
  console.log(`\nrefused and lost (${c.runs} runs of ${c.crashSeconds} s, ${c.clients} keep-alive clients without retry, ${hogCount} busy loops beside):`)
  console.log(`  ${c.crashesSent} crashes, ${c.restartsStarted} restarts (restartMs median ${r?.median ?? '-'}, max ${r?.max ?? '-'}); ${fmt(c.sent)} requests, ${c.lost} lost (${c.sent === 0 ? '-' : pct(c.lost / c.sent)}), ${c.refused} refused; per run lost ${c.lostPerRun.join(', ')}`)
  if (c.lost > 0) console.log(`  failures: ${JSON.stringify({ ...c.errors, ...c.statuses })}`)
}

// ---------------------------------------------------------------------------

async function main () {
  const opts = readOptions()
  if (opts.dist !== null) {
    DIST = opts.dist
    if (!fs.existsSync(path.join(DIST, 'index.js')) || !fs.existsSync(path.join(DIST, 'cluster.js'))) fail(`--dist ${DIST}: no index.js and cluster.js there`)
  } else {
    require('./load-plugin.js').loadPlugin() // fails early, with a clear message, when dist/ is not built
    if (!fs.existsSync(path.join(DIST, 'cluster.js'))) {
      console.error('fastify-hangup bench: dist/cjs/cluster.js is missing. Build the plugin first: npm run build')
      process.exit(1)
    }
  }
  const autocannon = require('autocannon')
  const fastifyVersion = require('fastify/package.json').version
  const autocannonVersion = require('autocannon/package.json').version
  const deadline = performance.now() + opts.maxSeconds * 1000
  console.log(`fastify-hangup cluster: Node ${process.version}, fastify ${fastifyVersion}, autocannon ${autocannonVersion}; ${opts.workers} workers on ${HOST}`)
  console.log(`${os.cpus()[0]?.model} x${os.cpus().length}; restart: ${opts.samples} samples (at most ${opts.restartSeconds} s); throughput: ${opts.rounds} rounds of ${opts.duration} s runs (+${opts.warmup} s warm-up), crash-free vs a crash every ${opts.intervals.join(', ')} ms, -c ${opts.connections}; at most ${opts.maxSeconds} s`)
  const idleBeforeStart = await warnIfBusy()
  const machine = machineInfo()
  if (opts.hogs > 0) console.log(`${opts.hogs} busy loops beside the cluster for the whole run`)
  startHogs(opts.hogs)
  const startedAt = Date.now()

  let dist = DIST
  let build = distFingerprint()
  if (opts.snapshot) {
    const snap = await snapshotDist()
    dist = snap.dist
    build = snap.build
  }
  build = { dir: DIST, ...build }
  const cluster = new ClusterProcess(opts.workers, dist, opts.grace)
  const report = {
    benchmark: 'cluster',
    date: new Date().toISOString(),
    command: `node bench/cluster.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { ...machine, idleBeforeStart },
    versions: { node: process.version, fastify: fastifyVersion, autocannon: autocannonVersion, plugin: require('../package.json').version },
    build,
    options: { ...opts, out: undefined },
    target: { restartMs: TARGET_RESTART_MS },
    restart: null,
    restartSamples: [],
    throughput: null,
    throughputRuns: [],
    hogs: opts.hogs,
    clients: null,
    clientRuns: [],
    cluster: null
  }
  try {
    const t0 = performance.now()
    if (!(await cluster.start())) throw new Error(`the cluster did not start within ${START_TIMEOUT_MS} ms (${cluster.exit ? `primary exited: code ${cluster.exit.code}` : 'no exit'})`)
    console.log(`cluster up in ${Math.round(performance.now() - t0)} ms on port ${cluster.port} (primary ${cluster.child.pid})`)
    const sanity = await get(cluster.port, '/', 2000)
    if (sanity.status !== 200 || sanity.body !== '{"hello":"world"}') throw new Error(`GET / answered ${sanity.status} ${sanity.body}`)
    // Warm-up of the first workers (JIT), crash-free.
    await load(autocannon, cluster, 2, opts.connections)

    if (opts.phases.includes('restart')) {
      console.log(`\nrestart time: ${opts.samples} crashes, one at a time`)
      const phaseDeadline = Math.min(deadline, performance.now() + opts.restartSeconds * 1000)
      const phaseStart = performance.now()
      report.restartSamples = await restartPhase(cluster, opts, phaseDeadline)
      report.restart = summarizeRestarts(report.restartSamples)
      report.restart.seconds = Math.round((performance.now() - phaseStart) / 1000)
      const o = report.restart.outsideMs
      if (o !== null) {
        report.restart.target = { maxMs: TARGET_RESTART_MS, medianMet: o.median <= TARGET_RESTART_MS, p90Met: o.p90 <= TARGET_RESTART_MS, maxMet: o.max <= TARGET_RESTART_MS }
      }
    }
    if (opts.phases.includes('throughput')) {
      console.log('\nthroughput: crash-free vs periodic crashes')
      const phaseStart = performance.now()
      const { modes, runs } = await throughputPhase(autocannon, cluster, opts, deadline)
      report.throughputRuns = runs
      report.throughput = summarizeThroughput(modes, runs)
      report.throughputSeconds = Math.round((performance.now() - phaseStart) / 1000)
    }
    if (opts.phases.includes('clients')) {
      console.log(`\nrefused and lost: ${opts.clients} keep-alive clients without retry, a crash every 500 ms for ${opts.crashSeconds} s`)
      const phaseStart = performance.now()
      report.clientRuns = await clientsPhase(cluster, opts, deadline)
      report.clients = summarizeClients(report.clientRuns, opts)
      report.clientsSeconds = Math.round((performance.now() - phaseStart) / 1000)
    }
  } finally {
    stopHogs()
    const stop = await cluster.stop()
    const lines = (msg) => cluster.logs.filter((l) => l.msg === msg)
    // From a worker's closing line to its exit line (the primary's Date.now() stamps): its drain.
    const closingTime = new Map(lines('worker closing').map((l) => [l.worker, l.time]))
    const drains = lines('worker exited').filter((l) => l.cause === 'fatal' && closingTime.has(l.worker)).map((l) => l.time - closingTime.get(l.worker))
    report.cluster = {
      ports: [...cluster.ports],
      fatalDrainMs: distribution(drains),
      forks: lines('worker forked').length,
      exitsByCause: lines('worker exited').reduce((m, l) => { tally(m, l.cause); return m }, {}),
      exitCodes: lines('worker exited').reduce((m, l) => { tally(m, String(l.code ?? l.signal)); return m }, {}),
      warnings: cluster.logs.filter((l) => l.level >= 40 && l.msg !== 'worker exited').map(({ at, hostname, ...l }) => l),
      otherOutput: cluster.others.slice(0, 20),
      stop
    }
    if (stop.leftBehind.length > 0) console.log(`cluster processes still alive after the stop (killed now): ${stop.leftBehind.join(', ')}`)
    if (!stop.graceful) console.log(`the primary did not stop cleanly: code ${stop.code}, signal ${stop.signal}`)
    if (cluster.ports.size > 1) console.log(`the workers listened on more than one port: ${[...cluster.ports].join(', ')}`)
    const buildAfter = distFingerprint()
    if (buildAfter?.sha256 !== report.build?.sha256) {
      report.buildChanged = buildAfter
      console.log(opts.snapshot
        ? `${DIST} changed during the run: the cluster ran the copy taken at the start (build in the JSON)`
        : `${DIST} changed during the run (npm run build?): the workers started later ran another build`)
    }
    removeSnapshots()
    const failed = report.cluster.exitsByCause['start-failed'] ?? 0
    if (failed > 0) console.log(`${failed} workers failed to start (their error is on stderr above; was dist/ rebuilt during the run?): the figures are not valid`)
    const unexpected = Object.keys(report.cluster.exitsByCause).filter((cause) => cause !== 'fatal' && cause !== 'signal' && cause !== 'start-failed')
    if (unexpected.length > 0) console.log(`unexpected worker exits: ${unexpected.map((c) => `${c} ${report.cluster.exitsByCause[c]}`).join(', ')}`)
  }

  if (report.restart !== null) printRestart(report.restart)
  if (report.throughput !== null) printThroughput(report.throughput, opts.connections, opts.duration)
  if (report.clients !== null) printClients(report.clients, opts.hogs)
  report.seconds = Math.round((Date.now() - startedAt) / 1000)
  fs.mkdirSync(path.dirname(opts.out), { recursive: true })
  fs.writeFileSync(opts.out, JSON.stringify(report, null, 2) + '\n')
  console.log(`\n${report.cluster.forks} forks, exits ${JSON.stringify(report.cluster.exitsByCause)}; ${report.seconds} s`)
  console.log(`written ${path.relative(process.cwd(), opts.out)}`)
}

main().catch((err) => {
  console.error(err)
  killAll()
  process.exitCode = 1
})
