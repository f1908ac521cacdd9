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
 * an HTTP/2 hang-up mid-response.
 */
export const H2_RESPONSE_WARN_TODO = 'contract gap: on HTTP/2, a client reset mid-response makes Fastify log "response terminated with an error with headers already sent" at warn'

/** The todo reason for the "nothing above info" check of a case, else undefined. */
export function knownLogIssue (transport: Transport, phase: string): string | undefined {
  return isHttp2(transport) && phase === 'response' ? H2_RESPONSE_WARN_TODO : undefined
}
