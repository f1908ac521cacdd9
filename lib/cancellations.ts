import type { Runtime } from './lifecycle.js'

/** Whose work a recorded reason cancelled: the request's id and its app's runtime, never the request itself. */
export interface Cancellation {
  readonly reqId: string
  readonly runtime: Runtime
}

/**
 * Every reason this plugin aborted a request's work with, keyed by the reason
 * object, so that a rejection nobody handles can be told apart: work the
 * plugin cancelled (a floating prefetch after `abortOnResponse`, a sibling
 * after `abortOnError`) is the plugin's doing, and must not end the process.
 *
 * A WeakMap: an entry lives as long as its reason, and holds the request's
 * id, not the request, so a reason still keeps no request alive (the reasons
 * are built without a stack for that reason: lib/errors.ts). One map per
 * process, under a global symbol like the process guard, so a reason recorded
 * by one copy of the package (CJS, ESM) is known to the guard of the other.
 */
const kCancellations = Symbol.for('fastify-hangup.cancellations.v1')

type GlobalSlot = typeof globalThis & { [kCancellations]?: WeakMap<object, Cancellation> }

function sharedMap (): WeakMap<object, Cancellation> {
  const slot = globalThis as GlobalSlot
  slot[kCancellations] ??= new WeakMap()
  return slot[kCancellations]
}

const cancellations = sharedMap()

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
export function recordCancellation (reason: unknown, reqId: string, runtime: Runtime): void {
  if (typeof reason === 'object' && reason !== null) cancellations.set(reason, { reqId, runtime })
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
    const found = cancellations.get(current)
    if (found !== undefined) return found
    current = causeOf(current)
  }
  return undefined
}
