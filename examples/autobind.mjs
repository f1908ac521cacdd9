import Fastify from 'fastify'
import hangup from 'fastify-hangup'
import { request } from 'undici'

const upstream = process.env.UPSTREAM ?? 'http://127.0.0.1:3001'

// A repository layer: it never sees the request, and passes no signal.
const reports = {
  /** @param {string} id */
  async build (id) {
    const res = await request(`${upstream}/reports/${id}`)
    return { id, report: await res.body.text() }
  }
}

const app = Fastify({ logger: true })
await app.register(hangup, { autoBind: true })

// If the client hangs up, the upstream call above is cancelled all the same.
app.get('/reports/:id', async (req) => reports.build(/** @type {{ id: string }} */ (req.params).id))

await app.listen({ port: Number(process.env.PORT ?? 3000) })
