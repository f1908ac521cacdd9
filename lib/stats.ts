import type { DisconnectPhase } from './errors.js'

/** A snapshot of the plugin's counters, from `fastify.hangup.stats()`. */
export interface HangupStats {
  /** Requests whose response has not closed yet. */
  inflight: number
  /** Client hang-ups since start, by the phase the request was in. */
  disconnects: Record<DisconnectPhase, number>
  /** Fatal errors handled while this app was registered (uncaught, unhandled rejections, `isFatal`). */
  fatal: number
  /**
   * Rejections nobody handled whose reason is one this plugin cancelled this
   * app's work with (a floating call after the response, a hang-up, an
   * error): logged at `debug`, never fatal.
   */
  unhandledCancellations: number
  /** Upstream calls bound to a request (`autoBind`, `interceptor()`), and those its requests cancelled, by reason. */
  upstream: {
    bound: number
    cancelled: Record<CancelReason, number>
    /** The same calls by client: undici (`autoBind`'s global dispatcher, `interceptor()`) and `node:http` / `node:https`. */
    byClient: Record<UpstreamClient, ClientCounts>
  }
}

/** The client an upstream call was made with: undici (its dispatchers, Node's `fetch`), or `node:http` / `node:https`. */
export type UpstreamClient = 'undici' | 'http'

/** One client's bound calls, and how many of them a request cancelled. */
export interface ClientCounts {
  bound: number
  cancelled: number
}

/** Why a bound upstream call was cancelled: the kind of its request's `signal.reason`. */
export type CancelReason = 'clientDisconnected' | 'responseSent' | 'handlerTimeout' | 'serverClosing' | 'error'

const REASON_BY_CODE: Readonly<Record<string, CancelReason>> = {
  FST_HANGUP_CLIENT_DISCONNECTED: 'clientDisconnected',
  FST_HANGUP_RESPONSE_SENT: 'responseSent',
  FST_ERR_HANDLER_TIMEOUT: 'handlerTimeout',
  FST_HANGUP_SERVER_CLOSING: 'serverClosing'
}

/** By code, not class: a reason may come from another copy of this package, or be Fastify's. */
export function cancelReason (reason: unknown): CancelReason {
  const code = (reason as { code?: unknown } | null)?.code
  return (typeof code === 'string' ? REASON_BY_CODE[code] : undefined) ?? 'error'
}

/**
 * Counters of one registration. Plain numbers bumped on the request path; a
 * snapshot is built only when someone asks, so counting costs an increment.
 */
export class Counters {
  inflight = 0
  upload = 0
  handler = 0
  response = 0
  fatal = 0
  unhandledCancellations = 0
  bound = 0
  readonly byClient: Record<UpstreamClient, ClientCounts> = { undici: { bound: 0, cancelled: 0 }, http: { bound: 0, cancelled: 0 } }
  readonly cancelledBy: Record<CancelReason, number> = { clientDisconnected: 0, responseSent: 0, handlerTimeout: 0, serverClosing: 0, error: 0 }

  disconnected (phase: DisconnectPhase): void {
    this[phase]++
  }

  boundCall (client: UpstreamClient): void {
    this.bound++
    this.byClient[client].bound++
  }

  cancelled (reason: unknown, client: UpstreamClient): void {
    this.cancelledBy[cancelReason(reason)]++
    this.byClient[client].cancelled++
  }

  snapshot (): HangupStats {
    return {
      inflight: this.inflight,
      disconnects: { upload: this.upload, handler: this.handler, response: this.response },
      fatal: this.fatal,
      unhandledCancellations: this.unhandledCancellations,
      upstream: {
        bound: this.bound,
        cancelled: { ...this.cancelledBy },
        byClient: { undici: { ...this.byClient.undici }, http: { ...this.byClient.http } }
      }
    }
  }
}
