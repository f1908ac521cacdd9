import { test, type TestContext } from 'node:test'
import { ProcessGuard, type GuardedApp } from '../lib/shutdown/process-guard.js'
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
    info: (_obj: unknown, msg: string) => calls.push(`info ${msg}`),
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
