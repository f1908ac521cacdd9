import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import type { Client } from 'undici'
import type { HangupStats } from '../lib/index.js'
import { PATIENCE_MS, until, within } from './helpers/app.js'
import { connect, spawnLogged, type LoggedProcess } from './helpers/child.js'
import { FATAL, type LogLine } from './helpers/logs.js'
import { sendRaw } from './helpers/raw-client.js'
import { startUpstream, type Upstream } from './helpers/upstream.js'
import type { CancelFixtureConfig } from './fixtures/cancel-app.js'

/**
 * The plugin's own cancellations are never fatal: work it cancelled that
 * nobody awaits (a floating prefetch, a fire-and-forget call, a fan-out
 * sibling) rejects with nobody handling it, and the process must stay up,
 * with the defaults and with `fatal: false`. Every other unhandled rejection
 * keeps its behaviour. Each test runs test/fixtures/cancel-app.js in a child
 * process against real upstreams on 127.0.0.1: its survival, or its exit, is
 * the assertion.
 */

const FIXTURE = join(__dirname, 'fixtures', 'cancel-app.js')
const DEBUG = 20
const OWN = 'cancelled work rejected with nobody handling it'

interface Child extends LoggedProcess {
  url: string
}

async function upstreams (t: TestContext): Promise<{ slow: Upstream, streaming: Upstream }> {
  const slow = await startUpstream({ delayMs: 60_000 })
  const streaming = await startUpstream({ delayMs: 0, chunks: 1000, chunkEveryMs: 20 })
  t.after(() => Promise.all([slow.close(), streaming.close()]))
  return { slow, streaming }
}

async function start (t: TestContext, options: Omit<CancelFixtureConfig, 'slow' | 'streaming'>, env: Record<string, string> = {}): Promise<Child> {
  const { slow, streaming } = await upstreams(t)
  const config: CancelFixtureConfig = { ...options, slow: slow.url, streaming: streaming.url }
  const child = spawnLogged(t, FIXTURE, { HANGUP_CANCEL_FIXTURE: JSON.stringify(config), ...env })
  const line = await child.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('Server listening at'))
  return { ...child, url: (line.msg as string).replace('Server listening at ', '') }
}

async function get (client: Client, path: string): Promise<{ status: number, body: string }> {
  const res = await client.request({ path, method: 'GET' })
  return { status: res.statusCode, body: await res.body.text() }
}

function incoming (path: string) {
  return (line: LogLine): boolean => line.msg === 'incoming request' && (line.req as { url?: string } | undefined)?.url === path
}

/** A client that sends a GET and hangs up once the app has it. */
async function hangUp (t: TestContext, child: Child, path: string): Promise<void> {
  const socket = await sendRaw(t, child.url, { path })
  await child.waitForLog(incoming(path))
  socket.destroy()
}

const scenarios: Array<{ name: string, path: string, autoBind?: boolean, status: number | null }> = [
  { name: 'a floating prefetch (signal: request.signal) cancelled by abortOnResponse', path: '/prefetch', status: 200 },
  { name: 'autoBind, a fire-and-forget request(url).then((r) => r.body.dump())', path: '/fire-and-forget/request', autoBind: true, status: 200 },
  { name: 'autoBind, a fire-and-forget global fetch whose body read is cut', path: '/fire-and-forget/fetch', autoBind: true, status: 200 },
  { name: 'autoBind, a fire-and-forget axios.get(url) (node:http)', path: '/fire-and-forget/axios', autoBind: true, status: 200 },
  { name: 'autoBind, a fire-and-forget @smithy/node-http-handler call (node:http)', path: '/fire-and-forget/smithy', autoBind: true, status: 200 },
  { name: 'autoBind, a fire-and-forget got(url).text() cut mid-body (node:http)', path: '/fire-and-forget/got', autoBind: true, status: 200 },
  { name: 'a fan-out sibling never awaited, cancelled by abortOnError', path: '/fan-out', status: 500 },
  { name: 'a floating call cancelled by a hang-up', path: '/hang-up', status: null },
  { name: 'a floating call cancelled by Fastify\'s handler timeout', path: '/handler-timeout', status: 503 }
]

for (const scenario of scenarios) {
  for (const fatal of [true, false]) {
    test(`${scenario.name}, ${fatal ? 'defaults' : 'fatal: false'}: the process stays up, logs it at debug with the request id, counts it`, async (t: TestContext) => {
      const child = await start(t, { fatal, autoBind: scenario.autoBind })
      const client = connect(t, child.url)
      if (scenario.status === null) {
        await hangUp(t, child, scenario.path)
      } else {
        t.assert.strictEqual((await get(client, scenario.path)).status, scenario.status)
      }
      const reqId = (await child.waitForLog(incoming(scenario.path))).reqId
      const line = await child.waitForLog((l) => l.msg === OWN)
      t.assert.strictEqual(line.level, DEBUG)
      t.assert.strictEqual(line.reqId, reqId)
      t.assert.ok(typeof line.err?.message === 'string')
      // Still up: later requests are served, and the counter counts.
      for (let i = 0; i < 3; i++) t.assert.strictEqual((await get(client, '/stats')).status, 200)
      const stats = JSON.parse((await get(client, '/stats')).body) as HangupStats
      t.assert.strictEqual(stats.unhandledCancellations, 1)
      t.assert.strictEqual(stats.fatal, 0)
      t.assert.deepStrictEqual(child.logs.filter((l) => l.level === FATAL), [])
      t.assert.doesNotMatch(child.stderr(), /Unhandled|Error/)
    })
  }
}

test('defaults: a genuine unhandled rejection is still fatal (logged at fatal, exit 1)', async (t: TestContext) => {
  const child = await start(t, { fatal: true })
  const answer = await get(connect(t, child.url), '/genuine').catch((error: Error) => error)
  const exit = await within(child.exited, PATIENCE_MS, 'the exit')
  t.assert.strictEqual(exit.code, 1)
  t.assert.ok(!(answer instanceof Error) && answer.status >= 200)
  const fatalLine = child.logs.find((l) => l.level === FATAL)
  t.assert.strictEqual(fatalLine?.msg, 'unhandled rejection: closing gracefully')
  t.assert.strictEqual(fatalLine?.err?.message, 'a genuine failure nobody handles')
  t.assert.strictEqual(child.logs.filter((l) => l.msg === OWN).length, 0)
})

test('fatal: false: a genuine unhandled rejection gets Node\'s own crash (exit 1, the error printed)', async (t: TestContext) => {
  const child = await start(t, { fatal: false })
  await get(connect(t, child.url), '/genuine').catch(() => {})
  const exit = await within(child.exited, PATIENCE_MS, 'the exit')
  t.assert.strictEqual(exit.code, 1)
  t.assert.match(child.stderr(), /Error: a genuine failure nobody handles/)
  t.assert.match(child.stderr(), /Node\.js v\d+/)
  t.assert.deepStrictEqual(child.logs.filter((l) => l.level === FATAL || l.msg === OWN), [])
})

test('fatal: false: a rejection with a non-Error reason crashes as Node does (ERR_UNHANDLED_REJECTION, exit 1)', async (t: TestContext) => {
  const child = await start(t, { fatal: false })
  await get(connect(t, child.url), '/genuine-string').catch(() => {})
  const exit = await within(child.exited, PATIENCE_MS, 'the exit')
  t.assert.strictEqual(exit.code, 1)
  t.assert.match(child.stderr(), /UnhandledPromiseRejection: .*The promise rejected with the reason "a plain string reason"\./)
  t.assert.match(child.stderr(), /code: 'ERR_UNHANDLED_REJECTION'/)
})

for (const fatal of [true, false]) {
  test(`--unhandled-rejections=strict, ${fatal ? 'defaults' : 'fatal: false'}: an own cancellation, raised as an uncaught exception first, is counted once and the process stays up`, async (t: TestContext) => {
    const child = await start(t, { fatal }, { NODE_OPTIONS: '--unhandled-rejections=strict' })
    const client = connect(t, child.url)
    t.assert.strictEqual((await get(client, '/prefetch')).status, 200)
    await child.waitForLog((l) => l.msg === OWN)
    await until(() => child.logs.some((l) => l.msg === 'request completed' && l.res !== undefined), 'the answer to be logged')
    t.assert.strictEqual((await get(client, '/stats')).status, 200)
    const stats = JSON.parse((await get(client, '/stats')).body) as HangupStats
    t.assert.strictEqual(stats.unhandledCancellations, 1)
    t.assert.strictEqual(child.logs.filter((l) => l.msg === OWN).length, 1)
    t.assert.deepStrictEqual(child.logs.filter((l) => l.level === FATAL), [])
  })
}

test('--unhandled-rejections=strict, fatal: false: a genuine rejection ends the process as Node does (exit 1, the error printed)', async (t: TestContext) => {
  const child = await start(t, { fatal: false }, { NODE_OPTIONS: '--unhandled-rejections=strict' })
  await get(connect(t, child.url), '/genuine').catch(() => {})
  const exit = await within(child.exited, PATIENCE_MS, 'the exit')
  t.assert.strictEqual(exit.code, 1)
  t.assert.match(child.stderr(), /Error: a genuine failure nobody handles/)
})
