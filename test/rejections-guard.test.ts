import { test, type TestContext } from 'node:test'
import { inspect } from 'node:util'
import { findCancellation, recordCancellation } from '../lib/shutdown/cancellations.js'
import type { CloseCause } from '../lib/shutdown/graceful-close.js'
import type { Runtime } from '../lib/request/lifecycle.js'
import { actAsNode, printable, rejectionsMode, uncaughtFor, warnUnhandled } from '../lib/shutdown/node-rejections.js'
import { ProcessGuard, type GuardedApp } from '../lib/shutdown/process-guard.js'
import { Counters } from '../lib/stats.js'

/**
 * The pieces of "own cancellations are never fatal" in process: the record of
 * reasons, Node's rejection modes, and the guard's listeners called directly.
 * What a real process does (stays up, or exits as Node would) is in
 * test/cancellations.test.ts.
 */

interface Logged { level: string, obj: Record<string, unknown>, msg: string }

function fakeRuntime (): Runtime & { lines: Logged[] } {
  const lines: Logged[] = []
  const log = { debug: (obj: Record<string, unknown>, msg: string) => lines.push({ level: 'debug', obj, msg }) }
  return { counters: new Counters(), abortOnResponse: true, logLevel: 'silent', log: log as never, close: null, lines }
}

function fakeApp (): GuardedApp & { calls: string[] } {
  const calls: string[] = []
  const log = { fatal: (_obj: unknown, msg: string) => calls.push(`fatal ${msg}`) }
  return {
    calls,
    exit: false,
    gracePeriod: 1000,
    signals: [],
    log: log as never,
    owns: () => false,
    fault: () => calls.push('fault'),
    report: () => {},
    close: async (_cause: CloseCause) => {}
  }
}

interface Listeners {
  onUncaughtException (error: unknown, origin: string): void
  onUnhandledRejection (reason: unknown): void
}

function listenersOf (guard: ProcessGuard): Listeners {
  return guard as unknown as Listeners
}

/** The warnings emitted (on the next tick) while `fn` runs and just after. */
async function warningsDuring (fn: () => void): Promise<Array<{ name: string, message: string }>> {
  const warnings: Array<{ name: string, message: string }> = []
  const collect = (warning: Error): void => { warnings.push({ name: warning.name, message: warning.message }) }
  process.on('warning', collect)
  try {
    fn()
    await new Promise((resolve) => setImmediate(resolve))
  } finally {
    process.removeListener('warning', collect)
  }
  return warnings
}

/** Restores process.exitCode after the test. */
function keepExitCode (t: TestContext): void {
  const before = process.exitCode
  t.after(() => { process.exitCode = before })
}

test('rejectionsMode: the command line, else NODE_OPTIONS, else throw; both spellings of the flag', (t: TestContext) => {
  t.assert.strictEqual(rejectionsMode([], ''), 'throw')
  t.assert.strictEqual(rejectionsMode(['--unhandled-rejections=strict'], ''), 'strict')
  t.assert.strictEqual(rejectionsMode(['--inspect', '--unhandled-rejections', 'warn'], ''), 'warn')
  t.assert.strictEqual(rejectionsMode([], '--max-old-space-size=100  --unhandled-rejections=none'), 'none')
  t.assert.strictEqual(rejectionsMode(['--unhandled-rejections=warn-with-error-code'], '--unhandled-rejections=strict'), 'warn-with-error-code')
  t.assert.strictEqual(rejectionsMode(['--unhandled-rejections=strict', '--unhandled-rejections=throw'], ''), 'throw')
  t.assert.strictEqual(rejectionsMode(['--unhandled-rejections=bogus'], ''), 'throw')
  t.assert.strictEqual(rejectionsMode(['--unhandled-rejections'], '--unhandled-rejections=warn'), 'warn')
  t.assert.strictEqual(typeof rejectionsMode(), 'string')
})

test('uncaughtFor: an error as is, anything else wrapped as Node wraps it, without running the reason\'s code', (t: TestContext) => {
  const error = new Error('boom')
  t.assert.strictEqual(uncaughtFor(error), error)
  const wrapped = uncaughtFor('a string')
  t.assert.deepStrictEqual([wrapped.name, (wrapped as Error & { code?: string }).code], ['UnhandledPromiseRejection', 'ERR_UNHANDLED_REJECTION'])
  t.assert.match(wrapped.message, /^This error originated either by throwing inside of an async function without a catch block, or by rejecting a promise which was not handled with \.catch\(\)\. The promise rejected with the reason "a string"\.$/)
  t.assert.doesNotMatch(String(wrapped.stack), /\n\s+at /)
  class Foo { toString (): string { throw new Error('must not run') } }
  const reasonOf = (value: unknown): string => /the reason "(.*)"\.$/s.exec(uncaughtFor(value).message)?.[1] as string
  t.assert.strictEqual(reasonOf(new Foo()), '#<Foo>')
  t.assert.strictEqual(reasonOf({ a: 1 }), '#<Object>')
  t.assert.strictEqual(reasonOf(Object.create(null)), '[object Object]')
  t.assert.strictEqual(reasonOf(Object.create({ constructor: { name: '' } })), '[object Object]')
  t.assert.strictEqual(reasonOf(new Proxy({}, { getPrototypeOf () { throw new Error('trap') } })), '[object Object]')
  t.assert.strictEqual(reasonOf(function named () {}), '[Function: named]')
  t.assert.deepStrictEqual([reasonOf(42), reasonOf(undefined), reasonOf(null), reasonOf(Symbol('s'))], ['42', 'undefined', 'null', 'Symbol(s)'])
  // A stackless error (no own `stack`) is not error-like to Node either.
  t.assert.strictEqual(reasonOf(Object.create(Error.prototype)), '#<Error>')
})

test('printable: what a crash prints, even for a reason whose inspection throws', (t: TestContext) => {
  t.assert.match(printable(new Error('boom')), /^Error: boom\n\s+at /)
  const hostile = { [inspect.custom] () { throw new Error('no') } }
  t.assert.strictEqual(printable(hostile), '#<Object>')
})

test('warnUnhandled: Node\'s UnhandledPromiseRejectionWarning with the stack, or the description', async (t: TestContext) => {
  const error = new Error('boom')
  const unreadable = Object.defineProperty({}, 'stack', { get () { throw new Error('no stack') } })
  const warnings = await warningsDuring(() => {
    warnUnhandled(error)
    warnUnhandled('plain')
    warnUnhandled(unreadable)
  })
  t.assert.deepStrictEqual(warnings.map((w) => w.name), ['UnhandledPromiseRejectionWarning', 'UnhandledPromiseRejectionWarning', 'UnhandledPromiseRejectionWarning'])
  t.assert.strictEqual(warnings[0]?.message, error.stack)
  t.assert.strictEqual(warnings[1]?.message, 'plain')
  t.assert.strictEqual(warnings[2]?.message, '#<Object>')
})

test('actAsNode: strict and warn-with-error-code warn (the latter sets exit code 1); warn and none leave it to Node', async (t: TestContext) => {
  keepExitCode(t)
  process.exitCode = undefined
  t.assert.strictEqual((await warningsDuring(() => actAsNode('x', 'warn'))).length, 0)
  t.assert.strictEqual((await warningsDuring(() => actAsNode('x', 'none'))).length, 0)
  t.assert.strictEqual((await warningsDuring(() => actAsNode('x', 'strict'))).length, 1)
  t.assert.strictEqual(process.exitCode, undefined)
  t.assert.strictEqual((await warningsDuring(() => actAsNode('x', 'warn-with-error-code'))).length, 1)
  t.assert.strictEqual(process.exitCode, 1)
})

test('cancellations: only objects are recorded; the cause chain is followed a few links, a throwing cause reads as none', (t: TestContext) => {
  const runtime = fakeRuntime()
  recordCancellation('a string', 'req-1', runtime)
  t.assert.strictEqual(findCancellation('a string'), undefined)
  const reason = new Error('cancelled')
  recordCancellation(reason, 'req-2', runtime)
  t.assert.deepStrictEqual(findCancellation(reason), { reqId: 'req-2', runtime })
  const fetchFailed = new TypeError('fetch failed', { cause: new Error('Request was cancelled.', { cause: reason }) })
  t.assert.strictEqual(findCancellation(fetchFailed)?.reqId, 'req-2')
  let deep: unknown = reason
  for (let i = 0; i < 5; i++) deep = new Error(`wrap ${i}`, { cause: deep })
  t.assert.strictEqual(findCancellation(deep), undefined)
  const throwing = Object.defineProperty(new Error('x'), 'cause', { get () { throw new Error('getter') } })
  t.assert.strictEqual(findCancellation(throwing), undefined)
  t.assert.strictEqual(findCancellation(new Error('unrelated')), undefined)
  // One error object thrown by two requests (abortOnError): the later mark wins.
  recordCancellation(reason, 'req-3', runtime)
  t.assert.strictEqual(findCancellation(reason)?.reqId, 'req-3')
  // The mark is out of sight: the reason looks the same.
  t.assert.deepStrictEqual(Object.keys(reason), [])
  t.assert.doesNotMatch(inspect(reason), /req-3|Counters/)
})

test('guard: a watcher (fatal: false) needs the rejection listener only, and the uncaught one under strict', (t: TestContext) => {
  const before = { uncaught: process.listenerCount('uncaughtException'), rejection: process.listenerCount('unhandledRejection') }
  const count = (): typeof before => ({ uncaught: process.listenerCount('uncaughtException'), rejection: process.listenerCount('unhandledRejection') })
  const watcher = {}
  const guard = new ProcessGuard('throw')
  guard.watch(watcher)
  t.after(() => guard.unwatch(watcher))
  t.assert.deepStrictEqual(count(), { uncaught: before.uncaught, rejection: before.rejection + 1 })
  const strict = new ProcessGuard('strict')
  strict.watch(watcher)
  t.assert.deepStrictEqual(count(), { uncaught: before.uncaught + 1, rejection: before.rejection + 2 })
  strict.unwatch(watcher)
  guard.unwatch(watcher)
  t.assert.deepStrictEqual(count(), before)
})

test('guard: an own cancellation is logged at debug with its request id and counted, never fatal', (t: TestContext) => {
  const guard = new ProcessGuard('throw')
  const app = fakeApp()
  guard.add(app)
  t.after(() => guard.remove(app))
  const runtime = fakeRuntime()
  const reason = new Error('cancelled')
  recordCancellation(reason, 'req-7', runtime)
  const fetchFailed = new TypeError('fetch failed', { cause: reason })
  listenersOf(guard).onUnhandledRejection(fetchFailed)
  t.assert.deepStrictEqual(app.calls, [])
  t.assert.strictEqual(runtime.counters.snapshot().unhandledCancellations, 1)
  t.assert.deepStrictEqual(runtime.lines, [{ level: 'debug', obj: { reqId: 'req-7', err: fetchFailed }, msg: 'cancelled work rejected with nobody handling it' }])
  listenersOf(guard).onUnhandledRejection(new Error('genuine'))
  t.assert.deepStrictEqual(app.calls, ['fatal unhandled rejection: closing gracefully', 'fault'])
})

test('guard, strict: a rejection raised as an uncaught exception first is handled once, own or fatal', (t: TestContext) => {
  const guard = new ProcessGuard('strict')
  const app = fakeApp()
  guard.add(app)
  t.after(() => guard.remove(app))
  const runtime = fakeRuntime()
  const own = new Error('cancelled')
  recordCancellation(own, 'req-8', runtime)
  const { onUncaughtException, onUnhandledRejection } = listenersOf(guard)
  onUncaughtException(own, 'unhandledRejection')
  onUnhandledRejection(own)
  t.assert.strictEqual(runtime.counters.snapshot().unhandledCancellations, 1)
  t.assert.deepStrictEqual(app.calls, [])
  const genuine = new Error('genuine')
  onUncaughtException(genuine, 'unhandledRejection')
  onUnhandledRejection(genuine)
  t.assert.deepStrictEqual(app.calls, ['fatal unhandled rejection: closing gracefully', 'fault'])
  // A thrown own reason is an uncaught exception, not a rejection: still fatal.
  onUncaughtException(own, 'uncaughtException')
  t.assert.strictEqual(app.calls[2], 'fatal uncaught exception: closing gracefully (already closing)')
})

test('guard, watchers only: another listener handles what is not the plugin\'s, as it would without the plugin', async (t: TestContext) => {
  keepExitCode(t)
  process.exitCode = undefined
  const watcher = {}
  const guard = new ProcessGuard('warn-with-error-code')
  guard.watch(watcher)
  t.after(() => guard.unwatch(watcher))
  const { onUncaughtException, onUnhandledRejection } = listenersOf(guard)
  const other = (): void => {}
  process.on('unhandledRejection', other)
  process.on('uncaughtException', other)
  try {
    t.assert.strictEqual((await warningsDuring(() => onUnhandledRejection(new Error('theirs')))).length, 0)
    t.assert.strictEqual(process.exitCode, undefined)
    // Strict mode's uncaught listener: someone else's handles it, no crash.
    onUncaughtException(new Error('theirs'), 'unhandledRejection')
  } finally {
    process.removeListener('unhandledRejection', other)
    process.removeListener('uncaughtException', other)
  }
  // Nobody else (the test runner's own listener set aside): Node's
  // handling for this mode (a warning, exit code 1).
  const runners = process.listeners('unhandledRejection').filter((listener) => listener !== (onUnhandledRejection as unknown))
  for (const listener of runners) process.removeListener('unhandledRejection', listener)
  try {
    t.assert.strictEqual((await warningsDuring(() => onUnhandledRejection(new Error('nobody\'s')))).length, 1)
  } finally {
    for (const listener of runners) process.on('unhandledRejection', listener)
  }
  t.assert.strictEqual(process.exitCode, 1)
})
