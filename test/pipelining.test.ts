import { once } from 'node:events'
import net from 'node:net'
import { test, type TestContext } from 'node:test'
import { Client } from 'undici'
import { buildApp, listen, NEVER_MS, PATIENCE_MS, until, within } from './helpers/app.js'
import { connectRaw, requestText } from './helpers/raw-client.js'
import { connect, startFixture, type FixtureProcess } from './helpers/child.js'
import type { LogLine } from './helpers/logs.js'

/**
 * HTTP/1.1 pipelining: a connection that carries several requests at once.
 * During a graceful close every request the server received on it is
 * answered, and `Connection: close` goes on the last one only (Node ends the
 * connection after a `Connection: close` response and drops the responses
 * queued behind it). A connection reset while answers are queued: each
 * request is released and counted as a hang-up, on every Node.
 */

interface Answer {
  status: number
  headers: Record<string, string>
  body: string
}

/** The responses in `data` (each with a Content-Length), in order. */
function parseResponses (data: Buffer): Answer[] {
  const answers: Answer[] = []
  let offset = 0
  while (offset < data.length) {
    const headEnd = data.indexOf('\r\n\r\n', offset)
    if (headEnd < 0) break
    const [statusLine, ...lines] = data.subarray(offset, headEnd).toString('latin1').split('\r\n')
    const headers: Record<string, string> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
    }
    const length = Number(headers['content-length'] ?? 0)
    answers.push({ status: Number(statusLine.split(' ')[1]), headers, body: data.subarray(headEnd + 4, headEnd + 4 + length).toString() })
    offset = headEnd + 4 + length
  }
  return answers
}

/** A raw connection that sends `paths` pipelined and collects what comes back until the server closes it. */
async function pipeline (t: TestContext, port: number, paths: string[]): Promise<{ socket: net.Socket, send (paths: string[]): void, closed: Promise<Answer[]> }> {
  const socket = await connectRaw(t, port)
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  const closed = once(socket, 'close').then(() => parseResponses(Buffer.concat(chunks)))
  const send = (more: string[]): void => { socket.write(more.map((path) => requestText({ path })).join('')) }
  send(paths)
  return { socket, send, closed }
}

/** A promise the test resolves: a handler that answers when told. */
function gate (): { opened: Promise<void>, open (): void } {
  let open = (): void => {}
  const opened = new Promise<void>((resolve) => { open = resolve })
  return { opened, open }
}

const inProcess = { fatal: { exit: false, signals: [], gracePeriod: NEVER_MS } }

async function gatedApp (t: TestContext, names: string[]) {
  const { app, loud } = await buildApp(t, inProcess)
  const gates = new Map(names.map((name) => [name, gate()]))
  app.get<{ Params: { name: string } }>('/gate/:name', async (request) => {
    await gates.get(request.params.name)?.opened
    return { name: request.params.name }
  })
  app.get('/fast', async () => ({ name: 'fast' }))
  const { port } = await listen(app)
  return { app, loud, port, gates }
}

test('shutdown(): a slow request and 10 pipelined behind it on one connection are all answered, then the connection closes', async (t: TestContext) => {
  const { app, loud, port, gates } = await gatedApp(t, ['slow'])
  const fast = Array<string>(10).fill('/fast')
  const conn = await pipeline(t, port, ['/gate/slow', ...fast])
  // The 10 are handled and their answers queued behind the slow one.
  await until(() => app.hangup.stats().inflight === 11, '11 requests in flight')
  const closed = app.hangup.shutdown()
  gates.get('slow')?.open()
  const answers = await within(conn.closed, PATIENCE_MS, 'the server to close the connection')
  t.assert.deepStrictEqual(answers.map((a) => `${a.status} ${JSON.parse(a.body).name as string}`), ['200 slow', ...fast.map(() => '200 fast')])
  // The last answer was written before the close, with keep-alive: the
  // connection is closed once idle after it, no answer says close.
  t.assert.deepStrictEqual(answers.map((a) => a.headers.connection), Array(11).fill('keep-alive'))
  await within(closed, PATIENCE_MS, 'the close')
  t.assert.strictEqual(app.hangup.stats().inflight, 0)
  t.assert.deepStrictEqual(app.hangup.stats().disconnects, { upload: 0, handler: 0, response: 0 })
  t.assert.deepStrictEqual(loud(), [])
})

test('shutdown(): Connection: close goes on the connection\'s last request; one that arrives during the drain becomes the last', async (t: TestContext) => {
  const { app, loud, port, gates } = await gatedApp(t, ['a', 'b', 'c'])
  const conn = await pipeline(t, port, ['/gate/a', '/fast'])
  await until(() => app.hangup.stats().inflight === 2, '2 requests in flight')
  // The last one (/fast) has its answer written, with keep-alive: nothing to mark.
  const closed = app.hangup.shutdown()
  conn.send(['/gate/b'])
  await until(() => app.hangup.stats().inflight === 3, 'a third request in flight')
  conn.send(['/gate/c'])
  await until(() => app.hangup.stats().inflight === 4, 'a fourth request in flight')
  // Handlers finish in reverse: the answers still go out in order.
  for (const name of ['c', 'b', 'a']) gates.get(name)?.open()
  const answers = await within(conn.closed, PATIENCE_MS, 'the server to close the connection')
  // b was the last, then gave its `Connection: close` back to c: Node then
  // sends no Connection header, which HTTP/1.1 reads as keep-alive.
  t.assert.deepStrictEqual(answers.map((a) => `${a.status} ${JSON.parse(a.body).name as string} ${a.headers.connection ?? 'none'}`), [
    '200 a keep-alive',
    '200 fast keep-alive',
    '200 b none',
    '200 c close'
  ])
  await within(closed, PATIENCE_MS, 'the close')
  t.assert.deepStrictEqual(loud(), [])
})

test('shutdown(): a large answer still flushing to a client that reads slowly is not cut when the idle connections are closed', async (t: TestContext) => {
  const { app, loud } = await buildApp(t, inProcess)
  const size = 16 * 1024 * 1024
  app.get('/big', async (_request, reply) => reply.header('content-type', 'application/octet-stream').send(Buffer.alloc(size, 98)))
  const { port } = await listen(app)
  const conn = await pipeline(t, port, ['/big'])
  conn.socket.pause()
  // The answer is ended, most of it waits in the socket's buffer; the
  // parser has the whole request: Node counts the connection as idle.
  await until(() => app.hangup.stats().inflight === 1, 'the request in flight')
  const closed = app.hangup.shutdown()
  // Past the idle window (250 ms), when idle connections are closed.
  await new Promise((resolve) => setTimeout(resolve, 1000))
  conn.socket.resume()
  const answers = await within(conn.closed, PATIENCE_MS, 'the server to close the connection')
  t.assert.deepStrictEqual(answers.map((a) => `${a.status} ${a.body.length}`), [`200 ${size}`])
  await within(closed, PATIENCE_MS, 'the close')
  t.assert.deepStrictEqual(loud(), [])
})

test('a connection reset while pipelined answers wait behind a slow one: each request is released and counted as a hang-up', async (t: TestContext) => {
  const { app, loud, port, gates } = await gatedApp(t, ['slow'])
  const rounds = 30
  const fast = Array<string>(20).fill('/fast')
  const before = app.hangup.stats()
  for (let round = 0; round < rounds; round++) {
    const conn = await pipeline(t, port, ['/gate/slow', ...fast])
    await until(() => app.hangup.stats().inflight === before.inflight + 21, '21 requests in flight')
    conn.socket.resetAndDestroy()
    await until(() => app.hangup.stats().inflight === before.inflight, 'every request of the connection released')
  }
  gates.get('slow')?.open()
  const stats = app.hangup.stats()
  // The slow one was in its handler; the 20 had their answer generated, never delivered.
  t.assert.deepStrictEqual(stats.disconnects, { upload: 0, handler: rounds, response: rounds * fast.length })
  t.assert.strictEqual(stats.inflight, before.inflight)
  t.assert.deepStrictEqual(loud(), [])
})

/** Counts the child's "incoming request" lines for `url`. */
function incoming (child: FixtureProcess, url: string): number {
  return child.logs.filter((line: LogLine) => line.msg === 'incoming request' && (line.req as { url?: string } | undefined)?.url === url).length
}

/** In flight until the close has started, however slow the machine (test/fixtures/fatal-app.ts). */
const SLOW = '/slow?ms=100&after=close'
const FAST = '/slow?ms=0'

/** How the close is started in the child, and the exit code it ends with. */
const closes = [
  {
    name: 'a crash',
    exitCode: 1,
    start: async (t: TestContext, child: FixtureProcess) => {
      const res = await connect(t, child.url).request({ path: '/crash/timer', method: 'GET' })
      await res.body.text()
      t.assert.strictEqual(res.statusCode, 500)
    }
  },
  { name: 'SIGTERM', exitCode: 0, start: async (_t: TestContext, child: FixtureProcess) => { child.kill('SIGTERM') } }
]

for (const close of closes) {
  test(`${close.name} while a raw connection carries 11 pipelined requests: 11 of 11 answered, exit ${close.exitCode}`, async (t: TestContext) => {
    const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS } })
    const fast = Array<string>(10).fill(FAST)
    const conn = await pipeline(t, Number(new URL(child.url).port), [SLOW, ...fast])
    await child.waitForLog(() => incoming(child, SLOW) === 1 && incoming(child, FAST) === 10)
    await close.start(t, child)
    const answers = await within(conn.closed, PATIENCE_MS, 'the child to close the connection')
    t.assert.deepStrictEqual(answers.map((a) => a.status), Array(11).fill(200))
    t.assert.deepStrictEqual(answers.map((a) => (JSON.parse(a.body) as { ms: number }).ms), [100, ...fast.map(() => 0)])
    t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'the child to exit')).code, close.exitCode)
  })

  test(`${close.name} while undici (pipelining: 11) has 11 requests on one connection: 11 of 11 answered, exit ${close.exitCode}`, async (t: TestContext) => {
    const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS } })
    const client = new Client(child.url, { pipelining: 11, keepAliveTimeout: 30_000 })
    t.after(() => client.destroy())
    let connections = 0
    client.on('connect', () => { connections++ })
    // undici pipelines only on a connection whose first answer said
    // keep-alive, and only requests that are not `blocking` (a GET is, by default).
    await (await client.request({ path: FAST, method: 'GET' })).body.text()
    const paths = [SLOW, ...Array<string>(10).fill(FAST)]
    const answers = paths.map((path) => client.request({ path, method: 'GET', blocking: false }).then(async (res) => ({ status: res.statusCode, body: await res.body.text() })))
    await child.waitForLog(() => incoming(child, SLOW) === 1 && incoming(child, FAST) === 11)
    await close.start(t, child)
    const settled = await within(Promise.allSettled(answers), PATIENCE_MS, 'the 11 answers')
    t.assert.deepStrictEqual(settled.map((s) => s.status === 'fulfilled' ? s.value.status : String(s.reason)), Array(11).fill(200))
    t.assert.strictEqual(connections, 1, 'one connection: nothing was retried')
    t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'the child to exit')).code, close.exitCode)
  })
}

test('a crash of the first of 11 pipelined requests: its generic 500 keeps the connection open for the 10 behind it, all answered, exit 1', async (t: TestContext) => {
  const child = await startFixture(t, { fatal: { gracePeriod: NEVER_MS } })
  const fast = Array<string>(10).fill(FAST)
  const conn = await pipeline(t, Number(new URL(child.url).port), ['/crash/timer', ...fast])
  const answers = await within(conn.closed, PATIENCE_MS, 'the child to close the connection')
  t.assert.deepStrictEqual(answers.map((a) => a.status), [500, ...fast.map(() => 200)])
  // Node ends a connection after a `Connection: close` answer: the 500 must not say it.
  t.assert.notStrictEqual(answers[0]?.headers.connection, 'close')
  t.assert.deepStrictEqual(JSON.parse(answers[0]?.body ?? ''), { statusCode: 500, error: 'Internal Server Error', message: 'Internal Server Error' })
  t.assert.strictEqual((await within(child.exited, PATIENCE_MS, 'the child to exit')).code, 1)
})
