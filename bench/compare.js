'use strict'

// One proxy workload through several ways of cancelling the upstream call
// when the client hangs up, side by side (node bench/compare.js). See
// bench/README.md.
//
//   clients --HTTP/1.1--> proxy (one child process per variant) --undici--> upstream
//   \_______________ this process: one clock _______________/             (this process)
//
// The upstream works 1 s per request (a timer, cleared when its response
// closes) and records when each request arrived, whether it completed and
// when its request and its response closed. Of the clients, a share hangs up
// 100 ms after sending (destroys its socket), the others wait for the answer.
// Per variant and method: the upstream's busy time after the hang-ups against
// a no-cancellation baseline, hang-up -> upstream close, requests that failed
// although their client stayed, and the log lines each proxy wrote by level.

const http = require('node:http')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { fork } = require('node:child_process')
const { once } = require('node:events')
const { setTimeout: sleep } = require('node:timers/promises')
const { cli, list } = require('./cli.js')
const { loadPlugin } = require('./load-plugin.js')
const { machineInfo, warnIfBusy, othersCpu, othersCpuDelta, waitForQuiet, versions: benchVersions } = require('./machine.js')
const { quantile } = require('./stats.js')
const { VARIANTS } = require('./compare-server.js')

const DEFAULT_VARIANTS = ['core-signal', 'reply-from', 'http-proxy', 'hangup-signal', 'hangup-autobind']
const TARGETED = ['hangup-signal', 'hangup-autobind']

const HELP = `usage: node bench/compare.js [options]

  --requests <n>       requests per variant and method, over all rounds   (default 200)
  --rounds <n>         rounds; each runs every variant and method once,
                       the order reversed every other round               (default 2)
  --concurrency <n>    clients in flight at once                          (default 50)
  --hangup-share <p>   share of the clients that hang up, 0..1            (default 0.5)
  --hangup-after <ms>  a hanging-up client destroys its socket this long
                       after sending its request                          (default 100)
  --work <ms>          upstream work per request (a timer)                (default 1000)
  --methods <list>     GET,POST                                           (default both)
  --variants <list>    ${DEFAULT_VARIANTS.join(',')}
                       (default), and none (no signal at all)
  --closed-loop        start a client as soon as another one ends (at first
                       --concurrency at once: hang-ups come in bursts) instead of
                       at a steady pace: one every (mean client time /
                       --concurrency) ms, at most --concurrency in flight
  --warmup <n>         unmeasured requests per variant first (half GET)   (default 20)
  --max-seconds <s>    no new batch after this long                       (default 170)
  --no-wait            do not wait for other programs to leave the CPU before each batch
  --out <file>         JSON output (default bench/results/compare-<node-version>.json)
  --help

Variants:
${Object.entries(VARIANTS).map(([k, v]) => `  ${k.padEnd(16)} ${v}`).join('\n')}
`

const { fail, int, parse } = cli('compare', HELP)

function readOptions () {
  const values = parse({
    requests: { type: 'string' },
    rounds: { type: 'string' },
    concurrency: { type: 'string' },
    'hangup-share': { type: 'string' },
    'hangup-after': { type: 'string' },
    work: { type: 'string' },
    methods: { type: 'string' },
    variants: { type: 'string' },
    warmup: { type: 'string' },
    'max-seconds': { type: 'string' },
    'no-wait': { type: 'boolean' },
    'closed-loop': { type: 'boolean' },
    out: { type: 'string' },
  })
  const variants = list(values.variants ?? DEFAULT_VARIANTS.join(','))
  for (const v of variants) if (!Object.hasOwn(VARIANTS, v)) fail(`unknown variant ${v}`)
  if (variants.length === 0) fail('--variants is empty')
  const methods = list(values.methods ?? 'GET,POST').map((m) => m.toUpperCase())
  for (const m of methods) if (!['GET', 'POST'].includes(m)) fail(`unknown method ${m}`)
  if (methods.length === 0) fail('--methods is empty')
  const share = Number(values['hangup-share'] ?? 0.5)
  if (!(share >= 0 && share <= 1)) fail(`--hangup-share must be a number in 0..1, got ${values['hangup-share']}`)
  const opts = {
    requests: int('--requests', values.requests, 200, 1),
    rounds: int('--rounds', values.rounds, 2, 1),
    concurrency: int('--concurrency', values.concurrency, 50, 1),
    hangupShare: share,
    hangupAfter: int('--hangup-after', values['hangup-after'], 100, 1),
    work: int('--work', values.work, 1000, 1),
    methods,
    variants: [...new Set(variants)],
    warmup: int('--warmup', values.warmup, 20, 0),
    maxSeconds: int('--max-seconds', values['max-seconds'], 170, 1),
    wait: !values['no-wait'],
    closedLoop: values['closed-loop'] === true,
    out: values.out ?? path.join(__dirname, 'results', `compare-${process.version}.json`)
  }
  if (opts.hangupAfter >= opts.work) fail('--hangup-after must be shorter than --work')
  if (opts.requests < opts.rounds) fail('--requests must be at least --rounds')
  // The pace that keeps about --concurrency clients in flight.
  opts.intervalMs = (opts.hangupShare * opts.hangupAfter + (1 - opts.hangupShare) * opts.work) / opts.concurrency
  return opts
}

// ---------------------------------------------------------------- upstream

/**
 * The upstream: http.createServer on 127.0.0.1:0. Each request "works" `work`
 * ms (a timer) and then answers JSON; the timer is cleared when the response
 * closes first (the proxy cancelled the call: undici destroys the
 * connection). Records per id (the query's `id`): arrival, completion,
 * request and response 'close', all with performance.now(), the clients' clock.
 */
async function startUpstream (work) {
  const records = new Map()
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://upstream')
    const id = url.searchParams.get('id')
    const rec = {
      id,
      method: req.method,
      startedAt: performance.now(),
      completed: false,
      completedAt: null,
      reqClosedAt: null,
      resClosedAt: null,
      resClosedHr: null,
      bodyBytes: 0,
      bodyId: null,
      duplicate: records.has(id)
    }
    records.set(id, rec)
    const chunks = []
    req.on('data', (c) => { chunks.push(c); rec.bodyBytes += c.length })
    req.on('end', () => {
      if (rec.bodyBytes === 0) return
      try {
        rec.bodyId = JSON.parse(Buffer.concat(chunks).toString()).id ?? null
      } catch {
        rec.bodyId = 'unparsable'
      }
    })
    req.on('error', () => {})
    req.on('close', () => { rec.reqClosedAt = performance.now() })
    const timer = setTimeout(() => {
      rec.completed = true
      rec.completedAt = performance.now()
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ id, method: req.method, bodyId: rec.bodyId, bodyBytes: rec.bodyBytes }))
    }, work)
    res.on('close', () => {
      rec.resClosedAt = performance.now()
      rec.resClosedHr = process.hrtime.bigint()
      clearTimeout(timer)
    })
  })
  server.keepAliveTimeout = 30_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    records,
    /** ids the upstream received and has not closed yet. */
    open (ids) {
      return ids.filter((id) => {
        const r = records.get(id)
        return r !== undefined && r.resClosedAt === null
      })
    },
    close () {
      server.closeAllConnections()
      return new Promise((resolve) => server.close(resolve))
    }
  }
}

// ---------------------------------------------------------------- proxies

async function startProxy (variant, upstreamUrl) {
  const child = fork(path.join(__dirname, 'compare-server.js'), [variant, upstreamUrl], {
    execArgv: [...process.execArgv],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const waiters = []
  child.on('message', (msg) => {
    const i = waiters.findIndex((w) => w.type === msg?.type)
    if (i >= 0) waiters.splice(i, 1)[0].resolve(msg)
  })
  child.on('exit', (code, signal) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`${variant} proxy exited (code ${code}, signal ${signal})`))
  })
  const proxy = {
    variant,
    child,
    /** The next message of `type`; rejects after `ms` or if the child exits. */
    next (type, ms = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return Promise.reject(new Error(`${variant} proxy is not running`))
      return new Promise((resolve, reject) => {
        const w = { type, resolve: (m) => { clearTimeout(timer); resolve(m) }, reject: (e) => { clearTimeout(timer); reject(e) } }
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1)
          reject(new Error(`${variant} proxy: no '${type}' message within ${ms} ms`))
        }, ms)
        waiters.push(w)
      })
    },
    async logs () {
      const reply = proxy.next('logs')
      child.send('logs')
      return reply
    },
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      if (child.connected) child.send('stop')
      // SIGKILL, not SIGTERM: with the plugin's `fatal` on, SIGTERM starts a graceful close.
      const timer = setTimeout(() => child.kill('SIGKILL'), 8000)
      await exited
      clearTimeout(timer)
    }
  }
  const ready = await proxy.next('ready', 20_000).catch(async (err) => {
    child.kill('SIGKILL')
    throw err
  })
  proxy.port = ready.port
  proxy.pid = ready.pid
  return proxy
}

// ---------------------------------------------------------------- clients

let nextId = 0

/**
 * One client: a new connection (agent: false), GET or POST /work?id=N. A
 * client that hangs up destroys its request (and socket) `hangupAfter` ms
 * after sending it, unless the answer came first; the others wait up to
 * work + 10 s for the whole answer.
 */
function client (port, variant, method, hang, opts) {
  const id = String(++nextId)
  const body = method === 'POST' ? JSON.stringify({ id, note: 'a small JSON body', items: [1, 2, 3] }) : null
  const headers = body === null ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }
  const r = {
    id,
    variant,
    method,
    hang,
    sentAt: performance.now(),
    hungUpAt: null,
    hungUpHr: null,
    proxyClosedHr: null,
    status: null,
    endAt: null,
    error: null,
    body: null
  }
  return new Promise((resolve) => {
    let done = false
    const finish = () => {
      if (done) return
      done = true
      clearTimeout(hangTimer)
      clearTimeout(timeout)
      resolve(r)
    }
    const req = http.request({ host: '127.0.0.1', port, method, path: `/work?id=${id}&v=${variant}`, agent: false, headers })
    req.on('response', (res) => {
      r.status = res.statusCode
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () => {
        r.endAt = performance.now()
        r.body = Buffer.concat(chunks).toString()
      })
      res.on('error', () => {})
      res.on('close', () => {
        if (!done && r.endAt === null && r.error === null) r.error = 'response cut short'
        finish()
      })
    })
    req.on('error', (err) => {
      if (!done && r.error === null) r.error = err.code ?? err.message
      finish()
    })
    req.end(body ?? undefined)
    const hangTimer = hang
      ? setTimeout(() => {
        if (done || r.endAt !== null) return
        r.hungUpAt = performance.now()
        r.hungUpHr = process.hrtime.bigint()
        req.destroy()
        finish()
      }, opts.hangupAfter)
      : null
    const timeout = setTimeout(() => {
      if (r.error === null) r.error = 'client timeout'
      req.destroy()
      finish()
    }, opts.work + 10_000)
  })
}

/**
 * Starts `fn(items[i])` at a steady pace, one every `intervalMs`, never more
 * than `cap` at once (a start due while `cap` are in flight waits for a slot).
 */
async function paced (items, cap, intervalMs, fn) {
  const out = new Array(items.length)
  const slots = []
  const tasks = []
  let inFlight = 0
  const start = performance.now()
  for (let i = 0; i < items.length; i++) {
    const delay = start + i * intervalMs - performance.now()
    if (delay >= 1) await sleep(delay)
    for (;;) {
      if (inFlight < cap) break
      await new Promise((resolve) => slots.push(resolve))
    }
    inFlight++
    tasks.push(fn(items[i]).then((r) => {
      out[i] = r
      inFlight--
      slots.shift()?.()
    }))
  }
  await Promise.all(tasks)
  return out
}

/** Runs `fn` over `items`, at most `n` at once. */
async function pool (items, n, fn) {
  const out = new Array(items.length)
  let next = 0
  async function worker () {
    while (next < items.length) {
      const k = next++
      out[k] = await fn(items[k])
    }
  }
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker))
  return out
}

/** Spread evenly: client i hangs up when floor((i + 1) * share) steps up. */
function hangs (i, share) {
  return Math.floor((i + 1) * share + 1e-9) > Math.floor(i * share + 1e-9)
}

function diffCounts (before, after) {
  const out = {}
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0)
    if (d !== 0) out[k] = d
  }
  return out
}

/**
 * One batch: `count` clients of one method against one proxy, `concurrency`
 * at once; then waits (bounded) until the upstream has closed every request
 * it received, and reads the log lines the proxy wrote meanwhile.
 */
async function runBatch (proxy, upstream, method, count, ours, opts, label) {
  const before = await proxy.logs()
  const cpuBefore = othersCpu(ours)
  const t0 = performance.now()
  const specs = Array.from({ length: count }, (_, i) => hangs(i, opts.hangupShare))
  const one = (hang) => client(proxy.port, proxy.variant, method, hang, opts)
  const results = opts.closedLoop
    ? await pool(specs, opts.concurrency, one)
    : await paced(specs, opts.concurrency, opts.intervalMs, one)
  const clientsDoneAt = performance.now()
  const ids = results.map((r) => r.id)
  // The upstream may still work on abandoned requests (no cancellation), or
  // receive one late: wait until nothing is open, twice 300 ms apart.
  const deadline = clientsDoneAt + opts.work + 5000
  let settled = false
  while (performance.now() < deadline) {
    if (upstream.open(ids).length === 0) {
      await sleep(300)
      if (upstream.open(ids).length === 0) {
        settled = true
        break
      }
    } else {
      await sleep(20)
    }
  }
  const after = await proxy.logs()
  const elapsedMs = performance.now() - t0
  const proxyClosed = new Map(after.closes)
  for (const r of results) if (proxyClosed.has(r.id)) r.proxyClosedHr = BigInt(proxyClosed.get(r.id))
  const othersMs = othersCpuDelta(cpuBefore, othersCpu(ours))
  return {
    label,
    variant: proxy.variant,
    method,
    count,
    results,
    settled,
    stillOpen: upstream.open(ids).length,
    clientsMs: Math.round(clientsDoneAt - t0),
    elapsedMs: Math.round(elapsedMs),
    othersCores: Math.round((othersMs / elapsedMs) * 1000) / 1000,
    logsByLevel: diffCounts(before.logs.byLevel, after.logs.byLevel),
    logsByMessage: diffCounts(before.logs.byMessage, after.logs.byMessage),
    proxyCpuMs: Math.round(((after.cpu.user + after.cpu.system) - (before.cpu.user + before.cpu.system)) / 1000)
  }
}

// ---------------------------------------------------------------- summary

const r3 = (v) => (v === null || v === undefined || Number.isNaN(v) ? null : Math.round(v * 1000) / 1000)

function distribution (values) {
  if (values.length === 0) return null
  return {
    count: values.length,
    p50: r3(quantile(values, 0.5)),
    p90: r3(quantile(values, 0.9)),
    p99: r3(quantile(values, 0.99)),
    max: r3(Math.max(...values)),
    min: r3(Math.min(...values))
  }
}

/** What happened to one request, the client's and the upstream's records joined. */
function outcome (r, upstream, opts) {
  const u = upstream.records.get(r.id) ?? null
  const o = {
    id: r.id,
    hang: r.hang,
    hungUp: r.hungUpAt !== null,
    status: r.status,
    error: r.error,
    clientMs: r.endAt === null ? null : r3(r.endAt - r.sentAt),
    upstreamReceived: u !== null,
    upstreamCompleted: u?.completed ?? false,
    upstreamStartMs: u === null ? null : r3(u.startedAt - r.sentAt),
    upstreamCloseMs: u?.resClosedAt == null ? null : r3(u.resClosedAt - r.sentAt),
    hungUpMs: r.hungUpAt === null ? null : r3(r.hungUpAt - r.sentAt)
  }
  if (o.hungUp) {
    if (u === null) {
      o.busyAfterHangupMs = 0
    } else {
      const from = Math.max(r.hungUpAt, u.startedAt)
      const end = u.resClosedAt ?? performance.now()
      o.busyAfterHangupMs = r3(Math.max(0, end - from))
      // what an upstream that is never told would still have worked
      o.remainingAtHangupMs = r3(Math.max(0, u.startedAt + opts.work - from))
      if (u.resClosedAt !== null && u.resClosedAt > r.hungUpAt) o.hangupToCloseMs = r3(u.resClosedAt - r.hungUpAt)
      // the same split at the proxy's response 'close' (a clock all processes share)
      if (r.proxyClosedHr !== null && u.resClosedHr !== null && u.resClosedHr > r.hungUpHr) {
        o.hangupToProxyCloseMs = r3(Number(r.proxyClosedHr - r.hungUpHr) / 1e6)
        o.proxyCloseToUpstreamCloseMs = r3(Number(u.resClosedHr - r.proxyClosedHr) / 1e6)
      }
    }
  } else if (!r.hang) {
    let failure = null
    if (r.error !== null) failure = r.error
    else if (r.status !== 200) failure = `status ${r.status}`
    else {
      try {
        const b = JSON.parse(r.body)
        if (b.id !== r.id || (r.method === 'POST' && b.bodyId !== r.id)) failure = 'wrong body'
      } catch {
        failure = 'unparsable body'
      }
    }
    o.failure = failure
  }
  return o
}

function summarize (variant, method, batches, upstream, opts) {
  const mine = batches.filter((b) => b.variant === variant && b.method === method)
  const outcomes = mine.flatMap((b) => b.results.map((r) => outcome(r, upstream, opts)))
  const hungUp = outcomes.filter((o) => o.hungUp)
  const answeredFirst = outcomes.filter((o) => o.hang && !o.hungUp)
  const stayed = outcomes.filter((o) => !o.hang)
  const busyMs = hungUp.reduce((a, o) => a + o.busyAfterHangupMs, 0)
  const baselineMs = hungUp.length * (opts.work - opts.hangupAfter)
  const remainingMs = hungUp.reduce((a, o) => a + (o.remainingAtHangupMs ?? 0), 0)
  const failures = {}
  for (const o of stayed) if (o.failure !== null) failures[o.failure] = (failures[o.failure] ?? 0) + 1
  const answeredStatuses = {}
  for (const o of answeredFirst) {
    const k = o.status === null ? (o.error ?? 'no answer') : `status ${o.status}`
    answeredStatuses[k] = (answeredStatuses[k] ?? 0) + 1
  }
  const logsByLevel = {}
  const logsByMessage = {}
  for (const b of mine) {
    for (const [k, v] of Object.entries(b.logsByLevel)) logsByLevel[k] = (logsByLevel[k] ?? 0) + v
    for (const [k, v] of Object.entries(b.logsByMessage)) logsByMessage[k] = (logsByMessage[k] ?? 0) + v
  }
  const levelAtLeast = (min) => Object.entries(logsByLevel).reduce((a, [k, v]) => a + (Number(k) >= min ? v : 0), 0)
  const latencies = hungUp.filter((o) => o.hangupToCloseMs !== undefined).map((o) => o.hangupToCloseMs)
  return {
    variant,
    method,
    requests: outcomes.length,
    hungUp: hungUp.length,
    answeredBeforeHangup: answeredFirst.length,
    answeredBeforeHangupBy: answeredStatuses,
    stayed: stayed.length,
    abandoned: {
      upstreamNeverReceived: hungUp.filter((o) => !o.upstreamReceived).length,
      upstreamClosedBeforeHangup: hungUp.filter((o) => o.upstreamReceived && o.hangupToCloseMs === undefined).length,
      upstreamRanToCompletion: hungUp.filter((o) => o.upstreamCompleted).length,
      upstreamBusySeconds: r3(busyMs / 1000),
      baselineSeconds: r3(baselineMs / 1000),
      measuredRemainingSeconds: r3(remainingMs / 1000),
      savedShare: baselineMs === 0 ? null : r3(1 - busyMs / baselineMs),
      savedShareOfMeasuredRemaining: remainingMs === 0 ? null : r3(1 - busyMs / remainingMs),
      hangupToUpstreamCloseMs: distribution(latencies),
      // the two legs: the hang-up reaching the proxy (its response's 'close'), then the proxy to the upstream
      hangupToProxyCloseMs: distribution(hungUp.filter((o) => o.hangupToProxyCloseMs !== undefined).map((o) => o.hangupToProxyCloseMs)),
      proxyCloseToUpstreamCloseMs: distribution(hungUp.filter((o) => o.proxyCloseToUpstreamCloseMs !== undefined).map((o) => o.proxyCloseToUpstreamCloseMs)),
      over2Ms: latencies.filter((v) => v > 2).length
    },
    stayers: {
      failed: stayed.filter((o) => o.failure !== null).length,
      failures,
      upstreamCutShort: stayed.filter((o) => o.upstreamReceived && !o.upstreamCompleted).length,
      upstreamNeverReceived: stayed.filter((o) => !o.upstreamReceived).length,
      clientMs: distribution(stayed.filter((o) => o.failure === null && o.clientMs !== null).map((o) => o.clientMs))
    },
    logs: { byLevel: logsByLevel, errorLevel: levelAtLeast(50), warnLevel: levelAtLeast(40) - levelAtLeast(50), byMessage: logsByMessage },
    othersCoresMax: Math.max(0, ...mine.map((b) => b.othersCores)),
    unsettledBatches: mine.filter((b) => !b.settled).length,
    samples: outcomes
  }
}

/** The project's targets for the fastify-hangup variants (the others are what they are compared with). */
function targets (s) {
  if (!TARGETED.includes(s.variant)) return null
  const a = s.abandoned
  const checks = {
    saved99: { target: '>= 99% of abandoned upstream work saved', value: a.savedShare, met: a.savedShare !== null && a.savedShare >= 0.99 },
    p99le2ms: { target: 'p99 hang-up -> upstream close <= 2 ms', value: a.hangupToUpstreamCloseMs?.p99 ?? null, met: a.hangupToUpstreamCloseMs !== null && a.hangupToUpstreamCloseMs.p99 <= 2 },
    noPrematureAbort: { target: '0 failed requests of clients that stayed', value: s.stayers.failed, met: s.stayers.failed === 0 && s.stayers.upstreamCutShort === 0 },
    noErrorLogs: { target: '0 log lines at level >= 50', value: s.logs.errorLevel, met: s.logs.errorLevel === 0 }
  }
  return checks
}

const pct = (v) => (v === null ? '-' : `${(v * 100).toFixed(1)}%`)
const ms = (v) => (v === null || v === undefined ? '-' : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0))

function printTable (summaries, opts) {
  const rows = [[
    'variant', 'method', 'hung up', 'answered first', 'busy s', 'baseline s', 'saved',
    'close p50/p99/max ms', 'ran to end', 'stayers failed', 'error logs', 'warn logs'
  ]]
  for (const s of summaries) {
    const a = s.abandoned
    const d = a.hangupToUpstreamCloseMs
    rows.push([
      s.variant,
      s.method,
      `${s.hungUp}/${s.requests}`,
      s.answeredBeforeHangup === 0 ? '0' : `${s.answeredBeforeHangup} (${Object.entries(s.answeredBeforeHangupBy).map(([k, v]) => `${v} ${k}`).join(', ')})`,
      a.upstreamBusySeconds.toFixed(1),
      a.baselineSeconds.toFixed(1),
      pct(a.savedShare),
      d === null ? '-' : `${ms(d.p50)}/${ms(d.p99)}/${ms(d.max)}`,
      String(a.upstreamRanToCompletion),
      `${s.stayers.failed}/${s.stayed}`,
      String(s.logs.errorLevel),
      String(s.logs.warnLevel)
    ])
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)))
  const line = (r) => r.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')
  console.log('\n' + line(rows[0]))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows.slice(1)) console.log(line(r))
  console.log(`
hung up: clients that destroyed their socket ${opts.hangupAfter} ms after sending; answered first: clients meant to
hang up that got their answer before (not counted as hung up). busy s: upstream work after the hang-ups
(upstream close - hang-up, or - arrival if it arrived later); baseline s: ${opts.work - opts.hangupAfter} ms per hang-up
(no cancellation). close: hang-up -> the upstream response's 'close' (one process, one clock). ran to end:
hung-up requests the upstream worked to completion. stayers failed: clients that waited and got no
correct 200. logs: lines each proxy's pino logger wrote during the batches (>= 50; 40).`)

  const split = summaries.filter((s) => s.abandoned.hangupToProxyCloseMs !== null && s.abandoned.upstreamRanToCompletion === 0)
  if (split.length > 0) {
    console.log('\nhang-up -> upstream close in two legs, p50/p99/max ms: the hang-up reaching the proxy (its response\'s \'close\'), then the proxy to the upstream\'s close:')
    for (const s of split) {
      const a = s.abandoned.hangupToProxyCloseMs
      const b = s.abandoned.proxyCloseToUpstreamCloseMs
      console.log(`  ${s.variant.padEnd(16)} ${s.method.padEnd(5)} ${ms(a.p50)}/${ms(a.p99)}/${ms(a.max)}  then  ${b === null ? '-' : `${ms(b.p50)}/${ms(b.p99)}/${ms(b.max)}`}`)
    }
  }
  for (const s of summaries) {
    const f = Object.entries(s.stayers.failures)
    if (f.length > 0) console.log(`  ${s.variant} ${s.method} stayers: ${f.map(([k, v]) => `${v} x ${k}`).join(', ')}`)
  }
  for (const s of summaries) {
    const warn = Object.entries(s.logs.byMessage).filter(([k]) => Number(k.split(' ')[0]) >= 40)
    if (warn.length > 0) console.log(`  ${s.variant} ${s.method} logs: ${warn.map(([k, v]) => `${v} x [${k}]`).join(', ')}`)
  }
}

function printTargets (summaries) {
  const lines = []
  for (const s of summaries) {
    const t = targets(s)
    if (t === null) continue
    const missed = Object.values(t).filter((c) => !c.met)
    lines.push(`  ${s.variant} ${s.method}: ${missed.length === 0 ? 'all met' : 'MISSED ' + missed.map((c) => `${c.target} (got ${c.value})`).join('; ')}`)
  }
  if (lines.length > 0) console.log('\ntargets (fastify-hangup: >= 99% saved, p99 <= 2 ms, 0 failed stayers, 0 error logs):\n' + lines.join('\n'))
}

function versionOf (name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(path.dirname(require.resolve(name)), 'package.json'), 'utf8')).version
  } catch {
    try {
      return require(`${name}/package.json`).version
    } catch {
      return null
    }
  }
}

// ---------------------------------------------------------------- main

async function main () {
  const opts = readOptions()
  loadPlugin() // fails early, with a clear message, when dist/ is not built
  for (const v of opts.variants) {
    const need = v === 'reply-from' ? '@fastify/reply-from' : v === 'http-proxy' ? '@fastify/http-proxy' : null
    if (need !== null && versionOf(need) === null) fail(`variant ${v} needs ${need}: npm install (it is a devDependency)`)
  }
  const versions = {
    ...benchVersions(),
    replyFrom: versionOf('@fastify/reply-from'),
    httpProxy: versionOf('@fastify/http-proxy'),
    pino: (() => {
      try {
        return require(require.resolve('pino/package.json', { paths: [path.dirname(require.resolve('fastify'))] })).version
      } catch {
        return null
      }
    })()
  }
  console.log(`fastify-hangup compare: Node ${versions.node}, fastify ${versions.fastify}, undici ${versions.undici}, reply-from ${versions.replyFrom}, http-proxy ${versions.httpProxy}`)
  console.log(`${os.cpus()[0]?.model} x${os.cpus().length}; ${opts.requests} requests per variant and method in ${opts.rounds} rounds, ${opts.concurrency} at once, ${Math.round(opts.hangupShare * 100)}% hang up after ${opts.hangupAfter} ms, upstream work ${opts.work} ms, ${opts.closedLoop ? 'closed loop' : `a client every ${opts.intervalMs.toFixed(1)} ms`}`)

  const startedAt = Date.now()
  const deadline = startedAt + opts.maxSeconds * 1000
  const idleBeforeStart = await warnIfBusy()
  const upstream = await startUpstream(opts.work)
  const proxies = {}
  const ours = new Set([process.pid])
  const batches = []
  const warmups = []
  const quietWaits = []
  let stoppedEarly = false
  let leftBehind = []
  const finalLogs = {}
  try {
    for (const v of opts.variants) {
      proxies[v] = await startProxy(v, upstream.url)
      ours.add(proxies[v].pid)
    }
    if (opts.warmup > 0) {
      for (const v of opts.variants) {
        for (const m of opts.methods) {
          const n = Math.max(1, Math.round(opts.warmup / opts.methods.length))
          const b = await runBatch(proxies[v], upstream, m, n, ours, { ...opts, concurrency: n }, 'warmup')
          warmups.push({ variant: v, method: m, count: n, elapsedMs: b.elapsedMs, stayersNot200: b.results.filter((r) => !r.hang && r.status !== 200).length })
        }
      }
    }
    const perRound = Array.from({ length: opts.rounds }, (_, i) => Math.floor(opts.requests * (i + 1) / opts.rounds) - Math.floor(opts.requests * i / opts.rounds))
    for (let round = 0; round < opts.rounds && !stoppedEarly; round++) {
      const variants = round % 2 === 0 ? opts.variants : [...opts.variants].reverse()
      const methods = round % 2 === 0 ? opts.methods : [...opts.methods].reverse()
      for (const v of variants) {
        for (const m of methods) {
          if (Date.now() > deadline) stoppedEarly = true
          if (stoppedEarly) break
          if (opts.wait) {
            const q = await waitForQuiet(ours, { maxWaitMs: 3000, windowMs: 300, threshold: 0.1 })
            quietWaits.push(q)
          }
          const b = await runBatch(proxies[v], upstream, m, perRound[round], ours, opts, `round ${round + 1}`)
          batches.push(b)
          process.stdout.write(`  round ${round + 1} ${v.padEnd(15)} ${m.padEnd(4)} ${b.count} requests, ${(b.elapsedMs / 1000).toFixed(1)} s${b.othersCores > 0.1 ? `, other programs used ${b.othersCores} core` : ''}${b.settled ? '' : `, ${b.stillOpen} upstream requests still open`}\n`)
        }
      }
    }
  } finally {
    for (const p of Object.values(proxies)) {
      try {
        const l = await p.logs()
        finalLogs[p.variant] = { samples: l.logs.samples, warnings: l.warnings }
      } catch {}
    }
    for (const p of Object.values(proxies)) await p.stop()
    await upstream.close()
    leftBehind = Object.values(proxies).filter((p) => p.child.exitCode === null && p.child.signalCode === null).map((p) => p.pid)
  }
  if (stoppedEarly) console.log(`stopped after ${opts.maxSeconds} s (--max-seconds): ${batches.length} batches`)

  const summaries = []
  for (const v of opts.variants) for (const m of opts.methods) summaries.push(summarize(v, m, batches, upstream, opts))
  printTable(summaries, opts)
  printTargets(summaries)
  const othersMax = Math.max(0, ...batches.map((b) => b.othersCores))
  if (othersMax > 0.1) console.log(`\nnote: other programs used up to ${othersMax} core during a batch (see batches[].othersCores)`)
  if (leftBehind.length > 0) console.log(`\nwarning: proxy processes left running: ${leftBehind.join(', ')}`)

  const report = {
    benchmark: 'compare',
    date: new Date().toISOString(),
    seconds: Math.round((Date.now() - startedAt) / 1000),
    command: `node bench/compare.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { ...machineInfo(), idleBeforeStart, othersCoresMaxDuringBatch: othersMax },
    versions,
    options: { ...opts, out: undefined },
    variants: Object.fromEntries(opts.variants.map((v) => [v, VARIANTS[v]])),
    targets: {
      appliesTo: TARGETED,
      savedShare: 0.99,
      p99HangupToUpstreamCloseMs: 2,
      failedStayers: 0,
      errorLogLines: 0
    },
    stoppedEarly,
    processesLeft: leftBehind,
    results: summaries.map((s) => {
      const { samples, ...rest } = s
      return { ...rest, targets: targets(s) }
    }),
    logSamples: finalLogs,
    warmups,
    batches: batches.map((b) => ({
      label: b.label,
      variant: b.variant,
      method: b.method,
      count: b.count,
      clientsMs: b.clientsMs,
      elapsedMs: b.elapsedMs,
      settled: b.settled,
      othersCores: b.othersCores,
      proxyCpuMs: b.proxyCpuMs,
      logsByLevel: b.logsByLevel
    })),
    quietWaits,
    // every request: ms relative to the client's send; busy/close in ms
    samples: Object.fromEntries(summaries.map((s) => [`${s.variant} ${s.method}`, {
      columns: ['id', 'hang', 'hungUpMs', 'status', 'error', 'clientMs', 'upstreamStartMs', 'upstreamCloseMs', 'upstreamCompleted', 'busyAfterHangupMs', 'hangupToCloseMs', 'hangupToProxyCloseMs', 'proxyCloseToUpstreamCloseMs', 'failure'],
      rows: s.samples.map((o) => [o.id, o.hang, o.hungUpMs, o.status, o.error, o.clientMs, o.upstreamStartMs, o.upstreamCloseMs, o.upstreamCompleted, o.busyAfterHangupMs ?? null, o.hangupToCloseMs ?? null, o.hangupToProxyCloseMs ?? null, o.proxyCloseToUpstreamCloseMs ?? null, o.failure ?? null])
    }]))
  }
  fs.mkdirSync(path.dirname(opts.out), { recursive: true })
  fs.writeFileSync(opts.out, JSON.stringify(report, null, 1) + '\n')
  console.log(`\nwritten ${path.relative(process.cwd(), opts.out)}`)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
