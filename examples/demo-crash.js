'use strict'

// A crash under load, live: `npm run demo:crash` (after `npm run build`).
//
// A 2-worker cluster (fastify-hangup/cluster) on 127.0.0.1, 8 clients sending
// requests over keep-alive connections with no retry, and three requests that
// crash their worker with a throw nobody can catch. The demo counts what the
// clients got (no number it prints is made up): answered, lost, and how long
// each worker took to be replaced. About 8 s.

const cluster = require('node:cluster')
const fs = require('node:fs')
const path = require('node:path')
const { setTimeout: sleep } = require('node:timers/promises')

if (!fs.existsSync(path.join(__dirname, '..', 'dist', 'cjs', 'cluster.js'))) {
  console.error('fastify-hangup is not compiled yet: run `npm run build` first')
  process.exit(1)
}
const hangup = require('../dist/cjs/index.js')
const { startCluster } = require('../dist/cjs/cluster.js')

const CLIENTS = 8
const CRASH_AT_MS = [1500, 3000, 4500] // after the load starts
const LOAD_MS = 6000
const WATCHDOG_MS = 120_000 // about 9 s on a quiet machine; a loaded one can take many times that

// ---------------------------------------------------------------------------
// A worker: Fastify with the plugin's defaults, a route and a crash.
// ---------------------------------------------------------------------------

async function startWorker () {
  const Fastify = require('fastify')
  const app = Fastify({ logger: false })
  await app.register(hangup, { fatal: { gracePeriod: 5000, asyncContext: true } })
  app.get('/', async () => {
    await sleep(5) // a little work, so requests are in flight when a crash comes
    return { worker: cluster.worker.id }
  })
  app.get('/crash', async () => {
    setTimeout(() => { throw new Error('a bug nobody catches') }, 1)
    return new Promise(() => {})
  })
  await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' })
}

// ---------------------------------------------------------------------------
// The primary: the supervisor's events as readable lines, the load, the crashes.
// ---------------------------------------------------------------------------

const t0 = performance.now()
const stamp = () => `${((performance.now() - t0) / 1000).toFixed(2).padStart(5)} s`
const say = (line) => process.stdout.write(`${stamp()}  ${line}\n`)

const events = {
  'worker forked': (o) => `worker ${o.worker} forked${o.replaces === undefined ? '' : ` to replace worker ${o.replaces}`}`,
  'worker listening': (o) => `worker ${o.worker} listening${o.restartMs === undefined ? '' : ` (${o.restartMs} ms after worker ${o.replaces} began to close)`}`,
  'worker closing': (o) => o.cause === 'fatal'
    ? `worker ${o.worker} closing (crashed by request ${o.reqId}): it finishes what it has, the others serve the rest`
    : `worker ${o.worker} closing (${o.cause}): draining`,
  'worker exited': (o) => `worker ${o.worker} exited (${o.cause}, code ${o.code})`,
  'all workers exited: primary exiting': (o) => `all workers exited: the primary exits ${o.code}`
}
const restarts = [] // the supervisor's measure: closing message → replacement listening
const logger = {
  info: (o, msg) => {
    if (msg === 'worker listening' && o.restartMs !== undefined) restarts.push(o.restartMs)
    if (events[msg] !== undefined) say(events[msg](o))
  },
  warn: (o, msg) => say(events[msg] === undefined ? msg : events[msg](o)),
  error: (o, msg) => say(`${msg} ${JSON.stringify(o)}`)
}

async function load (url, agent, until, tally) {
  const { request } = require('undici')
  while (performance.now() < until) {
    try {
      const res = await request(url, { dispatcher: agent })
      await res.body.dump()
      if (res.statusCode === 200) tally.answered++
      else tally.lost.push(`HTTP ${res.statusCode}`)
    } catch (error) {
      tally.lost.push(error.code ?? error.message)
    }
  }
}

/** Resolves once `n` replacements listen, or after 30 s (the summary then shows fewer). */
async function replaced (n) {
  for (let waited = 0; restarts.length < n && waited < 30_000; waited += 50) await sleep(50)
}

async function crash (url, crashes) {
  const { request } = require('undici')
  const sent = performance.now()
  const res = await request(`${url}/crash`, { reset: true }).catch((error) => ({ statusCode: error.code }))
  await res.body?.dump()
  crashes.push({ status: res.statusCode, ms: performance.now() - sent })
}

async function runPrimary (supervisor) {
  const address = await new Promise((resolve) => {
    let listening = 0
    cluster.on('listening', (worker, address) => { if (++listening === 2) resolve(address) })
  })
  const url = `http://127.0.0.1:${address.port}`
  const { Agent } = require('undici')
  const agent = new Agent({ keepAliveTimeout: 30_000 })
  const tally = { answered: 0, lost: [] }
  const crashes = []
  say(`${CLIENTS} clients on ${url}, keep-alive, no retry; crashes at ${CRASH_AT_MS.map((ms) => ms / 1000 + ' s').join(', ')}`)
  const start = performance.now()
  const until = start + LOAD_MS
  const ticker = setInterval(() => say(`answered ${tally.answered}, lost ${tally.lost.length}`), 1000)
  const crashing = (async () => {
    for (const [k, at] of CRASH_AT_MS.entries()) {
      await sleep(Math.max(0, start + at - performance.now()))
      // On a slow machine the last crash's replacement may not listen yet:
      // a crash sent now could reach the worker already closing, which has
      // nothing left to replace.
      await replaced(k)
      say('a request crashes its worker')
      await crash(url, crashes)
    }
  })()
  await Promise.all([...Array.from({ length: CLIENTS }, () => load(url, agent, until, tally)), crashing])
  clearInterval(ticker)
  await agent.close()

  await replaced(CRASH_AT_MS.length)
  const stats = supervisor.stats()
  process.stdout.write('\n')
  say(`answered: ${tally.answered}`)
  say(`lost: ${tally.lost.length}${tally.lost.length === 0 ? '' : ` (${[...new Set(tally.lost)].join(', ')})`}`)
  say(`crashing requests: ${crashes.map((c) => c.status).join(', ')} (each answered at once: ${crashes.map((c) => c.ms.toFixed(0) + ' ms').join(', ')})`)
  say(`workers forked: ${stats.forks} (2 + one per crash); restart times: ${restarts.map((ms) => ms + ' ms').join(', ')}`)
  await supervisor.stop() // the primary exits when the workers have
}

const watchdog = setTimeout(() => {
  console.error(`demo: still running after ${WATCHDOG_MS / 1000} s, giving up`)
  process.exit(1)
}, WATCHDOG_MS)
watchdog.unref()

startCluster({ workers: 2, start: startWorker, logger }).then((supervisor) => {
  if (supervisor !== undefined) return runPrimary(supervisor)
}).catch((error) => {
  console.error(error)
  process.exit(1)
})
