import { EventEmitter } from 'node:events'
import type { AddressInfo, Socket } from 'node:net'
import { Transform, type Readable } from 'node:stream'
import type { TestContext } from 'node:test'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Agent, request, type Dispatcher } from 'undici'
import hangup from '../../../lib/index.js'
import type { FastifyHangupOptions } from '../../../lib/options.js'
import type { HangupStats } from '../../../lib/stats.js'
import type { FaultUpstream } from './upstream.js'
import { captureLogs } from '../../helpers/logs.js'
import { recordSettled, type CallProbe } from '../../helpers/probe.js'
import { createApp, type Transport } from '../../helpers/transport.js'

/** What the app's routes saw; the test reads it. */
export interface FaultProbe extends CallProbe {
  /** Requests that reached the plugin's onRequest (and ours, registered after it). */
  requests: number
  /** Upstream calls that got their response headers. */
  upstreamAnswers: number
  /** Body bytes Fastify's body reader got, over all requests. */
  bodyBytes: number
  /** Every request.signal a route read (kept to count the listeners left on them). */
  signals: AbortSignal[]
}

export interface FaultApp {
  app: FastifyInstance
  origin: string
  port: number
  transport: Transport
  logs: ReturnType<typeof captureLogs>
  probe: FaultProbe
  /** The routes' undici Agent (the app's own, so its listeners can be counted). */
  dispatcher: Agent
  stats (): HangupStats
  /** Connections the server holds now (TCP sockets, whatever runs on them). */
  openConnections (): number
}

/** The plugin options of the suite: the crash handling on, but it must never fire (stats().fatal stays 0). */
export const IN_PROCESS: FastifyHangupOptions = { fatal: { exit: false, signals: [] } }

export const PLAIN_BYTES = 256 * 1024

/**
 * How a route's upstream call is tied to its request:
 * - signal: `signal: request.signal`, on the app's Agent;
 * - none: no signal, on the app's Agent (a client library that takes none): only the upstream ends it;
 * - global: no signal, on undici's global dispatcher, which `autoBind` binds.
 */
type Binding = 'signal' | 'none' | 'global'

interface RouteSpec {
  binding: Binding
  /** Send the upstream body to the client as it comes, instead of reading it all and answering `{ bytes }`. */
  streamed: boolean
}

/** The upstream call of a request: a JSON body re-sent, an octet-stream body forwarded as it arrives. */
function forwardedBody (req: FastifyRequest): { body?: string | Readable, headers: Record<string, string> } {
  if (req.body === undefined || req.body === null) return { headers: {} }
  if (req.headers['content-type'] === 'application/json') return { body: JSON.stringify(req.body), headers: { 'content-type': 'application/json' } }
  return { body: req.body as Readable, headers: { 'content-type': 'application/octet-stream' } }
}

/** `/stall?upload` for a request to `/proxy/stall?upload`: the fault and the query go upstream as they are. */
function upstreamPath (req: FastifyRequest): string {
  const query = req.url.indexOf('?')
  return `/${(req.params as { fault: string }).fault}${query < 0 ? '' : req.url.slice(query)}`
}

/** Counts the body bytes Fastify's parser reads, so a client can wait until the server has its k bytes. */
function countingStream (probe: FaultProbe): Transform {
  return new Transform({
    transform (chunk: Buffer, _enc, cb) {
      probe.bodyBytes += chunk.length
      probe.events.emit('change')
      cb(null, chunk)
    }
  })
}

/** A route handler that calls the fault upstream as `spec` says, recording what happens in `probe`. */
function proxyRoute (upstream: FaultUpstream, dispatcher: Dispatcher, probe: FaultProbe, spec: RouteSpec) {
  const changed = (): void => { probe.events.emit('change') }
  return async function proxy (req: FastifyRequest, reply: FastifyReply): Promise<unknown> {
    let signal: AbortSignal | undefined
    if (spec.binding === 'signal') {
      signal = req.signal
      probe.signals.push(signal)
    }
    return await recordSettled(probe, async () => {
      const { body, headers } = forwardedBody(req)
      const res = await request(`${upstream.url}${upstreamPath(req)}`, {
        method: req.method as Dispatcher.HttpMethod,
        body,
        headers,
        signal,
        dispatcher: spec.binding === 'global' ? undefined : dispatcher
      })
      probe.upstreamAnswers++
      changed()
      if (spec.streamed) return reply.header('content-type', 'application/octet-stream').send(res.body)
      return { bytes: (await res.body.arrayBuffer()).byteLength }
    })
  }
}

/**
 * A Fastify app for `transport` with the plugin (`options`) and these
 * routes, each calling the fault upstream's `/:fault` (query included) with
 * undici:
 * - `GET|POST /proxy/:fault`: `signal: request.signal`, reads the whole answer, replies `{ bytes }`;
 * - `GET /timeout/:fault`: the same, with Fastify's `handlerTimeout: 300`;
 * - `GET /stream/:fault`: `signal: request.signal`, sends the upstream body to the client as it comes;
 * - `GET /unbound/:fault`: no signal (a client library that takes none);
 * - `GET /bound/:fault`: no signal, on undici's global dispatcher (bound by `autoBind`);
 * - `GET /plain`: a 256 KiB body, no upstream; `GET /ok`: 'ok'.
 * A POST's `application/octet-stream` body is forwarded as it arrives.
 * Closed (with its Agent) after the test.
 */
export async function startFaultApp (t: TestContext, upstream: FaultUpstream, transport: Transport = 'h1', options: FastifyHangupOptions = IN_PROCESS): Promise<FaultApp> {
  const logs = captureLogs()
  const app = createApp(transport, logs.stream)
  const dispatcher = new Agent({ keepAliveTimeout: 10_000 })
  t.after(async () => {
    await app.close()
    await dispatcher.destroy()
  })
  const probe: FaultProbe = { requests: 0, settled: 0, rejections: [], upstreamAnswers: 0, bodyBytes: 0, signals: [], events: new EventEmitter() }
  probe.events.setMaxListeners(0)
  let open = 0
  app.server.on('connection', (socket: Socket) => {
    open++
    socket.on('close', () => {
      open--
      probe.events.emit('change')
    })
  })

  await app.register(hangup, options)
  app.addContentTypeParser('application/octet-stream', (_request, payload, done) => { done(null, payload) })
  app.addHook('onRequest', (_request, _reply, done) => {
    probe.requests++
    probe.events.emit('change')
    done()
  })
  app.addHook('preParsing', (_request, _reply, payload, done) => { done(null, payload.pipe(countingStream(probe))) })

  const route = (spec: RouteSpec): ReturnType<typeof proxyRoute> => proxyRoute(upstream, dispatcher, probe, spec)
  app.route({ method: ['GET', 'POST'], url: '/proxy/:fault', handler: route({ binding: 'signal', streamed: false }) })
  app.get('/timeout/:fault', { handlerTimeout: 300 }, route({ binding: 'signal', streamed: false }))
  app.get('/stream/:fault', route({ binding: 'signal', streamed: true }))
  app.get('/unbound/:fault', route({ binding: 'none', streamed: false }))
  app.get('/bound/:fault', route({ binding: 'global', streamed: false }))
  app.get('/plain', async (_req, reply) => reply.header('content-type', 'application/octet-stream').send(Buffer.alloc(PLAIN_BYTES, 97)))
  app.get('/ok', async () => 'ok')

  const origin = await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    app,
    origin,
    port: (app.server.address() as AddressInfo).port,
    transport,
    logs,
    probe,
    dispatcher,
    stats: () => app.hangup.stats(),
    openConnections: () => open
  }
}
