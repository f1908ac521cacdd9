import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import type { Client } from 'undici'
import { OTHER_LISTENERS_MESSAGE } from '../lib/shutdown/process-guard.js'
import type { CloseWithGraceFixtureConfig } from './fixtures/close-with-grace-app.js'
import { PATIENCE_MS, within } from './helpers/app.js'
import { connect, genericBody, spawnLogged, type LoggedProcess } from './helpers/child.js'
import { FATAL, INFO, type LogLine } from './helpers/logs.js'

/**
 * The plugin beside close-with-grace, in a child process
 * (test/fixtures/close-with-grace-app.js), as docs/coexistence.md describes
 * it: both handle the crash or the signal, close-with-grace's `app.close()`
 * joins the plugin's graceful close (it resolves once the drain is over and
 * `onFatal` settled), and close-with-grace's `process.exit()` is the one exit.
 */

const FIXTURE = join(__dirname, 'fixtures', 'close-with-grace-app.js')

interface Answer {
  status: number
  body: string
}

async function get (client: Client, path: string): Promise<Answer> {
  const res = await client.request({ path, method: 'GET' })
  return { status: res.statusCode, body: await res.body.text() }
}

async function start (t: TestContext, config: CloseWithGraceFixtureConfig): Promise<{ child: LoggedProcess, url: string }> {
  const child = spawnLogged(t, FIXTURE, { HANGUP_CWG_FIXTURE: JSON.stringify(config) })
  await child.waitForLog((line) => line.msg === 'fixture ready')
  const listening = child.logs.find((line) => line.msg?.startsWith('Server listening at ') === true) as LogLine
  return { child, url: (listening.msg as string).slice('Server listening at '.length) }
}

function incoming (url: string) {
  return (line: LogLine): boolean => line.msg === 'incoming request' && (line.req as { url?: string } | undefined)?.url === url
}

/** The index of the only line with `msg`; fails if there is none or more than one. */
function onlyLine (t: TestContext, child: LoggedProcess, msg: string): number {
  const indexes = child.logs.flatMap((line, index) => line.msg === msg ? [index] : [])
  t.assert.strictEqual(indexes.length, 1, `one "${msg}" line, in:\n${child.logs.map((line) => JSON.stringify(line)).join('\n')}`)
  return indexes[0] as number
}

/** The index of the line that says the request `reqId` was answered. */
function completedAt (child: LoggedProcess, reqId: string): number {
  return child.logs.findIndex((line) => line.msg === 'request completed' && line.reqId === reqId)
}

/** Checks shared by every case: told once, at info, of close-with-grace's listeners; no timeout or second error from it. */
async function assertToldOfOthers (t: TestContext, child: LoggedProcess): Promise<void> {
  const told = await child.waitForLog((line) => line.msg === OTHER_LISTENERS_MESSAGE)
  t.assert.strictEqual(told.level, INFO)
  // close-with-grace's listener is its `onError`, for both events.
  t.assert.deepStrictEqual(told.otherListeners, { uncaughtException: ['onError'], unhandledRejection: ['onError'] })
}

const ORDERS: Array<{ installed: CloseWithGraceFixtureConfig['installed'], what: string }> = [
  { installed: 'before-ready', what: 'set up before the app is ready (its handler runs first)' },
  { installed: 'after-listen', what: 'set up once the app listens (its handler runs second)' }
]

for (const { installed, what } of ORDERS) {
  test(`close-with-grace ${what}: a crash: the request in flight is answered, the crashing one gets the generic 500, close-with-grace's app.close() returns after the drain and onFatal, one exit, code 1`, async (t: TestContext) => {
    // onFatal outlasts the drain (the slow request ends 200 ms into the
    // close): a close-with-grace that exited as soon as Fastify's own close
    // was over would cut it.
    const { child, url } = await start(t, { installed, onFatalMs: 1000 })
    await assertToldOfOthers(t, child)
    const slow = get(connect(t, url), '/slow')
    const slowLine = await child.waitForLog(incoming('/slow'))

    const crashed = await get(connect(t, url), '/crash')
    t.assert.strictEqual(crashed.status, 500)
    t.assert.deepStrictEqual(JSON.parse(crashed.body), genericBody(500))
    const answer = await slow
    t.assert.deepStrictEqual({ status: answer.status, body: JSON.parse(answer.body) }, { status: 200, body: { ok: true } })

    const exit = await within(child.exited, PATIENCE_MS, 'the child to exit')
    t.assert.deepStrictEqual({ code: exit.code, signal: exit.signal }, { code: 1, signal: null })
    t.assert.strictEqual(child.logs.filter((line) => line.level === FATAL).length, 1, 'one fatal line')
    t.assert.strictEqual(child.logs.find((line) => line.level === FATAL)?.msg, 'uncaught exception: closing gracefully')
    onlyLine(t, child, 'graceful close started')
    onlyLine(t, child, 'close-with-grace: closing the app')
    const onFatalDone = onlyLine(t, child, 'onFatal done')
    const appClosed = onlyLine(t, child, 'close-with-grace: app closed')
    const exitLine = onlyLine(t, child, 'exit')
    t.assert.strictEqual(child.logs[exitLine]?.code, 1)
    const slowDone = completedAt(child, slowLine.reqId as string)
    t.assert.ok(slowDone !== -1 && slowDone < appClosed, 'the request in flight was answered before app.close() returned')
    t.assert.ok(onFatalDone < appClosed, `onFatal settled before app.close() returned:\n${child.logs.map((line) => JSON.stringify(line)).join('\n')}`)
    t.assert.ok(appClosed < exitLine)
    t.assert.ok(!child.logs.some((line) => line.msg === 'close-with-grace error' || /grace period over/.test(line.msg ?? '')), 'no timeout, no second error, no deadline')
  })
}

test('close-with-grace set up once the app listens: SIGTERM: the request in flight is answered, app.close() returns after the drain, one exit, code 0', async (t: TestContext) => {
  const { child, url } = await start(t, { installed: 'after-listen', onFatalMs: 0 })
  await assertToldOfOthers(t, child)
  const slow = get(connect(t, url), '/slow')
  const slowLine = await child.waitForLog(incoming('/slow'))
  child.kill('SIGTERM')
  const answer = await slow
  t.assert.strictEqual(answer.status, 200)
  const exit = await within(child.exited, PATIENCE_MS, 'the child to exit')
  t.assert.deepStrictEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null })
  onlyLine(t, child, 'signal received: closing gracefully')
  onlyLine(t, child, 'graceful close started')
  const appClosed = onlyLine(t, child, 'close-with-grace: app closed')
  const exitLine = onlyLine(t, child, 'exit')
  t.assert.strictEqual(child.logs[exitLine]?.code, 0)
  const slowDone = completedAt(child, slowLine.reqId as string)
  t.assert.ok(slowDone !== -1 && slowDone < appClosed, 'the request in flight was answered before app.close() returned')
  t.assert.ok(!child.logs.some((line) => line.level > INFO), 'nothing above info')
})
