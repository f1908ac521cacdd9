'use strict'

// One server of the throughput benchmark, run by bench/run.js in a child
// process (child_process.fork) so that autocannon, in the parent, never
// shares its event loop. argv[2] is the variant (see bench/app.js).
// The child tells the parent its port over IPC, reports its CPU time when
// asked, and exits on 'stop' or when the parent goes away (so that
// --cpu-prof, if given, writes its profile).
// Variants with the plugin's `fatal` on (plugin, no-context) also have its
// process handlers: SIGINT/SIGTERM close the app gracefully and exit 0 (a
// second signal exits 1 at once), and an uncaught error exits 1 without a
// word (logger: false), which the exit listener below reports.

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
  function stop () {
    if (stopping) return
    stopping = true
    app.close().then(() => process.exit(0), (err) => {
      console.error(err)
      process.exit(1)
    })
  }
  // A monitor: it does not change what the plugin's handler does with the error.
  process.on('uncaughtExceptionMonitor', (err) => console.error(`bench server ${variant}:`, err))
  process.on('exit', (code) => {
    if (code !== 0) console.error(`bench server ${variant}: exit code ${code}`)
  })

  process.on('message', (msg) => {
    if (msg === 'stop') {
      stop()
    } else if (msg === 'cpu' && process.connected) {
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
