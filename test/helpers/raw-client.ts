import { once } from 'node:events'
import net from 'node:net'
import type { TestContext } from 'node:test'
import { PATIENCE_MS, until } from './app.js'
import { within } from './util.js'

/**
 * A raw HTTP/1.1 client on a plain TCP socket, for what node:http and undici
 * will not do: hang up at a chosen moment or byte (mid request line, mid
 * headers, mid body), with a FIN or a RST, pipeline requests, or send bytes
 * that are not HTTP at all. Every wait is bounded by PATIENCE_MS.
 */

/** 'fin': a normal close; 'rst': a reset (what a killed client or a proxy timeout looks like). */
export type HangUp = 'fin' | 'rst'

export const HANG_UPS: readonly HangUp[] = ['fin', 'rst']

export interface RawRequest {
  /** Default GET. */
  method?: string
  /** Default '/'. */
  path?: string
  /** Sent in this order after `host`. A body without content-length or transfer-encoding here gets a content-length. */
  headers?: Record<string, string | number>
  body?: string
}

/** The text of one HTTP/1.1 request (or, without a body, of its head). */
export function requestText ({ method = 'GET', path = '/', headers = {}, body = '' }: RawRequest): string {
  const all: Record<string, string | number> = { host: '127.0.0.1', ...headers }
  const framed = Object.keys(all).some((name) => /^(content-length|transfer-encoding)$/i.test(name))
  if (body !== '' && !framed) all['content-length'] = Buffer.byteLength(body)
  const lines = Object.entries(all).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  return `${method} ${path} HTTP/1.1\r\n${lines}\r\n${body}`
}

/**
 * A TCP connection to 127.0.0.1 (`target`: a port, or a URL whose port is
 * taken), destroyed when the test ends. Its errors are ignored: a client that
 * hangs up, or is hung up on, is what these tests do on purpose.
 */
export async function connectRaw (t: TestContext, target: number | string): Promise<net.Socket> {
  const port = typeof target === 'number' ? target : Number(new URL(target).port)
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  t.after(() => { socket.destroy() })
  await within(once(socket, 'connect'), PATIENCE_MS, 'a connection to the app')
  return socket
}

/**
 * Connects and writes `request`: a RawRequest, or the exact text or bytes to
 * send (garbage, a request cut short). `end`: then close the sending side
 * (a FIN right after the request, as a client that will send nothing more).
 */
export async function sendRaw (t: TestContext, target: number | string, request: RawRequest | string | Buffer, options: { end?: boolean } = {}): Promise<net.Socket> {
  const socket = await connectRaw(t, target)
  const bytes = typeof request === 'string' || Buffer.isBuffer(request) ? request : requestText(request)
  if (options.end === true) socket.end(bytes)
  else socket.write(bytes)
  return socket
}

/** Hangs up: 'fin' destroys the socket, 'rst' resets the connection. */
export function hangUp (socket: net.Socket, how: HangUp = 'fin'): void {
  if (how === 'rst') socket.resetAndDestroy()
  else socket.destroy()
}

/**
 * Sends `request` and hangs up (FIN) once `upstream` has received `calls`
 * requests in all: the route is then waiting on its upstream call.
 */
export async function hangUpWhenCalled (t: TestContext, target: number | string, request: RawRequest, upstream: { received (): number }, calls = 1): Promise<void> {
  const socket = await sendRaw(t, target, request)
  await until(() => upstream.received() >= calls, 'the upstream to receive the call')
  hangUp(socket)
}

/** Resolves once the server closed the connection (whatever it sent first is read and dropped). */
export async function closed (socket: net.Socket): Promise<void> {
  if (socket.destroyed) return
  socket.resume()
  await within(once(socket, 'close'), PATIENCE_MS, 'the server to close the connection')
}

/** Every byte the server sends from now on, as text (latin1), read when called. */
export function received (socket: net.Socket): () => string {
  let text = ''
  socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1') })
  return () => text
}

export interface ResponseStart {
  /** Bytes received, counting from the first. */
  received: number
  /** Bytes of the response head, its blank line included. */
  headLength: number
  /** The head's text (status line and headers). */
  head: string
  /** The status code of the status line. */
  status: number
}

/**
 * Resolves once `socket` received at least `bytes(headLength)` bytes (counting
 * from the first, once the response head is complete); stops reading there.
 * Rejects if the connection closes first.
 */
export async function readUntil (socket: net.Socket, bytes: (headLength: number) => number): Promise<ResponseStart> {
  let received = 0
  let head = Buffer.alloc(0)
  let headLength = -1
  let onData: ((chunk: Buffer) => void) | undefined
  try {
    return await within(new Promise((resolve, reject) => {
      onData = (chunk) => {
        received += chunk.length
        if (headLength < 0) {
          head = Buffer.concat([head, chunk])
          const end = head.indexOf('\r\n\r\n')
          if (end >= 0) headLength = end + 4
        }
        if (headLength >= 0 && received >= bytes(headLength)) {
          socket.pause()
          const text = head.subarray(0, headLength).toString('latin1')
          resolve({ received, headLength, head: text, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0) })
        }
      }
      socket.on('data', onData)
      socket.once('close', () => reject(new Error(`the connection closed after ${received} bytes`)))
    }), PATIENCE_MS, 'the response bytes')
  } finally {
    if (onData !== undefined) socket.removeListener('data', onData)
  }
}

/** Resolves once the response head has arrived. */
export async function readHead (socket: net.Socket): Promise<ResponseStart> {
  return await readUntil(socket, (headLength) => headLength)
}

/** Resolves with the connection error of a new TCP connection ('connected' if there is none; ECONNREFUSED once the listener is closed). */
export function connectError (port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve('connected') })
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
  })
}
