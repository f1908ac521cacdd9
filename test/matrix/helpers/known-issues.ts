import { isHttp2, type Transport } from '../../helpers/transport.js'

/**
 * On HTTP/2 a reset stream makes the compat response emit 'finish'
 * (`writableFinished: true`), so Fastify's end-of-stream watch on the response
 * (`sendStream` / `sendWebStream` in fastify/lib/reply.js) sees no premature
 * close and does not mark the stream error as logged; the body it was piping
 * then fails (undici destroys it with the abort reason, the plugin's
 * ClientDisconnectedError; bare Fastify without the plugin gets undici's
 * UND_ERR_ABORTED) and Fastify's log controller `streamError` logs that at
 * warn: "response terminated with an error with headers already sent".
 * On HTTP/1.1 the premature close of the response is seen first and logged
 * at info ("stream closed prematurely"), which suppresses the warn.
 * So the contract "nothing at warn or above for a hang-up" does not hold for
 * an HTTP/2 hang-up mid-response. Node's side is nodejs/node#38916 (an HTTP/2
 * response reports itself finished without `end()`).
 *
 * The matrix asserts this known limitation as it is, not as a todo: the one
 * warn line, and nothing else above info. If Node or Fastify change it (no
 * line: fixed; another line: a new problem), the test fails, and whoever
 * sees it re-reads this.
 */
export const H2_RESPONSE_WARN = 'response terminated with an error with headers already sent'

/** A log line above info as the matrix compares them: level, message, and the error's code (or type). */
export function loudLine (line: { level: number, msg?: string, err?: { code?: string, type?: string } }): string {
  return `${line.level} ${line.msg ?? ''} (${line.err?.code ?? line.err?.type ?? '-'})`
}

/** What a hang-up case logs above info: nothing, except for the known limitation above. */
export function knownLoudLines (transport: Transport, phase: string): string[] {
  return isHttp2(transport) && phase === 'response' ? [`40 ${H2_RESPONSE_WARN} (FST_HANGUP_CLIENT_DISCONNECTED)`] : []
}
