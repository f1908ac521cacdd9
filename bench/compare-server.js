'use strict'

// One proxy of bench/compare.js, run in a child process (child_process.fork)
// so that each variant has undici's global dispatcher, the plugin's process
// handlers and its async context to itself (autoBind's interceptor binds the
// undici calls of every app in a process that has the async context on: in
// one process it would bind the explicit-signal variant's calls too).
//
// argv[2] is the variant, argv[3] the upstream's URL. Every variant serves
// GET and POST /work?id=... and calls the upstream's /work?id=... with the
// same method (POST: the JSON body, re-serialized). Fastify logs at `info`
// through pino into a stream that counts the lines by level and message; the
// parent asks for the counts over IPC ('logs') before and after each batch.
// The child exits on 'stop' (app.close()) or when the parent goes away.

const { logCounter } = require('./log-counter.js')
const { stopper } = require('./stopper.js')

const VARIANTS = {
  'core-signal': 'no plugin, undici.request(url, { signal: request.signal }): Fastify\'s own signal',
  'reply-from': '@fastify/reply-from, reply.from() (base: the upstream)',
  'http-proxy': '@fastify/http-proxy, prefix /work to the upstream\'s /work',
  'hangup-signal': 'fastify-hangup (default options), undici.request(url, { signal: request.signal })',
  'hangup-autobind': 'fastify-hangup { autoBind: true }, undici.request(url), no signal',
  none: 'no plugin, undici.request(url), no signal (the no-cancellation reference)'
}

function workPath (request) {
  const q = request.raw.url.indexOf('?')
  return `/work${q >= 0 ? request.raw.url.slice(q) : ''}`
}

async function buildApp (variant, upstream, logs, closes) {
  const Fastify = require('fastify')
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  // When each response closed, on the clock every process shares
  // (CLOCK_MONOTONIC): the parent splits hang-up -> upstream close in two.
  // Added before any plugin, so this listener runs before the plugin's own.
  app.addHook('onRequest', (request, reply, done) => {
    const id = request.query.id
    reply.raw.once('close', () => { closes.push([id, String(process.hrtime.bigint())]) })
    done()
  })

  if (variant === 'reply-from') {
    await app.register(require('@fastify/reply-from'), { base: upstream })
    app.route({
      method: ['GET', 'POST'],
      url: '/work',
      handler (request, reply) {
        return reply.from(workPath(request))
      }
    })
  } else if (variant === 'http-proxy') {
    await app.register(require('@fastify/http-proxy'), { upstream, prefix: '/work', rewritePrefix: '/work' })
  } else {
    const undici = require('undici')
    if (variant === 'hangup-signal') {
      const { loadPlugin } = require('./load-plugin.js')
      await app.register(loadPlugin())
    } else if (variant === 'hangup-autobind') {
      const { loadPlugin } = require('./load-plugin.js')
      await app.register(loadPlugin(), { autoBind: true })
    }
    const passSignal = variant === 'core-signal' || variant === 'hangup-signal'
    app.route({
      method: ['GET', 'POST'],
      url: '/work',
      async handler (request, reply) {
        const options = { method: request.method }
        if (passSignal) options.signal = request.signal
        if (request.method === 'POST') {
          options.body = JSON.stringify(request.body)
          options.headers = { 'content-type': 'application/json' }
        }
        const res = await undici.request(`${upstream}${workPath(request)}`, options)
        const text = await res.body.text()
        return reply.code(res.statusCode).type('application/json').send(text)
      }
    })
  }
  await app.listen({ host: '127.0.0.1', port: 0 })
  return app
}

async function main () {
  const [variant, upstream] = process.argv.slice(2)
  if (!Object.hasOwn(VARIANTS, variant) || !upstream) {
    console.error(`usage: node bench/compare-server.js ${Object.keys(VARIANTS).join('|')} <upstream url> (normally forked by bench/compare.js)`)
    process.exit(2)
  }
  const logs = logCounter()
  let closes = []
  const warnings = []
  process.on('warning', (w) => { if (warnings.length < 20) warnings.push(`${w.name}: ${w.message}`) })
  process.on('uncaughtExceptionMonitor', (err) => console.error(`compare server ${variant}:`, err))

  const app = await buildApp(variant, upstream, logs, { push: (e) => closes.push(e) })

  const stop = stopper(app)
  process.on('message', (msg) => {
    if (msg === 'stop') stop()
    else if (msg === 'logs' && process.connected) {
      process.send({ type: 'logs', logs: logs.snapshot(), warnings: [...warnings], cpu: process.cpuUsage(), closes })
      closes = []
    }
  })
  process.on('disconnect', stop)
  process.send({ type: 'ready', port: app.server.address().port, pid: process.pid })
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}

module.exports = { VARIANTS }
