import Fastify from 'fastify'
import hangup from 'fastify-hangup'
import { startCluster } from 'fastify-hangup/cluster'
import { setTimeout as sleep } from 'node:timers/promises'

await startCluster({
  workers: 2,
  start: async () => {
    const app = Fastify({ logger: true })
    // asyncContext: the crash's own 500 on Node 20 and 22 too (default 'auto': Node 24+)
    await app.register(hangup, { fatal: { gracePeriod: 10_000, asyncContext: true } })
    app.get('/', async () => ({ pid: process.pid }))
    app.get('/slow', async () => { await sleep(1000); return { pid: process.pid } })
    app.get('/crash', async () => {
      setTimeout(() => { throw new Error('boom') }, 10) // nobody can catch this one
      return new Promise(() => {})
    })
    // readiness probe: 503 as soon as this worker starts closing
    app.get('/ready', async (req, reply) => reply.code(app.hangup.closing ? 503 : 200).send())
    await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
  }
})
