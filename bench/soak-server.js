'use strict'

// The app of bench/soak.js, in a child process (child_process.fork, with
// --expose-gc) so that its heap and handles are its own: the load generator
// and the upstream live in the parent.
//
// argv[2] is the upstream's URL. Fastify with the plugin ({ autoBind: true },
// defaults otherwise), its request logging on, into a stream that counts the
// lines by level (bench/log-counter.js). Routes (every upstream call goes
// through undici's global dispatcher, so autoBind binds it; /proxy?signal=1
// passes request.signal as well, the explicit way):
//
//   GET  /fast                 no upstream call
//   GET  /proxy?id=&signal=    one call to the upstream's /work
//   POST /proxy?id=            the same with the JSON body, re-serialized
//   GET  /fanout?id=&n=&path=  n calls at once to /work or /stall
//   GET|POST /stall?id=        one call to /stall, which answers only by closing
//   GET  /timeout?id=          the same with handlerTimeout: 20 ms -> 503
//   GET  /stream?id=           relays /stream (endless chunks) with reply.send(body)
//
// IPC: 'sample' -> { heap after two full GCs, active handles by type,
// connections, the plugin's stats, log lines by level, warnings }; 'stop'.

const { logCounter } = require('./log-counter.js')
const { stopper } = require('./stopper.js')

const TIMEOUT_MS = 20

async function buildApp (upstream, logs) {
  const Fastify = require('fastify')
  const undici = require('undici')
  const { loadPlugin } = require('./load-plugin.js')
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(loadPlugin(), { autoBind: true })

  function call (request, path, options = {}) {
    if (request.query.signal === '1') options.signal = request.signal
    return undici.request(`${upstream}${path}?id=${request.query.id}`, options)
  }

  async function relay (request, path, options) {
    const res = await call(request, path, options)
    return res.body.json()
  }

  app.get('/fast', async () => ({ ok: true }))
  app.get('/proxy', (request) => relay(request, '/work'))
  app.post('/proxy', (request) => relay(request, '/work', {
    method: 'POST',
    body: JSON.stringify(request.body),
    headers: { 'content-type': 'application/json' }
  }))
  app.get('/fanout', async (request) => {
    const n = Number(request.query.n)
    const path = request.query.path === 'stall' ? '/stall' : '/work'
    const answers = await Promise.all(Array.from({ length: n }, () => relay(request, path)))
    return { n: answers.length }
  })
  app.route({ method: ['GET', 'POST'], url: '/stall', handler: (request) => relay(request, '/stall') })
  app.get('/timeout', { handlerTimeout: TIMEOUT_MS }, (request) => relay(request, '/stall'))
  app.get('/stream', async (request, reply) => {
    const res = await call(request, '/stream')
    return reply.type('text/plain').send(res.body)
  })

  await app.listen({ host: '127.0.0.1', port: 0 })
  return app
}

/** Active handles and requests by type (Node's own list: TCPWRAP, Timeout, ...). */
function activeResources () {
  const byType = {}
  for (const type of process.getActiveResourcesInfo()) byType[type] = (byType[type] ?? 0) + 1
  return byType
}

function connections (app) {
  return new Promise((resolve) => app.server.getConnections((err, n) => resolve(err ? -1 : n)))
}

/**
 * Heap after GC: two full collections (the second catches what the first
 * freed only for finalization, e.g. WeakRef targets and FinalizationRegistry
 * cells) before reading.
 */
function heapAfterGc () {
  global.gc()
  global.gc()
  const m = process.memoryUsage()
  return { heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss }
}

async function main () {
  const upstream = process.argv[2]
  if (!upstream || typeof global.gc !== 'function') {
    console.error('usage: node --expose-gc bench/soak-server.js <upstream url> (normally forked by bench/soak.js)')
    process.exit(2)
  }
  const logs = logCounter()
  const warnings = []
  process.on('warning', (w) => { if (warnings.length < 20) warnings.push(`${w.name}: ${w.message}`) })
  process.on('uncaughtExceptionMonitor', (err) => console.error('soak server:', err))

  const app = await buildApp(upstream, logs)

  const stop = stopper(app)
  process.on('message', async (msg) => {
    if (msg === 'stop') stop()
    else if (msg === 'sample' && process.connected) {
      const heap = heapAfterGc()
      process.send({
        type: 'sample',
        heap,
        resources: activeResources(),
        connections: await connections(app),
        stats: app.hangup.stats(),
        logs: logs.snapshot(),
        warnings: [...warnings],
        cpu: process.cpuUsage()
      })
    }
  })
  process.on('disconnect', stop)
  process.send({ type: 'ready', port: app.server.address().port, pid: process.pid, timeoutMs: TIMEOUT_MS })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
