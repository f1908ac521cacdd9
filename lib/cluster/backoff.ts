import type { ResolvedBackoff } from './options.js'

/**
 * The re-fork delay of a crash loop. A worker that dies before it
 * listens, or within `minUptime` of listening, "died young" — unless a
 * request it was serving crashed it (the supervisor does not ask then): that
 * says nothing of the next worker's start, and a service under a crashing
 * request must get its capacity back at once. The first young
 * death is replaced at once (one bad request must not cost capacity); each
 * further one in a row waits `initial`, then twice that, up to `max`, so a
 * worker that cannot start (a bad config, a database that is down) costs a
 * fork every `max` ms, not a core. A worker that lives `minUptime` after
 * listening, or a worker that dies old, ends the streak.
 */
export class RestartBackoff {
  private streak = 0

  constructor (private readonly options: ResolvedBackoff) {}

  /** How long a worker must have listened to count as healthy. */
  get minUptime (): number {
    return this.options.minUptime
  }

  /**
   * A worker ended (or began to close). `listenedFor` is how long it had been
   * listening, `null` if it never did. Returns the delay before its replacement.
   */
  delayAfter (listenedFor: number | null): number {
    if (listenedFor !== null && listenedFor >= this.options.minUptime) {
      this.streak = 0
      return 0
    }
    this.streak++
    if (this.streak === 1) return 0
    // 2 ** 40 ms is already 35 years: the cap applies long before the power overflows.
    return Math.min(this.options.max, this.options.initial * 2 ** Math.min(this.streak - 2, 40))
  }

  /** A worker has listened for `minUptime`: the loop, if any, is over. */
  healthy (): void {
    this.streak = 0
  }

  /** Young deaths in a row (for the log). */
  get youngDeaths (): number {
    return this.streak
  }
}
