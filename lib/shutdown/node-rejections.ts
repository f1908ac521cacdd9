import { inspect } from 'node:util'

/**
 * Node's own handling of an unhandled rejection, for when the plugin's
 * `unhandledRejection` listener (needed to keep its own cancellations from
 * crashing the process, lib/shutdown/cancellations.ts) has switched it off: with a
 * listener installed, Node counts every rejection as handled. The modes and
 * what each does are Node's lib/internal/process/promises.js (the same in
 * Node 20 to 26).
 */

export type RejectionsMode = 'throw' | 'strict' | 'warn' | 'none' | 'warn-with-error-code'

const MODES: ReadonlySet<string> = new Set(['throw', 'strict', 'warn', 'none', 'warn-with-error-code'])

const FLAG = '--unhandled-rejections'

/** The last `--unhandled-rejections` value among `args` (`=value` or a separate value), or undefined. */
function lastModeIn (args: readonly string[]): string | undefined {
  let mode: string | undefined
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string
    if (arg.startsWith(`${FLAG}=`)) mode = arg.slice(FLAG.length + 1)
    else if (arg === FLAG) mode = args[++i]
  }
  return mode
}

/**
 * The process's `--unhandled-rejections` mode: the command line's, else
 * NODE_OPTIONS' (Node reads NODE_OPTIONS first, so the command line wins),
 * else Node's default, `throw`. Node refuses to start with any other value.
 */
export function rejectionsMode (execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): RejectionsMode {
  const mode = lastModeIn(execArgv) ?? lastModeIn(nodeOptions.split(/\s+/))
  return mode !== undefined && MODES.has(mode) ? mode as RejectionsMode : 'throw'
}

/** `isErrorLike` of Node's promises.js: what Node raises as is rather than wrapping. */
function isErrorLike (value: unknown): value is Error {
  return typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, 'stack')
}

/**
 * Close to V8's `NoSideEffectsToString`, which Node uses to describe a
 * reason that is not an error: `#<Foo>` for an instance, a primitive as
 * itself. No user code runs (no `toString()` of the reason).
 */
function describeReason (reason: unknown): string {
  if (typeof reason === 'function') return `[Function: ${reason.name}]`
  if (typeof reason !== 'object' || reason === null) return String(reason)
  try {
    const prototype = Object.getPrototypeOf(reason) as { constructor?: { name?: unknown } } | null
    const name = Object.getOwnPropertyDescriptor(prototype ?? {}, 'constructor')?.value?.name
    return typeof name === 'string' && name !== '' ? `#<${name}>` : Object.prototype.toString.call(reason)
  } catch {
    return Object.prototype.toString.call(reason)
  }
}

/**
 * What Node raises for an unhandled rejection: the reason itself if it is
 * error-like, else an `UnhandledPromiseRejection` error (code
 * ERR_UNHANDLED_REJECTION) describing it, without a stack, as Node does.
 */
export function uncaughtFor (reason: unknown): Error {
  if (isErrorLike(reason)) return reason
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    const error = new Error('This error originated either by throwing inside of an async function without a catch block, ' +
      'or by rejecting a promise which was not handled with .catch(). The promise rejected with the reason ' +
      `"${describeReason(reason)}".`)
    Object.defineProperty(error, 'name', { value: 'UnhandledPromiseRejection', writable: true, configurable: true })
    return Object.assign(error, { code: 'ERR_UNHANDLED_REJECTION' })
  } finally {
    Error.stackTraceLimit = limit
  }
}

/** Node's `UnhandledPromiseRejectionWarning` for a rejection no listener handled (the reason's stack, or its description). */
export function warnUnhandled (reason: unknown): void {
  let text: string
  try {
    text = isErrorLike(reason) ? String(reason.stack) : describeReason(reason)
  } catch {
    text = describeReason(reason)
  }
  process.emitWarning(text, 'UnhandledPromiseRejectionWarning')
}

/**
 * Node's handling of a rejection that no listener handled, in `mode`, as far
 * as it is still to be done once the listeners have run:
 * - `throw` (the default): raised as an uncaught exception, which ends the
 *   process (exit code 1, the error printed) unless an `uncaughtException`
 *   listener handles it. It is raised from the next tick rather than from the
 *   listener, so the other rejections of the same batch still reach their
 *   listeners; an `uncaughtException` listener sees the origin
 *   `'uncaughtException'` where Node would say `'unhandledRejection'`.
 * - `strict`: Node already raised it as an uncaught exception, which someone
 *   handled; Node then warns.
 * - `warn-with-error-code`: a warning, and the exit code 1.
 * - `warn`: Node warns itself, listener or not. `none`: nothing.
 */
export function actAsNode (reason: unknown, mode: RejectionsMode): void {
  if (mode === 'throw') {
    const error = uncaughtFor(reason)
    process.nextTick(() => { throw error })
  } else if (mode === 'strict' || mode === 'warn-with-error-code') {
    warnUnhandled(reason)
    if (mode === 'warn-with-error-code') process.exitCode = 1
  }
}

/**
 * Node's end of a process on an uncaught exception no listener handled, for
 * `strict` mode, where the plugin's `uncaughtException` listener switched it
 * off: the error printed to stderr, exit code 1 (`'exit'` listeners run).
 * Rethrowing from the listener would make it exit code 7 instead.
 */
export function crashAsNode (error: unknown): never {
  process.stderr.write(`${printable(error)}\n\nNode.js ${process.version}\n`)
  process.exit(1)
}

/** `util.inspect` of the error, or its description when inspecting it throws (its own `util.inspect.custom`): this runs in a crash handler. */
export function printable (error: unknown): string {
  try {
    return inspect(error)
  } catch {
    return describeReason(error)
  }
}
