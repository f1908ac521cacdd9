'use strict'

// The cluster of bench/cluster.js: a startCluster() primary (fastify-hangup/cluster,
// compiled: ../dist/cjs/cluster.js) and its workers, each a Fastify app with
// fastify-hangup's default options (`fatal` on: an uncaught error closes the
// worker gracefully and the primary replaces it). Run by bench/cluster.js in
// its own process group; can be run by hand too:
//
//   BENCH_CLUSTER='{"workers":2,"port":3000}' node bench/cluster-app.js
//
// BENCH_CLUSTER (JSON): workers (default 2), port (default 0: a random port,
// the same for every worker: Node's primary shares one listening socket),
// host (default 127.0.0.1), exitWithParent (bench/cluster.js sets it: the
// primary stops its workers when its stdin ends, and SIGKILLs its process
// group 3 s later), dist (the directory of the compiled plugin, default
// ../dist/cjs).
//
// The primary logs through startCluster()'s default logger: pino-style JSON
// lines on stdout ('worker forked', 'worker listening' with port and
// restartMs, 'worker closing', 'worker exited', ...), which bench/cluster.js
// reads. The workers log nothing (logger: false), so the plugin's own line
// about a fatal error is not written either.
//
// Routes (every worker):
//   GET /        { hello: 'world' }: the trivial route autocannon loads
//   GET /pid     { pid }: which worker served the connection
//   GET /crash   a throw in a timer, outside any try: the uncaught error the
//                plugin traces to this request, answers 500 and closes the
//                worker gracefully

const path = require('node:path')
const Fastify = require('fastify')
const { loadPlugin } = require('./load-plugin.js')

const config = JSON.parse(process.env.BENCH_CLUSTER ?? '{}')

// dist: another copy of the compiled plugin (bench/cluster.js runs a copy of
// dist/cjs taken at its start, its requires resolved through NODE_PATH).
const hangup = config.dist === undefined ? loadPlugin() : require(path.join(config.dist, 'index.js'))
const { startCluster } = require(path.join(config.dist ?? path.join(__dirname, '..', 'dist', 'cjs'), 'cluster.js'))

async function start () {
  const app = Fastify({ logger: false })
  // gracePeriod: bench/cluster.js --grace (the plugin's default otherwise).
  await app.register(hangup, config.gracePeriod === undefined ? {} : { fatal: { gracePeriod: config.gracePeriod } })
  app.get('/', async () => ({ hello: 'world' }))
  app.get('/pid', async () => ({ pid: process.pid }))
  app.get('/crash', async () => {
    setTimeout(() => { throw new Error('bench: crash in a timer') }, 1)
    return new Promise(() => {})
  })
  await app.listen({ port: config.port ?? 0, host: config.host ?? '127.0.0.1' })
}

startCluster({ workers: config.workers ?? 2, start }).then((supervisor) => {
  if (supervisor === undefined || config.exitWithParent !== true) return
  // Run by bench/cluster.js (in a process group of its own, so Ctrl-C does not
  // reach it): the bench holds this stdin, whose end means the bench is gone,
  // even SIGKILLed. Stop the workers, and the whole group after 3 s.
  const gone = () => {
    setTimeout(() => process.kill(-process.pid, 'SIGKILL'), 3000).unref()
    supervisor.stop('SIGTERM').catch(() => {})
  }
  process.stdin.once('end', gone).once('error', gone).resume()
}, (err) => {
  console.error(err)
  process.exit(1)
})
