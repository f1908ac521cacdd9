import type { FastifyReply } from 'fastify'
import { attempt } from './attempt.js'

/**
 * The generic body of a request answered by the plugin on a crash (500) or
 * at the grace deadline (503): the shape of Fastify's own error bodies, and
 * never the error's message or stack, which may hold secrets.
 */
export function genericBody (statusCode: 500 | 503): string {
  const error = REASON_PHRASES[statusCode]
  return JSON.stringify({ statusCode, error, message: error })
}

/**
 * The two phrases, written out rather than read from `node:http`'s
 * STATUS_CODES: in the ESM build, importing a name from `node:http` runs its
 * lazy getters, and on Node 22 one of them creates undici's global
 * dispatcher from Node's bundled copy, which `autoBind` then found in place
 * of the user's (caught by the autoBind README example on Node 22).
 */
const REASON_PHRASES = { 500: 'Internal Server Error', 503: 'Service Unavailable' } as const

/** The raw response parts the fallbacks use. */
interface RawAnswer {
  readonly headersSent: boolean
  readonly writableEnded: boolean
  writeHead (statusCode: number, headers: Record<string, string | number>): unknown
  end (body: string): unknown
  destroy (): unknown
}

function isHttp2 (reply: FastifyReply): boolean {
  return reply.request.raw.httpVersionMajor === 2
}

/**
 * Turns a reply that has not started into the generic answer and returns its
 * body. Headers the handler set before the crash (cookies, caching) are
 * dropped: the answer is the generic one.
 */
export function makeGeneric (reply: FastifyReply, statusCode: 500 | 503, endConnection = true): string {
  for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name)
  reply.code(statusCode).header('content-type', 'application/json; charset=utf-8')
  if (closesConnection(reply, endConnection)) reply.header('connection', 'close')
  return genericBody(statusCode)
}

/**
 * Whether the answer says `Connection: close`. HTTP/2 forbids
 * connection-specific headers (RFC 9113 §8.2.2); there the session's GOAWAY
 * does what `Connection: close` does on HTTP/1.1. On HTTP/1.1 not when more
 * requests were pipelined behind this one (`endConnection` false): Node ends
 * the connection after a `Connection: close` answer and drops theirs.
 */
function closesConnection (reply: FastifyReply, endConnection: boolean): boolean {
  return endConnection && !isHttp2(reply)
}

function answerRaw (reply: FastifyReply, res: RawAnswer, statusCode: 500 | 503, body: string, endConnection: boolean): void {
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body)
  }
  if (closesConnection(reply, endConnection)) headers.connection = 'close'
  res.writeHead(statusCode, headers)
  res.end(body)
}

/**
 * Answers a request the plugin must end (the one that crashed: 500; a
 * straggler at the grace deadline: 503) with `Connection: close`, unless
 * `endConnection` is false (requests pipelined behind it). A response
 * whose headers are already out cannot be answered: its connection is
 * destroyed, so the client sees a cut, not a truncated success.
 *
 * Runs inside `uncaughtException` handling, where a throw would end the
 * process with exit code 7: every step that can fail falls back to the next,
 * simpler one (Fastify's reply, the raw response, destroying the socket).
 */
export function answerGenerically (reply: FastifyReply, statusCode: 500 | 503, endConnection = true): void {
  const res = reply.raw as unknown as RawAnswer
  if (res.writableEnded) return
  if (res.headersSent) {
    destroyQuietly(res)
    return
  }
  // Through Fastify first, so `onSend`/`onResponse` hooks (metrics) and the
  // access log see the status.
  try {
    if (!reply.sent) {
      reply.send(makeGeneric(reply, statusCode, endConnection))
      return
    }
  } catch {}
  try {
    if (!res.headersSent) {
      answerRaw(reply, res, statusCode, genericBody(statusCode), endConnection)
      return
    }
  } catch {}
  destroyQuietly(res)
}

function destroyQuietly (res: RawAnswer): void {
  attempt(() => res.destroy())
}
