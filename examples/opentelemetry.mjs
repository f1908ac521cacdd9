import { subscribe } from 'node:diagnostics_channel'
import { trace } from '@opentelemetry/api'
import Fastify from 'fastify'
import hangup, { channels } from 'fastify-hangup'
import { request } from 'undici'

const upstream = process.env.UPSTREAM ?? 'http://127.0.0.1:3001'

// The span active when each request starts (your HTTP instrumentation's),
// kept by request: an event may come from outside the request's async
// context (the grace deadline's timer cancels the stragglers' calls).
const spans = new WeakMap()

subscribe(channels.hangup, (message) => {
  const { request, phase } = /** @type {import('fastify-hangup').HangupEvent} */ (message)
  const span = spans.get(request)
  span?.addEvent('client hung up', { 'hangup.phase': phase })
  span?.setAttribute('hangup.phase', phase)
})
subscribe(channels.cancel, (message) => {
  const { request, reason, client } = /** @type {import('fastify-hangup').CancelEvent} */ (message)
  const span = spans.get(request)
  span?.addEvent('upstream call cancelled', { 'hangup.cancel.reason': reason, 'hangup.cancel.client': client })
  span?.setAttribute('hangup.cancel.reason', reason)
})

const app = Fastify({ logger: true })
await app.register(hangup, { autoBind: true })
app.addHook('onRequest', async (req) => {
  const span = trace.getActiveSpan()
  if (span !== undefined) spans.set(req, span)
})

app.get('/search', async () => {
  const res = await request(`${upstream}/search`) // cancelled if the client hangs up
  return res.body.text()
})

await app.listen({ port: Number(process.env.PORT ?? 3000) })
