import { subscribe } from 'node:diagnostics_channel'
import Fastify from 'fastify'
import hangup, { channels } from 'fastify-hangup'
import { Counter, Gauge, Registry } from 'prom-client'
import { request } from 'undici'

const upstream = process.env.UPSTREAM ?? 'http://127.0.0.1:3001'
const registry = new Registry()

const hangups = new Counter({
  name: 'http_client_hangups_total',
  help: 'Requests whose client hung up, by phase and route',
  labelNames: ['phase', 'route'],
  registers: [registry]
})
const cancelled = new Counter({
  name: 'upstream_calls_cancelled_total',
  help: 'Upstream calls cancelled with their request, by reason',
  labelNames: ['reason', 'client'],
  registers: [registry]
})
const inflight = new Gauge({
  name: 'http_requests_in_flight',
  help: 'Requests whose response has not closed',
  registers: [registry]
})
const fatalErrors = new Counter({
  name: 'fatal_errors_total',
  help: 'Fatal errors (uncaught exceptions, unhandled rejections)',
  registers: [registry]
})

subscribe(channels.hangup, (message) => {
  const { request, phase } = /** @type {import('fastify-hangup').HangupEvent} */ (message)
  hangups.inc({ phase, route: request.routeOptions.url ?? 'unknown' })
})
subscribe(channels.cancel, (message) => {
  const { reason, client } = /** @type {import('fastify-hangup').CancelEvent} */ (message)
  cancelled.inc({ reason, client })
})
subscribe(channels.fatal, () => fatalErrors.inc())

const app = Fastify({ logger: true })
await app.register(hangup, { autoBind: true })

app.get('/search', async () => {
  const res = await request(`${upstream}/search`) // cancelled if the client hangs up
  return res.body.text()
})

app.get('/crash', async () => {
  setTimeout(() => { throw new Error('bug') }, 10) // fatal: a 500, then a graceful close
  return new Promise(() => {})
})

// On a port of their own: still scraped while a graceful close drains the app.
const metrics = Fastify({ logger: true })
metrics.get('/metrics', async (req, reply) => {
  inflight.set(app.hangup.stats().inflight)
  return reply.type(registry.contentType).send(await registry.metrics())
})

await app.listen({ port: Number(process.env.PORT ?? 3000) })
await metrics.listen({ port: Number(process.env.METRICS_PORT ?? 9464) })
