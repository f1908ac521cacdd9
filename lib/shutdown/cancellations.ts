import type { FastifyBaseLogger } from 'fastify'
import type { Counters } from '../stats.js'
import { processSingleton } from '../internals/lookup.js'
import { PROCESS_SINGLETONS } from '../internals/table.js'

/** What a cancellation's app gives the guard: where to count it and log it (a request's `Runtime`). */
export interface CancellationOwner {
  readonly counters: Counters
  readonly log: FastifyBaseLogger
}

/** Whose work a recorded reason cancelled: the request's id and its app's runtime, never the request itself. */
export interface Cancellation {
  readonly reqId: string
  readonly runtime: CancellationOwner
}

/** Hands back the object it is given: the base that lets `Stamp` add its private fields to any object. */
class Returning {
  constructor (target: object) {
    return target
  }
}

/**
 * Marks a reason this plugin aborted a request's work with, so that a
 * rejection with it that nobody handles can be told apart: work the plugin
 * cancelled (a floating prefetch after `abortOnResponse`, a sibling after
 * `abortOnError`) is the plugin's doing, and must not end the process.
 *
 * The mark is a pair of private fields added to the reason itself (a
 * constructor that returns another object gets the subclass's private
 * fields installed on it). They cost what two property stores cost, where a
 * WeakMap entry per reason or `Object.defineProperty` cost 0.4 to 3 µs each
 * (Node 20, 24: ephemeron tables, dictionary transitions), on a path every
 * request that read its signal takes once its response is sent. Private
 * fields stay out of sight: not enumerable, not in `util.inspect`, JSON or
 * `Object.keys`, so a user's error marked after `abortOnError` looks the
 * same. The mark holds the request's id and its app's runtime, never the
 * request, so a reason still keeps no request alive (lib/errors.ts).
 */
class Stamp extends Returning {
  #reqId: string
  #runtime: CancellationOwner

  private constructor (target: object, reqId: string, runtime: CancellationOwner) {
    super(target)
    this.#reqId = reqId
    this.#runtime = runtime
  }

  /** Marks `target`; a second mark (a user's error object thrown by several requests) replaces the first. */
  static mark (target: object, reqId: string, runtime: CancellationOwner): void {
    if (#reqId in target) {
      const stamped = target as Stamp
      stamped.#reqId = reqId
      stamped.#runtime = runtime
    } else {
      // eslint-disable-next-line no-new
      new Stamp(target, reqId, runtime)
    }
  }

  static read (target: object): Cancellation | undefined {
    if (!(#reqId in target)) return undefined
    const stamped = target as Stamp
    return { reqId: stamped.#reqId, runtime: stamped.#runtime }
  }
}

/**
 * The readers of every copy of this module in the process (CJS and ESM):
 * a copy's private fields are its own, and the one process guard must read
 * the marks of both (lib/internals/table.ts).
 */
function sharedReaders (): Array<(target: object) => Cancellation | undefined> {
  const readers = processSingleton<Array<(target: object) => Cancellation | undefined>>(PROCESS_SINGLETONS.cancellationReaders.key, () => [])
  readers.push((target) => Stamp.read(target))
  return readers
}

const readers = sharedReaders()

function readMark (target: object): Cancellation | undefined {
  for (const read of readers) {
    const found = read(target)
    if (found !== undefined) return found
  }
  return undefined
}

/**
 * How far `cause` is followed. fetch wraps the reason once or twice: a bound
 * call rejects with `TypeError: fetch failed` whose cause is a DOMException
 * whose cause is the reason, and a body read rejects with `TypeError:
 * terminated` whose cause is the reason.
 */
const MAX_CAUSE_DEPTH = 4

/**
 * Records a reason the request's work is being aborted with. Only objects
 * can be recorded (an `abortOnError` with a thrown string cannot, and stays
 * an ordinary rejection). Called only when something is actually aborted.
 */
export function recordCancellation (reason: unknown, reqId: string, runtime: CancellationOwner): void {
  if (typeof reason === 'object' && reason !== null) Stamp.mark(reason, reqId, runtime)
}

/** The cause of a rejection reason, or undefined; a throwing getter or proxy trap reads as none. */
function causeOf (value: object): unknown {
  try {
    return (value as { cause?: unknown }).cause
  } catch {
    return undefined
  }
}

/**
 * The cancellation a rejection reason comes from: the reason itself, or one
 * in its `cause` chain (at most MAX_CAUSE_DEPTH links deep), or undefined.
 */
export function findCancellation (reason: unknown): Cancellation | undefined {
  let current = reason
  for (let depth = 0; depth <= MAX_CAUSE_DEPTH; depth++) {
    if (typeof current !== 'object' || current === null) return undefined
    const found = readMark(current)
    if (found !== undefined) return found
    current = causeOf(current)
  }
  return undefined
}
