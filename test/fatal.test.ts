import cluster from 'node:cluster'
import { once } from 'node:events'
import { test, type TestContext } from 'node:test'
import http2 from 'node:http2'
import { Client } from 'undici'
import { setTimeout as sleep } from 'node:timers/promises'
import { DUPLICATE_SIGNAL_MS } from '../lib/shutdown/process-guard.js'
import { NEVER_MS, PATIENCE_MS, until, within } from './helpers/app.js'
import { connect, FIXTURE, genericBody, startFixture, type FixtureProcess } from './helpers/child.js'
import { ERROR, FATAL, WARN, type LogLine } from './helpers/logs.js'
import { connectError } from './helpers/raw-client.js'
import { startUpstream } from './helpers/upstream.js'

/**
 * Fatal errors in child processes with real sockets. Each test
 * starts test/fixtures/fatal-app.js, crashes it (or signals it) while other
 * requests are in flight, and checks what every client got, what the child
 * logged, its exit code, and when it exited.
 */

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  /** performance.now() when the whole body arrived. */
  at: number
}

async function get (client: Client, path: string, method: 'GET' | 'POST' = 'GET', body?: string): Promise<Answer> {
  const res = await client.request({ path, method, body, headers: body === undefined ? {} : { 'content-type': 'application/json' } })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body: text, at: performance.now() }
}

function incoming (url: string) {
  return (line: LogLine): boolean => line.msg === 'incoming request' && (line.req as { url?: string } | undefined)?.url === url
}

const isFatalLine = (line: LogLine): boolean => line.level === FATAL

/** Lines above `info` other than the one fatal line: there should be none. */
function loudLines (child: FixtureProcess): LogLine[] {
  return child.logs.filter((line) => (line.level ?? 0) >= WARN && line.level !== FATAL)
}

const crashes: Array<{ how: string, path: string, method: 'GET' | 'POST', body?: string, origin: RegExp }> = [
  { how: 'a throw in a timer', path: '/crash/timer', method: 'GET', origin: /uncaught exception/ },
  { how: 'a detached promise that rejects', path: '/crash/promise', method: 'GET', origin: /unhandled rejection/ },
  { how: 'a throw in an event-emitter listener', path: '/crash/emitter', method: 'GET', origin: /uncaught exception/ },
  { how: 'a throw in a timer after a JSON body was read', path: '/crash/body', method: 'POST', body: JSON.stringify({ a: 'x'.repeat(4000) }), origin: /uncaught exception/ }
]

for (const crash of crashes) {
  test(`fatal, ${crash.how}: that request gets a generic 500, the others finish, idle connections close, exit 1`, async (t: TestContext) => {
    // The grace period is longer than any wait here: the exit below comes from the drain, not the deadline.
    const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS } })
    const idle = connect(t, child.url)
    const busy = [connect(t, child.url), connect(t, child.url)]
    const crasher = connect(t, child.url)
    // Open every connection first, so the busy ones are reused keep-alive connections.
    await Promise.all([idle, ...busy, crasher].map((client) => get(client, '/slow?ms=1')))
    const idleClosed = once(idle, 'disconnect')

    const slow = busy.map((client) => get(client, '/slow?ms=200&after=close'))
    await child.waitForLog((line) => child.logs.filter(incoming('/slow?ms=200&after=close')).length === 2 && incoming('/slow?ms=200&after=close')(line))
    const crashed = await get(crasher, crash.path, crash.method, crash.body)

    // The request that crashed: 500, generic body, connection closed.
    t.assert.strictEqual(crashed.status, 500)
    t.assert.deepStrictEqual(JSON.parse(crashed.body), genericBody(500))
    t.assert.doesNotMatch(crashed.body, /secret|hunter2/)
    t.assert.strictEqual(crashed.headers.connection, 'close')
    // No new connection, and the idle keep-alive one is closed now, not at
    // its timeout (Fastify's default, 72 s, is longer than PATIENCE_MS).
    t.assert.strictEqual(await connectError(child.ports[0]), 'ECONNREFUSED', JSON.stringify({ crashed, logs: child.logs }))
    await within(idleClosed, PATIENCE_MS, 'the idle keep-alive connection to close')

    // Every other request in flight finishes, and says the connection closes.
    for (const answer of await Promise.all(slow)) {
      t.assert.strictEqual(answer.status, 200)
      t.assert.deepStrictEqual(JSON.parse(answer.body), { ok: true, ms: 200, closing: true })
      t.assert.strictEqual(answer.headers.connection, 'close')
    }
    // Drained: the exit comes long before the grace deadline.
    const exit = await within(child.exited, PATIENCE_MS, 'the child to exit')
    t.assert.strictEqual(exit.code, 1)
    t.assert.ok(!child.logs.some((line) => /grace period over/.test(line.msg ?? '')), 'no deadline')

    // Logged once, at fatal, with the request id of the request that crashed.
    const crashId = child.logs.find(incoming(crash.path))?.reqId
    const fatalLines = child.logs.filter(isFatalLine)
    t.assert.strictEqual(fatalLines.length, 1)
    t.assert.strictEqual(fatalLines[0].reqId, crashId)
    t.assert.match(fatalLines[0].msg ?? '', crash.origin)
    t.assert.match(fatalLines[0].err?.message ?? '', /^secret-/)
    t.assert.deepStrictEqual(loudLines(child), [])
    t.assert.strictEqual(child.logs.filter((line) => line.msg === 'graceful close started').length, 1)
    const closed = child.logs.find((line) => line.msg === 'app closed')
    t.assert.strictEqual((closed?.stats as { fatal: number }).fatal, 1)
  })
}

test('fatal: headers the handler set before the crash are not in the 500', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS } })
  const crashed = await get(connect(t, child.url), '/crash/leaky')
  t.assert.strictEqual(crashed.status, 500)
  t.assert.strictEqual(crashed.headers['set-cookie'], undefined)
  t.assert.strictEqual(crashed.headers['x-secret'], undefined)
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'exit')).code, 1)
})

test('fatal after the response started: that connection is cut, the client sees no clean end', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS } })
  const client = connect(t, child.url)
  const res = await client.request({ path: '/crash/after-headers', method: 'GET' })
  t.assert.strictEqual(res.statusCode, 200)
  await t.assert.rejects(res.body.text())
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'exit')).code, 1)
})

test('fatal outside any request (a timer started at boot): logged without a request id, in-flight requests finish, exit 1', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS }, bootCrashOnArm: true, onFatal: 'log' })
  const slow = get(connect(t, child.url), '/slow?ms=200&after=close')
  await child.waitForLog(incoming('/slow?ms=200&after=close'))
  await get(connect(t, child.url), '/arm-boot-crash')
  const fatalLine = await child.waitForLog(isFatalLine)
  t.assert.strictEqual(fatalLine.reqId, undefined)
  t.assert.match(fatalLine.err?.message ?? '', /secret-boot/)
  const answer = await slow
  t.assert.strictEqual(answer.status, 200)
  t.assert.strictEqual(answer.headers.connection, 'close')
  const exit = await within(child.exited, PATIENCE_MS, 'exit')
  t.assert.strictEqual(exit.code, 1)
  t.assert.strictEqual(child.logs.find((line) => line.msg === 'onFatal called')?.onFatalFor, null)
})

test('a second fatal error during the close answers its own request 500 and starts no second close', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS } })
  const late = get(connect(t, child.url), '/crash/timer?ms=20&after=close')
  await child.waitForLog(incoming('/crash/timer?ms=20&after=close'))
  const first = await get(connect(t, child.url), '/crash/timer?ms=10')
  t.assert.strictEqual(first.status, 500)
  const second = await late
  t.assert.strictEqual(second.status, 500)
  t.assert.deepStrictEqual(JSON.parse(second.body), genericBody(500))
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'exit')).code, 1)
  t.assert.strictEqual(child.logs.filter(isFatalLine).length, 2)
  t.assert.match(child.logs.filter(isFatalLine)[1].msg ?? '', /already closing/)
  t.assert.strictEqual(child.logs.filter((line) => line.msg === 'graceful close started').length, 1)
})

test('SIGTERM drains: in-flight requests finish with Connection: close, new connections are refused, exit 0', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS } })
  const idle = connect(t, child.url)
  await get(idle, '/slow?ms=1')
  const idleClosed = once(idle, 'disconnect')
  const slow = get(connect(t, child.url), '/slow?ms=200&after=close')
  await child.waitForLog(incoming('/slow?ms=200&after=close'))
  child.kill('SIGTERM')
  await child.waitForLog((line) => line.msg === 'graceful close started')
  t.assert.strictEqual(await connectError(child.ports[0]), 'ECONNREFUSED')
  await within(idleClosed, PATIENCE_MS, 'the idle connection to close')
  const answer = await slow
  t.assert.strictEqual(answer.status, 200)
  t.assert.strictEqual(answer.headers.connection, 'close')
  const exit = await within(child.exited, PATIENCE_MS, 'exit')
  t.assert.strictEqual(exit.code, 0)
  t.assert.deepStrictEqual(child.logs.filter((line) => (line.level ?? 0) >= WARN), [])
})

test('a second SIGTERM while draining exits at once', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS } })
  const slow = get(connect(t, child.url), `/slow?ms=${NEVER_MS}`).catch((error: Error) => error)
  await child.waitForLog(incoming(`/slow?ms=${NEVER_MS}`))
  child.kill('SIGTERM')
  await child.waitForLog((line) => line.msg === 'graceful close started')
  // Later than a duplicate delivery of the first (DUPLICATE_SIGNAL_MS).
  await sleep(DUPLICATE_SIGNAL_MS + 100)
  child.kill('SIGTERM')
  const exit = await within(child.exited, PATIENCE_MS, 'exit after the second signal')
  t.assert.strictEqual(exit.code, 1)
  // At once: the drain (a request of NEVER_MS, within a grace period as long) was cut.
  t.assert.ok(await slow instanceof Error)
})

test('the same signal twice at once (a process group\'s Ctrl-C plus a parent\'s forwarded copy: npm, pm2) is one stop: the drain finishes, exit 0', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS } })
  const slow = get(connect(t, child.url), '/slow?ms=200&after=close')
  await child.waitForLog(incoming('/slow?ms=200&after=close'))
  child.kill('SIGINT')
  // Two kill()s in a row would reach the child as one (the kernel does not
  // queue a pending signal twice); the forwarded copy comes a moment later.
  await child.waitForLog((line) => line.msg === 'graceful close started')
  child.kill('SIGINT')
  t.assert.strictEqual((await slow).status, 200)
  const exit = await within(child.exited, PATIENCE_MS, 'the child to exit')
  t.assert.strictEqual(exit.code, 0)
  t.assert.strictEqual(child.logs.filter((line) => line.msg === 'signal received again at once: the same stop, delivered twice').length, 1)
  t.assert.deepStrictEqual(loudLines(child), [])
})

test('a log stream without flush() (pm2 makes process.stdout asynchronous): every line is written before the exit', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS }, asyncStdout: true })
  t.assert.strictEqual((await get(connect(t, child.url), '/crash/timer')).status, 500)
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'the child to exit')).code, 1)
  const messages = child.logs.map((line) => line.msg)
  for (const msg of ['uncaught exception: closing gracefully', 'graceful close started', 'app closed']) {
    t.assert.ok(messages.includes(msg), `"${msg}" was written; got ${JSON.stringify(messages)}`)
  }
})

test('at the grace deadline a straggler\'s signal aborts with FST_HANGUP_SERVER_CLOSING, its upstream sees the close, it gets 503', async (t: TestContext) => {
  const upstream = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => upstream.close())
  const child = await startFixture(t, { fatal: { gracePeriod: 400 }, upstream: upstream.url })
  const bound = get(connect(t, child.url), '/upstream')
  const deaf = get(connect(t, child.url), '/ignores-signal')
  await child.waitForLog(incoming('/ignores-signal'))
  await until(() => upstream.received() === 1, 'the upstream call')
  child.kill('SIGTERM')

  const record = await upstream.closed(1)
  t.assert.strictEqual(record.closedEarly, true)
  const boundAnswer = await bound
  t.assert.strictEqual(boundAnswer.status, 503)
  t.assert.strictEqual(JSON.parse(boundAnswer.body).code, 'FST_HANGUP_SERVER_CLOSING')
  const deafAnswer = await deaf
  t.assert.strictEqual(deafAnswer.status, 503)
  t.assert.deepStrictEqual(JSON.parse(deafAnswer.body), genericBody(503))
  t.assert.strictEqual(deafAnswer.headers.connection, 'close')
  const ended = child.logs.find((line) => line.msg === 'upstream call ended')
  t.assert.strictEqual(ended?.reasonCode, 'FST_HANGUP_SERVER_CLOSING')

  // The upstream and /ignores-signal would take longer than this wait: the deadline ended them.
  const exit = await within(child.exited, PATIENCE_MS, 'exit')
  t.assert.strictEqual(exit.code, 0)
  t.assert.ok(child.logs.some((line) => line.level === WARN && /grace period over/.test(line.msg ?? '')))
})

test('onFatal is called with the error and the request before exit; one that throws is logged and the exit still comes', async (t: TestContext) => {
  const reported = await startFixture(t, { fatal: { gracePeriod: NEVER_MS }, onFatal: 'log' })
  await get(connect(t, reported.url), '/crash/timer')
  const line = await reported.waitForLog((l) => l.msg === 'onFatal called')
  t.assert.strictEqual(line.onFatalFor, reported.logs.find(incoming('/crash/timer'))?.reqId)
  t.assert.match(String(line.onFatalError), /secret-timer/)
  t.assert.strictEqual((await within(reported.exited, PATIENCE_MS, 'exit')).code, 1)

  const throwing = await startFixture(t, { fatal: { gracePeriod: NEVER_MS }, onFatal: 'throw' })
  await get(connect(t, throwing.url), '/crash/timer')
  const exit = await within(throwing.exited, PATIENCE_MS, 'exit')
  t.assert.strictEqual(exit.code, 1)
  t.assert.ok(throwing.logs.some((l) => l.level === ERROR && l.msg === 'fatal.onFatal failed' && l.err?.message === 'reporter down'))
})

test('an onFatal that never settles holds the exit no longer than the grace period', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: 500 }, onFatal: 'hang' })
  const client = connect(t, child.url)
  await get(client, '/slow?ms=1')
  // Before the request that crashes is sent: the grace period starts after this.
  const sentAt = performance.now()
  await get(client, '/crash/timer')
  // The reporter never settles and keeps the loop alive: only the deadline ends the process.
  const exit = await within(child.exited, PATIENCE_MS, 'exit')
  t.assert.strictEqual(exit.code, 1)
  t.assert.ok(exit.at - sentAt >= 500, `exited ${Math.round(exit.at - sentAt)} ms after the crash was sent, before the grace period (500 ms) was over`)
})

test('fatal.isFatal escalates a chosen request error: generic 500, Connection: close, graceful close, exit 1; other errors stay ordinary', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS }, isFatalCode: 'EPOOLCORRUPT' })
  const client = connect(t, child.url)
  const ordinary = await get(client, '/plain-error')
  t.assert.strictEqual(ordinary.status, 500)
  t.assert.match(ordinary.body, /an ordinary failure/)
  t.assert.notStrictEqual(ordinary.headers.connection, 'close')

  const escalated = await get(client, '/pool-error')
  t.assert.strictEqual(escalated.status, 500)
  t.assert.deepStrictEqual(JSON.parse(escalated.body), genericBody(500))
  t.assert.strictEqual(escalated.headers.connection, 'close')
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'exit')).code, 1)
  const fatalLine = child.logs.find(isFatalLine)
  t.assert.match(fatalLine?.msg ?? '', /fatal request error/)
  t.assert.strictEqual(fatalLine?.reqId, child.logs.find(incoming('/pool-error'))?.reqId)
})

test('fastify.hangup.shutdown() starts the same graceful close by hand: exit 0, or 1 with an error', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS } })
  const client = connect(t, child.url)
  const answer = await get(client, '/shutdown')
  t.assert.deepStrictEqual(JSON.parse(answer.body), { closing: true })
  t.assert.strictEqual(answer.headers.connection, 'close')
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'exit')).code, 0)

  const failing = await startFixture(t, { fatal: { gracePeriod: NEVER_MS } })
  await get(connect(t, failing.url), '/shutdown?error=config%20lost')
  t.assert.strictEqual((await within(failing.exited, PATIENCE_MS, 'exit')).code, 1)
  const fatalLine = failing.logs.find(isFatalLine)
  t.assert.strictEqual(fatalLine?.msg, 'shutdown with an error: closing gracefully')
  t.assert.strictEqual(fatalLine?.err?.message, 'config lost')
})

test('exit: false closes the app and leaves the process alive', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS, exit: false }, lingerMs: 300 })
  const crashed = await get(connect(t, child.url), '/crash/timer')
  t.assert.strictEqual(crashed.status, 500)
  await child.waitForLog((line) => line.msg === 'app closed')
  await child.waitForLog((line) => line.msg === 'still alive after the close')
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'exit')).code, 0)
})

test('fatal: false installs no handler: Node\'s own crash (exit 1, nothing answered)', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: false })
  const crashed = get(connect(t, child.url), '/crash/timer').catch((error: Error) => error)
  const exit = await within(child.exited, PATIENCE_MS, 'exit')
  t.assert.strictEqual(exit.code, 1)
  t.assert.ok(await crashed instanceof Error)
  t.assert.strictEqual(child.logs.filter(isFatalLine).length, 0)
})

test('two apps with the plugin in one process: the crash is handled once, both close, one exit', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS }, secondApp: true })
  const second = connect(t, `http://127.0.0.1:${child.ports[1]}`)
  const slow = get(second, '/slow?ms=200&after=close')
  await child.waitForLog(incoming('/slow?ms=200&after=close'))
  const crashed = await get(connect(t, child.url), '/crash/timer')
  t.assert.strictEqual(crashed.status, 500)
  const answer = await slow
  t.assert.strictEqual(answer.status, 200)
  t.assert.strictEqual(answer.headers.connection, 'close')
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'exit')).code, 1)
  t.assert.strictEqual(child.logs.filter(isFatalLine).length, 1)
  t.assert.deepStrictEqual(child.logs.filter((line) => line.msg === 'graceful close started').map((line) => line.app).sort(), ['first', 'second'])
  t.assert.deepStrictEqual(child.logs.filter((line) => line.msg === 'app closed').map((line) => line.app).sort(), ['first', 'second'])
})

test('fatal.asyncContext: false: the crash is not traced to its request, which gets 503 at the deadline', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: 300, asyncContext: false } })
  const crashed = await get(connect(t, child.url), '/crash/timer')
  t.assert.strictEqual(crashed.status, 503)
  t.assert.deepStrictEqual(JSON.parse(crashed.body), genericBody(503))
  t.assert.strictEqual(child.logs.find(isFatalLine)?.reqId, undefined)
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'exit')).code, 1)
})

/**
 * Whether a Node started with `flags` runs AsyncLocalStorage on
 * AsyncContextFrame, by its documentation rather than by the plugin's probe:
 * the default from Node 24 (`--no-async-context-frame` turns it off), behind
 * `--experimental-async-context-frame` on Node 22.
 */
function framesByFlags (flags: string[], major = Number(process.versions.node.split('.')[0])): boolean {
  if (major >= 24) return !flags.includes('--no-async-context-frame')
  return major === 22 && flags.includes('--experimental-async-context-frame')
}

async function crashAnswer (t: TestContext, nodeOptions: string): Promise<number> {
  const child = await startFixture(t, { fatal: { gracePeriod: 300, asyncContext: 'auto' } }, 1, { NODE_OPTIONS: nodeOptions })
  const crashed = await get(connect(t, child.url), '/crash/timer')
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'exit')).code, 1)
  const crashId = child.logs.find(incoming('/crash/timer'))?.reqId
  t.assert.ok(crashId !== undefined)
  t.assert.strictEqual(child.logs.find(isFatalLine)?.reqId, crashed.status === 500 ? crashId : undefined)
  return crashed.status
}

test('fatal.asyncContext: \'auto\' (the default) traces a crash to its request where Node runs AsyncLocalStorage on AsyncContextFrame, and only there', async (t: TestContext) => {
  const inherited = (process.env.NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean)
  const frames = framesByFlags([...process.execArgv, ...inherited])
  t.assert.strictEqual(await crashAnswer(t, inherited.join(' ')), frames ? 500 : 503)
})

test('fatal.asyncContext: \'auto\' follows the flag that switches AsyncContextFrame: on with it on Node 22, off without it on Node 24 and later', async (t: TestContext) => {
  const major = Number(process.versions.node.split('.')[0])
  if (major < 22) {
    t.skip('Node 20 has no AsyncContextFrame')
    return
  }
  const flag = major === 22 ? '--experimental-async-context-frame' : '--no-async-context-frame'
  t.assert.strictEqual(await crashAnswer(t, flag), framesByFlags([flag]) ? 500 : 503)
})

/** One request on an HTTP/2 session, answered in full. */
function h2get (session: http2.ClientHttp2Session, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path })
    let headers: http2.IncomingHttpHeaders = {}
    let body = ''
    stream.setEncoding('utf8')
    stream.on('response', (h) => { headers = h })
    stream.on('data', (chunk: string) => { body += chunk })
    stream.on('end', () => resolve({ status: Number(headers[':status']), headers, body, at: performance.now() }))
    stream.on('error', reject)
  })
}

test('HTTP/2: the crashing stream gets 500, the other streams of the session finish, the session gets GOAWAY, exit 1', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS }, http2: true })
  const session = http2.connect(child.url)
  session.on('error', () => {})
  t.after(() => session.destroy())
  const goaway = once(session, 'goaway')
  await h2get(session, '/slow?ms=1')
  const slow = h2get(session, '/slow?ms=200&after=close')
  await child.waitForLog(incoming('/slow?ms=200&after=close'))
  const crashed = await h2get(session, '/crash/timer')
  t.assert.strictEqual(crashed.status, 500)
  t.assert.deepStrictEqual(JSON.parse(crashed.body), genericBody(500))
  t.assert.strictEqual(crashed.headers.connection, undefined)
  await within(goaway, PATIENCE_MS, 'GOAWAY')
  const answer = await slow
  t.assert.strictEqual(answer.status, 200)
  t.assert.deepStrictEqual(JSON.parse(answer.body), { ok: true, ms: 200, closing: true })
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'exit')).code, 1)
  t.assert.deepStrictEqual(loudLines(child), [])
})

test('in a cluster worker: the primary hears of the close before the drain, then the worker disconnects and exits 1', async (t: TestContext) => {
  cluster.setupPrimary({ exec: FIXTURE, silent: true })
  const worker = cluster.fork({ HANGUP_FIXTURE: JSON.stringify({ fatal: { gracePeriod: NEVER_MS } }) })
  t.after(() => { if (!worker.isDead()) worker.process.kill('SIGKILL') })
  const events: string[] = []
  worker.on('message', (message: { cmd?: string, cause?: string }) => events.push(`message ${message.cmd ?? ''} ${message.cause ?? ''}`))
  worker.on('disconnect', () => events.push('disconnect'))
  // The exit round trip through a primary that is not startCluster's: a throwaway listen.
  worker.on('listening', (address: { port: number }) => { if (port !== 0 && address.port !== port) events.push('probe listen') })
  const exited = once(worker, 'exit') as Promise<[number, string | null]>
  let port = 0
  let output = ''
  worker.process.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk
    port ||= Number(/Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1] ?? 0)
  })
  await until(() => port !== 0, 'the worker to listen')
  const client = connect(t, `http://127.0.0.1:${port}`)
  const slow = get(client, '/slow?ms=200&after=close')
  const crashed = await get(connect(t, `http://127.0.0.1:${port}`), '/crash/timer')
  t.assert.strictEqual(crashed.status, 500)
  t.assert.strictEqual(events[0], 'message fastify-hangup:closing fatal')
  t.assert.strictEqual((await slow).status, 200)
  const [code] = await within(exited, PATIENCE_MS, 'the worker to exit')
  t.assert.strictEqual(code, 1)
  t.assert.deepStrictEqual(events, ['message fastify-hangup:closing fatal', 'probe listen', 'disconnect'])
  t.assert.strictEqual(worker.exitedAfterDisconnect, false, 'a crash is not a voluntary exit: a primary replaces it')
})
