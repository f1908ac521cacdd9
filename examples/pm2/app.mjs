// A Fastify app with fastify-hangup, run by pm2: see ecosystem.config.cjs, and
// check.sh, which tests this recipe under a real pm2.
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import hangup from 'fastify-hangup'

// ecosystem.config.cjs keeps this next to pm2's kill_timeout; unset, the
// plugin's default (10 s) applies.
const gracePeriod = process.env.HANGUP_GRACE_MS === undefined ? undefined : Number(process.env.HANGUP_GRACE_MS)

const app = Fastify({ logger: true })
// asyncContext: the crashing request's own 500 on Node 20 and 22 too (the
// default, 'auto', traces crashes on Node 24+ and Node 22 with
// --experimental-async-context-frame, where it is cheap).
await app.register(hangup, { fatal: { gracePeriod, asyncContext: true } })

app.get('/', async () => ({ pid: process.pid }))

// /slow?ms=2000
app.get('/slow', async (request) => {
  const ms = Number(request.query.ms ?? 2000)
  await sleep(ms, undefined, { signal: request.signal }) // stops if the client hangs up or the grace period ends
  return { pid: process.pid, ms }
})

app.get('/crash', async () => {
  // A throw nobody can catch: this request gets its 500, the others drain, the process exits 1
  setTimeout(() => { throw new Error('boom') }, 10)
  return new Promise(() => {})
})

// readiness probe: 503 as soon as a graceful close starts
app.get('/ready', async (request, reply) => reply.code(app.hangup.closing ? 503 : 200).send())

await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })

// `wait_ready: true`: this instance is ready once it listens.
process.send?.('ready')
// `shutdown_with_message: true` (pm2 on Windows) stops with this message instead of a signal.
process.on('message', (message) => { if (message === 'shutdown') app.hangup.shutdown() })
