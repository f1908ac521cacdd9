import { test, type TestContext } from 'node:test'
import { OTHER_LISTENERS_MESSAGE, ProcessGuard, type GuardedApp } from '../lib/shutdown/process-guard.js'
import type { CloseCause } from '../lib/shutdown/graceful-close.js'
import type { RequestLifecycle } from '../lib/request/lifecycle.js'

/**
 * The process guard with fake apps: the crash handler's own failures. Its
 * real behaviour (exit codes, answers, signals) is in test/fatal.test.ts.
 */

interface FakeApp extends GuardedApp {
  calls: string[]
  finishClose (): void
}

function fakeApp (broken: boolean, name = 'app'): FakeApp {
  const calls: string[] = []
  let finishClose = (): void => {}
  const fail = (what: string): void => {
    calls.push(what)
    if (broken) throw new Error(`${name} ${what} failed`)
  }
  const log = {
    fatal: (_obj: unknown, msg: string) => fail(`fatal ${msg}`),
    // The runner's own listeners are others: that line has its own test below.
    info: (_obj: unknown, msg: string) => { if (msg !== OTHER_LISTENERS_MESSAGE) calls.push(`info ${msg}`) },
    warn: (_obj: unknown, msg: string) => calls.push(`warn ${msg}`)
  }
  return {
    calls,
    exit: false,
    gracePeriod: 1000,
    signals: ['SIGHUP'],
    log: log as never,
    owns: () => false,
    fault: () => fail('fault'),
    report: () => fail('report'),
    close: (cause: CloseCause) => {
      fail(`close ${cause}`)
      return new Promise<void>((resolve) => { finishClose = resolve })
    },
    finishClose: () => finishClose()
  }
}

function uninstall (t: TestContext, guard: ProcessGuard, ...apps: GuardedApp[]): void {
  t.after(() => { for (const app of apps) guard.remove(app) })
}

test('a crash handler whose every step throws still runs every step and never throws', (t: TestContext) => {
  const guard = new ProcessGuard()
  const broken = fakeApp(true, 'broken')
  const healthy = fakeApp(false, 'healthy')
  guard.add(broken)
  guard.add(healthy)
  uninstall(t, guard, broken, healthy)
  t.assert.doesNotThrow(() => guard.fatal(new Error('boom'), 'uncaughtException', null, true))
  t.assert.deepStrictEqual(broken.calls, ['fatal uncaught exception: closing gracefully', 'close fatal', 'fault', 'report'])
  t.assert.deepStrictEqual(healthy.calls, ['close fatal', 'fault', 'report'])
})

test('a request of no registered app counts as outside any request; an error with no app left is not logged and does not throw', (t: TestContext) => {
  const guard = new ProcessGuard()
  const app = fakeApp(false)
  guard.add(app)
  uninstall(t, guard, app)
  const stranger = { log: { fatal: () => { throw new Error('must not be used') } } } as unknown as RequestLifecycle
  t.assert.doesNotThrow(() => guard.fatal(new Error('boom'), 'uncaughtException', stranger, true))
  t.assert.deepStrictEqual(app.calls, ['fatal uncaught exception: closing gracefully', 'close fatal', 'fault', 'report'])
  guard.remove(app)
  const empty = new ProcessGuard()
  t.assert.doesNotThrow(() => empty.fatal(new Error('late'), 'unhandledRejection', null, true))
})

test('an uncaught exception whose origin is unhandledRejection (--unhandled-rejections=strict) is reported as a rejection', (t: TestContext) => {
  const guard = new ProcessGuard()
  const app = fakeApp(true)
  guard.add(app)
  uninstall(t, guard, app)
  const listener = (guard as unknown as { onUncaughtException: (error: Error, origin: string) => void }).onUncaughtException
  listener(new Error('rejected'), 'unhandledRejection')
  t.assert.strictEqual(app.calls[0], 'fatal unhandled rejection: closing gracefully')
})

test('signals: the first closes gracefully, a second one without exit is ignored, and the listeners go when the close is over', async (t: TestContext) => {
  const before = process.listenerCount('SIGHUP')
  const guard = new ProcessGuard()
  const app = fakeApp(false)
  guard.add(app)
  t.assert.strictEqual(process.listenerCount('SIGHUP'), before + 1)
  process.emit('SIGHUP', 'SIGHUP')
  process.emit('SIGHUP', 'SIGHUP')
  t.assert.deepStrictEqual(app.calls, ['info signal received: closing gracefully', 'close signal'])
  guard.remove(app)
  t.assert.strictEqual(process.listenerCount('SIGHUP'), before + 1, 'kept while the close runs')
  app.finishClose()
  await new Promise((resolve) => setImmediate(resolve))
  t.assert.strictEqual(process.listenerCount('SIGHUP'), before)
})

/** A fake app whose `info` lines are kept with their fields. */
function listeningApp (): GuardedApp & { told: unknown[] } {
  const told: unknown[] = []
  const log = { info: (obj: { otherListeners?: unknown }, msg: string) => { if (msg === OTHER_LISTENERS_MESSAGE) told.push(obj.otherListeners) } }
  return { ...fakeApp(false), log: log as never, told }
}

/** Runs `fn` with no `event` listener but those it adds (node:test's runner has its own); restores them after. */
async function withoutListeners (events: Array<'uncaughtException' | 'unhandledRejection'>, fn: () => Promise<void>): Promise<void> {
  // One type for both events' listeners: Node's typings have an overload per event.
  const saved = events.map((event) => [event, process.listeners(event as 'uncaughtException')] as const)
  for (const event of events) process.removeAllListeners(event)
  try {
    await fn()
  } finally {
    for (const [event, listeners] of saved) {
      for (const listener of listeners) process.on(event as 'uncaughtException', listener)
    }
  }
}

test('other uncaughtException/unhandledRejection listeners: each app is told once, at info, with their names, at its ready or when one is added later; none, nothing said', async (t: TestContext) => {
  await withoutListeners(['uncaughtException', 'unhandledRejection'], async () => {
    const guard = new ProcessGuard()
    const first = listeningApp()
    guard.add(first)
    uninstall(t, guard, first)
    // The guard's own listeners do not count.
    await Promise.resolve()
    t.assert.deepStrictEqual(first.told, [])

    // Added after the ready (close-with-grace set up after listen()).
    function onError (): void {}
    process.on('uncaughtException', onError)
    t.after(() => process.removeListener('uncaughtException', onError))
    await Promise.resolve()
    t.assert.deepStrictEqual(first.told, [{ uncaughtException: ['onError'], unhandledRejection: [] }])

    // Another one later: already told.
    const anonymous = [(): void => {}][0] as () => void
    process.on('unhandledRejection', anonymous)
    t.after(() => process.removeListener('unhandledRejection', anonymous))
    process.on('exit', noop)
    t.after(() => process.removeListener('exit', noop))
    await Promise.resolve()
    t.assert.strictEqual(first.told.length, 1)

    // An app ready now is told at its ready, of both.
    const second = listeningApp()
    guard.add(second)
    uninstall(t, guard, second)
    t.assert.deepStrictEqual(second.told, [{ uncaughtException: ['onError'], unhandledRejection: ['anonymous'] }])
  })
})

function noop (): void {}
