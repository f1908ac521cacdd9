import Fastify from 'fastify'
import hangup from 'fastify-hangup'
import { setTimeout as sleep } from 'node:timers/promises'

const app = Fastify({ logger: true })
await app.register(hangup, {
  fatal: {
    gracePeriod: 10_000, // drain for up to 10 s, then abort the stragglers (503) and exit
    asyncContext: true, // trace the crash to its request on Node 20 and 22 too (default 'auto': Node 24+)
    onFatal: (error, request) => console.error('report to your error tracker:', error instanceof Error ? error.message : error, request?.id)
  }
})

app.get('/slow', async () => {
  await sleep(2000)
  return { ok: true }
})

app.get('/crash', async () => {
  // A throw nobody can catch: the process must restart, but this request gets its 500
  setTimeout(() => { throw new Error('db password is hunter2') }, 10)
  return new Promise(() => {})
})

// readiness probe: 503 as soon as a graceful close starts
app.get('/ready', async (req, reply) => reply.code(app.hangup.closing ? 503 : 200).send())

await app.listen({ port: Number(process.env.PORT ?? 3000) })
