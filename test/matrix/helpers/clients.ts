import { once } from 'node:events'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import { within } from '../../helpers/util.js'
import { PATIENCE_MS } from '../../helpers/app.js'
import type { Transport } from '../../helpers/transport.js'

/** One request in flight from the test client. Its promises only resolve (never reject). */
export interface Exchange {
  /** The response status, once its headers arrived. */
  status: Promise<number>
  /** The first byte of the response body arrived. */
  firstChunk: Promise<void>
  /** The whole response body, once it ended. */
  body: Promise<string>
  /** HTTP/1: whether the request went out on a socket that already served one (`req.reusedSocket`). */
  reusedSocket: Promise<boolean | null>
  /** What the client saw fail (after a hang-up: expected). */
  errors: Error[]
  write (chunk: Buffer | string): void
  end (chunk?: Buffer | string): void
  /** HTTP/1: destroy the socket. HTTP/2: reset the stream with NGHTTP2_CANCEL. */
  hangUp (): void
}

export interface MatrixClient {
  transport: Transport
  request (method: string, path: string, headers: Record<string, string | number>, hasBody: boolean): Exchange
  /** A complete request; rejects after `ms`. */
  complete (method: string, path: string, ms: number, body?: string, headers?: Record<string, string | number>): Promise<{ status: number, body: string }>
  close (): Promise<void>
}

interface Deferred<T> { promise: Promise<T>, resolve: (value: T) => void }

function deferred<T> (): Deferred<T> {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((_resolve) => { resolve = _resolve })
  return { promise, resolve }
}

function http1Client (transport: 'h1' | 'h1-reuse' | 'https', origin: URL, ca: Buffer | undefined): MatrixClient {
  const agent = transport === 'h1-reuse' ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : false
  const port = Number(origin.port)
  const open = new Set<http.ClientRequest>()
  function request (method: string, path: string, headers: Record<string, string | number>): Exchange {
    const status = deferred<number>()
    const firstChunk = deferred<void>()
    const body = deferred<string>()
    const reusedSocket = deferred<boolean | null>()
    const errors: Error[] = []
    const options = { host: '127.0.0.1', port, method, path, headers, agent }
    const req = transport === 'https'
      ? https.request({ ...options, ca })
      : http.request(options)
    open.add(req)
    req.on('close', () => { open.delete(req) })
    req.on('error', (err) => { errors.push(err) })
    req.on('socket', () => { reusedSocket.resolve(req.reusedSocket) })
    req.on('response', (res) => {
      status.resolve(res.statusCode ?? 0)
      const parts: Buffer[] = []
      res.on('data', (chunk: Buffer) => {
        parts.push(chunk)
        firstChunk.resolve()
      })
      res.on('end', () => { body.resolve(Buffer.concat(parts).toString()) })
      res.on('error', (err) => { errors.push(err) })
    })
    return {
      status: status.promise,
      firstChunk: firstChunk.promise,
      body: body.promise,
      reusedSocket: reusedSocket.promise,
      errors,
      write: (chunk) => { req.write(chunk) },
      end: (chunk) => { req.end(chunk) },
      hangUp: () => { req.destroy() }
    }
  }
  return {
    transport,
    request,
    complete: (method, path, ms, body, headers = {}) => completeRequest(request, method, path, ms, body, headers),
    async close () {
      // What a failed case left open would keep the app's close waiting.
      for (const req of open) req.destroy()
      if (agent !== false) agent.destroy()
    }
  }
}

function http2Client (transport: 'h2c' | 'h2-tls', origin: URL, ca: Buffer | undefined): MatrixClient {
  const session = http2.connect(origin, { ca })
  session.on('error', () => {})
  const open = new Set<http2.ClientHttp2Stream>()
  function request (method: string, path: string, headers: Record<string, string | number>, hasBody: boolean): Exchange {
    const status = deferred<number>()
    const firstChunk = deferred<void>()
    const body = deferred<string>()
    const errors: Error[] = []
    const stream = session.request({ ':method': method, ':path': path, ...headers }, { endStream: !hasBody })
    open.add(stream)
    stream.on('close', () => { open.delete(stream) })
    stream.on('error', (err) => { errors.push(err) })
    stream.on('response', (h) => { status.resolve(Number(h[':status'])) })
    const parts: Buffer[] = []
    stream.on('data', (chunk: Buffer) => {
      parts.push(chunk)
      firstChunk.resolve()
    })
    stream.on('end', () => { body.resolve(Buffer.concat(parts).toString()) })
    return {
      status: status.promise,
      firstChunk: firstChunk.promise,
      body: body.promise,
      reusedSocket: Promise.resolve(null),
      errors,
      write: (chunk) => { stream.write(chunk) },
      end: (chunk) => { if (!stream.writableEnded) stream.end(chunk) },
      hangUp: () => { stream.close(http2.constants.NGHTTP2_CANCEL) }
    }
  }
  return {
    transport,
    request,
    complete: (method, path, ms, body, headers = {}) => completeRequest(request, method, path, ms, body, headers),
    async close () {
      if (session.closed || session.destroyed) return
      // A graceful close waits for open streams: cancel what a failed case left open.
      for (const stream of open) stream.close(http2.constants.NGHTTP2_CANCEL)
      const closed = once(session, 'close')
      session.close()
      try {
        await within(closed, PATIENCE_MS, 'the HTTP/2 client session to close')
      } catch {
        session.destroy()
      }
    }
  }
}

async function completeRequest (
  request: MatrixClient['request'],
  method: string,
  path: string,
  ms: number,
  body: string | undefined,
  headers: Record<string, string | number>
): Promise<{ status: number, body: string }> {
  const all = body === undefined ? headers : { 'content-length': Buffer.byteLength(body), ...headers }
  const exchange = request(method, path, all, body !== undefined)
  exchange.end(body)
  return await within((async () => ({ status: await exchange.status, body: await exchange.body }))(), ms, `${method} ${path} to complete`)
}

/** A client for `transport` to the app at `origin` (`ca`: the certificate to trust for TLS). */
export function connectClient (transport: Transport, origin: string, ca?: Buffer): MatrixClient {
  const url = new URL(origin)
  if (transport === 'h2c' || transport === 'h2-tls') return http2Client(transport, url, ca)
  return http1Client(transport, url, ca)
}
