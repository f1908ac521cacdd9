import type { EventEmitter } from 'node:events'

/** What the matrix and fault apps record of their route handlers' upstream calls. */
export interface CallProbe {
  /** What the handlers' upstream calls (or the reading of their answer) rejected with. */
  rejections: unknown[]
  /** Route handlers that returned or threw. */
  settled: number
  /** Emits 'change' on every update. */
  events: EventEmitter
}

/** Runs a route handler's `body`, recording in `probe` what it threw and that it settled. */
export async function recordSettled<T> (probe: CallProbe, body: () => Promise<T>): Promise<T> {
  try {
    return await body()
  } catch (err) {
    probe.rejections.push(err)
    throw err
  } finally {
    probe.settled++
    probe.events.emit('change')
  }
}
