import type { DisconnectPhase } from './errors.js'

/** A snapshot of the plugin's counters, from `fastify.hangup.stats()`. */
export interface HangupStats {
  /** Requests whose response has not closed yet. */
  inflight: number
  /** Client hang-ups since start, by the phase the request was in. */
  disconnects: Record<DisconnectPhase, number>
  /** Fatal errors handled while this app was registered (uncaught, unhandled rejections, `isFatal`). */
  fatal: number
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

  disconnected (phase: DisconnectPhase): void {
    this[phase]++
  }

  snapshot (): HangupStats {
    return {
      inflight: this.inflight,
      disconnects: { upload: this.upload, handler: this.handler, response: this.response },
      fatal: this.fatal
    }
  }
}
