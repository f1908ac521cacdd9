'use strict'

// One server of the throughput benchmark, run by bench/run.js in a child
// process (child_process.fork) so that autocannon, in the parent, never
// shares its event loop. argv[2] is the variant (see bench/app.js).
// The child tells the parent its port over IPC, reports its CPU time when
// asked, and exits on 'stop' (so that --cpu-prof, if given, writes its profile).

const { buildApp, VARIANTS } = require('./app.js')

const variant = process.argv[2]
if (!Object.hasOwn(VARIANTS, variant)) {
  console.error(`usage: node bench/server.js ${Object.keys(VARIANTS).join('|')} (normally forked by bench/run.js)`)
  process.exit(2)
}

async function main () {
  const app = await buildApp(variant)
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
      // Cumulative CPU time (µs) and a timestamp (ms): the parent diffs two
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
