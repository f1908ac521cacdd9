'use strict'

// One server of the throughput benchmark, run by bench/run.js in a child
// process (child_process.fork) so that autocannon, in the parent, does not
// share its event loop. argv[2] is the variant:
//   bare    Fastify alone
//   plugin  Fastify + fastify-hangup with its default options
// Routes:
//   GET /ignore  never touches request.signal (the plugin's lazy path)
//   GET /read    reads request.signal and checks .aborted (allocates a controller)
// The child tells the parent its port over IPC, reports its CPU time when
// asked, and exits on 'stop' (so that --cpu-prof, if given, writes its profile).

const Fastify = require('fastify')
const { loadPlugin } = require('./load-plugin.js')

const variant = process.argv[2]
if (variant !== 'bare' && variant !== 'plugin') {
  console.error('usage: node bench/server.js bare|plugin (normally forked by bench/run.js)')
  process.exit(2)
}

async function main () {
  const app = Fastify({ logger: false })
  if (variant === 'plugin') await app.register(loadPlugin())

  app.get('/ignore', async function ignore () {
    return { hello: 'world' }
  })

  app.get('/read', async function read (request) {
    return { hello: 'world', aborted: request.signal.aborted }
  })

  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address()

  let stopping = false
  async function stop () {
    if (stopping) return
    stopping = true
    await app.close()
    process.exit(0)
  }

  process.on('message', (msg) => {
    if (msg === 'stop') {
      stop()
    } else if (msg === 'cpu') {
      // Cumulative CPU time (µs) and wall-clock (ms): the parent diffs two
      // samples to tell whether the server was saturated during a run.
      process.send({ type: 'cpu', cpu: process.cpuUsage(), at: performance.now() })
    }
  })
  process.on('disconnect', stop)
  process.send({ type: 'ready', port, pid: process.pid, node: process.version })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
