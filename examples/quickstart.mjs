// The README's example, as pasted: a proxy whose upstream call stops when the client hangs up.
import Fastify from 'fastify'
import hangup from 'fastify-hangup'
import { request } from 'undici'

const upstream = process.env.UPSTREAM ?? 'http://127.0.0.1:3001'
const app = Fastify({ logger: true })
await app.register(hangup)

app.post('/search', async (req, reply) => {
  // request.signal aborts when the client goes away, and only then
  const res = await request(`${upstream}/search`, {
    method: 'POST',
    body: JSON.stringify(req.body),
    headers: { 'content-type': 'application/json' },
    signal: req.signal
  })
  return reply.code(res.statusCode).send(res.body)
})

await app.listen({ port: Number(process.env.PORT ?? 3000) })
