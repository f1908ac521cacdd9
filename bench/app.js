'use strict'

// The Fastify app every throughput benchmark serves, in one of its variants:
//   bare        Fastify alone
//   plugin      Fastify + fastify-hangup with its default options: `fatal` on,
//               with `asyncContext: 'auto'` (the context where Node runs
//               AsyncLocalStorage on AsyncContextFrame: Node 24+, Node 22
//               with --experimental-async-context-frame; off elsewhere)
// and, to tell what the cost is made of, from the cheapest up:
//   hook        Fastify + an empty onRequest and an empty onError hook: what
//               Fastify itself charges for any plugin that adds hooks
//   hook-prevalidation  an empty onRequest and an empty preValidation hook:
//               the plugin's two per-request hooks, empty
//   no-abort    fastify-hangup with abortOnResponse: false and fatal: false
//               (compare with no-fatal: the cost of abortOnResponse alone)
//   no-fatal    fastify-hangup with fatal: false: the request signal only,
//               no process handlers, no async context
//   no-context  fastify-hangup with fatal: { asyncContext: false }: process
//               handlers and graceful close, no async context
//   context     fastify-hangup with fatal: { asyncContext: true }: the
//               context on whatever the Node (context vs no-context: its cost)
//   autobind    fastify-hangup with autoBind: true (defaults otherwise): the
//               interceptor composed into undici's global dispatcher, and
//               node:http client requests bound through Node's channel. The
//               routes below make no upstream call, so this is the cost of
//               the mode per request; the cost per bound upstream call is
//               bench/upstream-call.js's. autoBind turns the context on
//   autobind-undici, autobind-http  autoBind for one client only
//   bare-undici Fastify alone, with undici's index loaded (require('undici'))
//   bare-require Fastify alone, with the modules named in BENCH_REQUIRE
//               (comma-separated, resolved from bench/) loaded: isolates
//               what loading a module costs the process
//   plugin-undici the defaults, with undici's index loaded
// Every variant with `fatal` on installs SIGINT/SIGTERM handlers in its
// process: a SIGTERM closes the app gracefully and exits 0.
// Routes:
//   GET /ignore  never touches request.signal (the plugin's lazy path)
//   GET /read    reads request.signal and checks .aborted (allocates a controller)

const Fastify = require('fastify')
const { loadPlugin } = require('./load-plugin.js')

const VARIANTS = {
  bare: async () => {},
  plugin: async (app) => { await app.register(loadPlugin()) },
  hook: async (app) => {
    app.addHook('onRequest', function emptyOnRequest (request, reply, done) { done() })
    app.addHook('onError', function emptyOnError (request, reply, error, done) { done() })
  },
  'hook-prevalidation': async (app) => {
    app.addHook('onRequest', function emptyOnRequest (request, reply, done) { done() })
    app.addHook('preValidation', function emptyPreValidation (request, reply, done) { done() })
  },
  'no-abort': async (app) => { await app.register(loadPlugin(), { abortOnResponse: false, fatal: false }) },
  'no-fatal': async (app) => { await app.register(loadPlugin(), { fatal: false }) },
  'no-context': async (app) => { await app.register(loadPlugin(), { fatal: { asyncContext: false } }) },
  context: async (app) => { await app.register(loadPlugin(), { fatal: { asyncContext: true } }) },
  autobind: async (app) => { await app.register(loadPlugin(), { autoBind: true }) },
  'autobind-undici': async (app) => { await app.register(loadPlugin(), { autoBind: { undici: true, http: false } }) },
  'autobind-http': async (app) => { await app.register(loadPlugin(), { autoBind: { undici: false, http: true } }) },
  'bare-undici': async () => { require('undici') },
  'bare-require': async () => {
    for (const name of (process.env.BENCH_REQUIRE ?? '').split(',')) if (name !== '') require(name)
  },
  'plugin-undici': async (app) => { require('undici'); await app.register(loadPlugin()) }
}

async function buildApp (variant) {
  if (!Object.hasOwn(VARIANTS, variant)) throw new Error(`unknown variant ${variant} (${Object.keys(VARIANTS).join(', ')})`)
  const app = Fastify({ logger: false })
  await VARIANTS[variant](app)

  app.get('/ignore', async function ignore () {
    return { hello: 'world' }
  })

  app.get('/read', async function read (request) {
    return { hello: 'world', aborted: request.signal.aborted }
  })

  await app.listen({ host: '127.0.0.1', port: 0 })
  return app
}

module.exports = { buildApp, VARIANTS }
