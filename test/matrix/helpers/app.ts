import { EventEmitter } from 'node:events'
import { PassThrough, Readable, Writable, finished } from 'node:stream'
import { pipeline as streamPipeline } from 'node:stream/promises'
import type { TestContext } from 'node:test'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Agent, fetch, pipeline, request, stream } from 'undici'
import hangup from '../../../lib/index.js'
import { recordSettled, type CallProbe } from '../../helpers/probe.js'
import { createApp, type Transport } from '../../helpers/transport.js'

/** The undici API the route uses to call the upstream. */
export type Api = 'request' | 'stream' | 'pipeline' | 'fetch'

export const APIS: readonly Api[] = ['request', 'stream', 'pipeline', 'fetch']

/**
 * 'buffer': the route reads the whole upstream answer, then replies (the
 * client waits during upload, upstream headers and upstream body).
 * 'stream': the route sends the upstream body to the client as it comes.
 */
export type Mode = 'buffer' | 'stream'

/** What the route saw; the test reads it. */
export interface Probe extends CallProbe {
  /** `request.signal.reason`, captured by an 'abort' listener added in onRequest. */
  reasons: unknown[]
  /** What the route's undici call rejected with (buffer mode, or before the headers in stream mode). */
  rejections: unknown[]
  /** What the body sent to the client failed with (stream mode, after the headers). */
  streamErrors: unknown[]
  /** The route got the whole upstream answer; `aborted` is `request.signal.aborted` at that moment. */
  completed: Array<{ aborted: boolean }>
  /** The raw response's state when it emitted 'close'. */
  resClose: Array<{ writableEnded: boolean, writableFinished: boolean, headersSent: boolean }>
  /** Requests whose body parsing started (preParsing ran). */
  parsing: number
  /** Route calls that got the upstream's response headers. */
  upstreamHeaders: number
}

export interface MatrixApp {
  app: FastifyInstance
  origin: string
  probe: Probe
}

export interface UpstreamCall {
  method: 'GET' | 'POST'
  headers: Record<string, string>
  body?: string | Readable
}

type Buffered = (url: string, call: UpstreamCall, signal: AbortSignal, dispatcher: Agent, onHeaders: () => void) => Promise<number>
type Streamed = (url: string, call: UpstreamCall, signal: AbortSignal, dispatcher: Agent, onHeaders: () => void) => Promise<Readable | ReadableStream | null>

function bodySource (body: UpstreamCall['body']): Readable {
  if (body === undefined) return Readable.from([])
  if (typeof body === 'string') return Readable.from([Buffer.from(body)])
  return body
}

function counter (onChunk: (n: number) => void): Writable {
  return new Writable({
    write (chunk: Buffer, _enc, cb) {
      onChunk(chunk.length)
      cb()
    }
  })
}

/** Each API reads the whole upstream answer and resolves with its size. */
export const BUFFERED: Record<Api, Buffered> = {
  async request (url, call, signal, dispatcher, onHeaders) {
    const res = await request(url, { method: call.method, headers: call.headers, body: call.body, signal, dispatcher })
    onHeaders()
    return (await res.body.arrayBuffer()).byteLength
  },
  async stream (url, call, signal, dispatcher, onHeaders) {
    let bytes = 0
    await stream(url, { method: call.method, headers: call.headers, body: call.body, signal, dispatcher }, () => {
      onHeaders()
      return counter((n) => { bytes += n })
    })
    return bytes
  },
  async pipeline (url, call, signal, dispatcher, onHeaders) {
    let bytes = 0
    const duplex = pipeline(url, { method: call.method, headers: call.headers, signal, dispatcher }, ({ body }) => {
      onHeaders()
      return body
    })
    await streamPipeline(bodySource(call.body), duplex, counter((n) => { bytes += n }))
    return bytes
  },
  async fetch (url, call, signal, dispatcher, onHeaders) {
    const res = await fetch(url, { method: call.method, headers: call.headers, body: call.body, signal, dispatcher, duplex: 'half' })
    onHeaders()
    return (await res.arrayBuffer()).byteLength
  }
}

/** Each API resolves, once the upstream headers arrived, with a body to send to the client. */
const STREAMED: Record<Api, Streamed> = {
  async request (url, call, signal, dispatcher, onHeaders) {
    const res = await request(url, { method: call.method, headers: call.headers, body: call.body, signal, dispatcher })
    onHeaders()
    return res.body
  },
  async stream (url, call, signal, dispatcher, onHeaders) {
    return await new Promise<Readable>((resolve, reject) => {
      const through = new PassThrough()
      stream(url, { method: call.method, headers: call.headers, body: call.body, signal, dispatcher }, () => {
        onHeaders()
        resolve(through)
        return through
      }).catch((err: unknown) => {
        reject(err)
        through.destroy(err as Error)
      })
    })
  },
  async pipeline (url, call, signal, dispatcher, onHeaders) {
    return await new Promise<Readable>((resolve, reject) => {
      const duplex = pipeline(url, { method: call.method, headers: call.headers, signal, dispatcher }, ({ body }) => {
        onHeaders()
        resolve(duplex)
        return body
      })
      // Only the writable side: the readable side is what the client gets.
      finished(duplex, { readable: false }, (err) => { if (err) reject(err) })
      bodySource(call.body).pipe(duplex)
    })
  },
  async fetch (url, call, signal, dispatcher, onHeaders) {
    const res = await fetch(url, { method: call.method, headers: call.headers, body: call.body, signal, dispatcher, duplex: 'half' })
    onHeaders()
    return res.body as ReadableStream | null
  }
}

function upstreamCall (request: FastifyRequest): UpstreamCall {
  if (request.method === 'GET') return { method: 'GET', headers: {} }
  if (request.headers['content-type'] === 'application/json') {
    return { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request.body) }
  }
  return { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: request.body as Readable }
}

export interface MatrixAppOptions {
  /** Run after the test, before the app closes (close the clients here). */
  beforeAppClose?: Array<() => Promise<void>>
  transport: Transport
  api: Api
  upstreamUrl: string
  /** The pino destination (captureLogs().stream). */
  logStream: Writable
}

/**
 * A Fastify app for `transport` with the plugin and `/proxy/:mode` (GET and
 * POST), which calls the upstream with `api` and `signal: request.signal`.
 * `application/octet-stream` bodies are passed through as the raw stream and
 * forwarded to the upstream as they arrive. `GET /ok` answers without upstream.
 * The app and its undici Agent are closed after the test (after `beforeAppClose`).
 */
export async function startMatrixApp (t: TestContext, opts: MatrixAppOptions): Promise<MatrixApp> {
  const { transport, api, upstreamUrl } = opts
  const beforeAppClose = opts.beforeAppClose ?? []
  const app = createApp(transport, opts.logStream)
  const dispatcher = new Agent({ keepAliveTimeout: 10_000 })
  // Clients first (an HTTP/2 app waits for its sessions to close), then the app, then its upstream agent.
  t.after(async () => {
    for (const close of beforeAppClose) await close()
    await app.close()
    await dispatcher.destroy()
  })

  const probe: Probe = {
    reasons: [],
    rejections: [],
    streamErrors: [],
    completed: [],
    resClose: [],
    settled: 0,
    parsing: 0,
    upstreamHeaders: 0,
    events: new EventEmitter()
  }
  const changed = (): void => { probe.events.emit('change') }

  await app.register(hangup)
  app.addContentTypeParser('application/octet-stream', (_request, payload, done) => { done(null, payload) })

  app.addHook('onRequest', (request, reply, done) => {
    if (request.url.startsWith('/proxy/')) {
      // Runs after the plugin's own onRequest (registered first).
      const signal = request.signal
      signal.addEventListener('abort', () => {
        probe.reasons.push(signal.reason)
        changed()
      }, { once: true })
      const res = reply.raw
      res.on('close', () => {
        probe.resClose.push({ writableEnded: res.writableEnded, writableFinished: res.writableFinished, headersSent: res.headersSent })
        changed()
      })
    }
    done()
  })
  app.addHook('preParsing', (request, _reply, payload, done) => {
    if (request.url.startsWith('/proxy/')) {
      probe.parsing++
      changed()
    }
    done(null, payload)
  })

  app.get('/ok', async () => 'ok')

  app.route({
    method: ['GET', 'POST'],
    url: '/proxy/:mode',
    handler: async (request, reply) => {
      const mode = (request.params as { mode: Mode }).mode
      const signal = request.signal
      const onHeaders = (): void => {
        probe.upstreamHeaders++
        changed()
      }
      return await recordSettled(probe, async () => {
        if (mode === 'buffer') {
          const bytes = await BUFFERED[api](upstreamUrl, upstreamCall(request), signal, dispatcher, onHeaders)
          probe.completed.push({ aborted: signal.aborted })
          return { bytes, aborted: signal.aborted }
        }
        const body = await STREAMED[api](upstreamUrl, upstreamCall(request), signal, dispatcher, onHeaders)
        if (body instanceof Readable) {
          finished(body, (err) => {
            if (err) probe.streamErrors.push(err)
            changed()
          })
        }
        return reply.header('content-type', 'application/octet-stream').send(body)
      })
    }
  })

  const origin = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, origin, probe }
}
