import { test, type TestContext } from 'node:test'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { request } from 'undici'
import { NEVER_MS, PATIENCE_MS, until, within } from './helpers/app.js'
import { killAfter } from './helpers/child.js'
import { hangUpWhenCalled } from './helpers/raw-client.js'
import { startUpstream } from './helpers/upstream.js'

const root = join(__dirname, '..', '..', '..')

const LISTENING = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/

interface Example {
  port: number
  /** The child's stdout lines (pino's JSON logs). */
  lines: string[]
  stderr: () => string
  exited: Promise<[number | null]>
}

/**
 * Runs one of examples/*.mjs as a user would (it imports 'fastify-hangup' by
 * name: the built package) on port 0, and waits until it listens. The child
 * is killed when the test ends.
 */
async function startExample (t: TestContext, file: string, env: Record<string, string> = {}, { kill = 'child', preload = '' } = {}): Promise<Example> {
  // `preload`: an example loaded first with --import, as its page says to.
  const args = preload === '' ? [] : ['--import', `./examples/${preload}`]
  const child = spawn(process.execPath, [...args, join(root, 'examples', file)], {
    cwd: root,
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    // A cluster's workers are killed with their primary's group.
    detached: kill === 'group'
  })
  killAfter(t, child, kill === 'group')
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = once(child, 'exit') as Promise<[number | null]>
  const lines: string[] = []
  createInterface({ input: child.stdout }).on('line', (line) => lines.push(line))
  await until(() => lines.some((line) => LISTENING.test(line)), `${file} to listen`)
  const port = Number(LISTENING.exec(lines.find((line) => LISTENING.test(line)) as string)?.[1])
  return { port, lines, stderr: () => stderr, exited }
}

// examples/quickstart.mjs is the README's example; it imports 'fastify-hangup' by
// name, so this runs the built package as a user would.
test('the README example proxies a POST and stops the upstream when the client hangs up', async (t: TestContext) => {
  t.plan(4)
  const upstream = await startUpstream({ delayMs: 20 })
  const slow = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => Promise.all([upstream.close(), slow.close()]))

  const served = await startExample(t, 'quickstart.mjs', { UPSTREAM: upstream.url })
  const res = await request(`http://127.0.0.1:${served.port}/search`, { method: 'POST', body: '{"q":"x"}', headers: { 'content-type': 'application/json' } })
  t.assert.strictEqual(await res.body.text(), 'done')
  t.assert.strictEqual((await upstream.closed(1)).bodyBytes, 9)

  const hungUp = await startExample(t, 'quickstart.mjs', { UPSTREAM: slow.url })
  await hangUpWhenCalled(t, hungUp.port, { method: 'POST', path: '/search', headers: { 'content-type': 'application/json' }, body: '{"q":"x"}' }, slow)
  const record = await slow.closed(1)
  t.assert.strictEqual(record.closedEarly, true)
  // Cancelled, not answered (the upstream works NEVER_MS), and promptly: not at a client timeout.
  t.assert.ok(record.closedAt - record.startedAt < PATIENCE_MS)
})

// examples/crash.mjs is docs/crashes.md's example, run as pasted.
test('the crash example (docs/crashes.md): the crashing request gets a generic 500, the slow one finishes, the process exits 1', async (t: TestContext) => {
  const { port, lines, stderr, exited } = await startExample(t, 'crash.mjs')
  const base = `http://127.0.0.1:${port}`
  t.assert.strictEqual((await request(`${base}/ready`)).statusCode, 200)
  const slow = request(`${base}/slow`)
  await until(() => lines.some((line) => line.includes('"url":"/slow"')), 'the slow request to arrive')
  const crashed = await request(`${base}/crash`)
  t.assert.strictEqual(crashed.statusCode, 500)
  t.assert.deepStrictEqual(await crashed.body.json(), { statusCode: 500, error: 'Internal Server Error', message: 'Internal Server Error' })
  const finished = await slow
  t.assert.strictEqual(finished.statusCode, 200)
  t.assert.deepStrictEqual(await finished.body.json(), { ok: true })
  const [code] = await within(exited, PATIENCE_MS, 'the example to exit')
  t.assert.strictEqual(code, 1)
  t.assert.match(stderr(), /report to your error tracker: db password is hunter2 req-/)
})

// examples/autobind.mjs is the README's autoBind example, run as pasted.
test('the README autoBind example: a repository call made with no signal stops when the client hangs up', async (t: TestContext) => {
  const quick = await startUpstream({ delayMs: 10 })
  const slow = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => Promise.all([quick.close(), slow.close()]))

  const served = await startExample(t, 'autobind.mjs', { UPSTREAM: quick.url })
  const res = await request(`http://127.0.0.1:${served.port}/reports/7`)
  t.assert.deepStrictEqual(await res.body.json(), { id: '7', report: 'done' })
  t.assert.strictEqual((await quick.closed(1)).url, '/reports/7')

  const { port } = await startExample(t, 'autobind.mjs', { UPSTREAM: slow.url })
  await hangUpWhenCalled(t, port, { path: '/reports/7' }, slow)
  const record = await slow.closed(1)
  t.assert.strictEqual(record.closedEarly, true)
})

// examples/cluster.mjs is docs/cluster.md's example, run as pasted.
test('the cluster example (docs/cluster.md): two workers; a crash is answered 500 and replaced; SIGTERM stops all, exit 0', async (t: TestContext) => {
  const { port, lines, exited } = await startExample(t, 'cluster.mjs', {}, { kill: 'group' })
  await until(() => lines.filter((line) => line.includes('"msg":"worker listening"')).length === 2, 'both workers to listen')
  const base = `http://127.0.0.1:${port}`
  t.assert.strictEqual((await request(`${base}/ready`)).statusCode, 200)
  const slow = request(`${base}/slow`)
  const crashed = await request(`${base}/crash`, { reset: true })
  t.assert.strictEqual(crashed.statusCode, 500)
  await until(() => lines.some((line) => line.includes('"msg":"worker listening"') && line.includes('"replaces"')), 'the replacement to listen')
  t.assert.strictEqual((await slow).statusCode, 200)
  t.assert.strictEqual((await request(`${base}/`)).statusCode, 200)
  process.kill(primaryPid(lines), 'SIGTERM')
  const [code] = await within(exited, PATIENCE_MS, 'the cluster to exit')
  t.assert.strictEqual(code, 0)
})

/** The primary's pid: the first line the supervisor logs is its own. */
function primaryPid (lines: string[]): number {
  return (JSON.parse(lines.find((line) => line.includes('"msg":"worker forked"')) as string) as { pid: number }).pid
}

// `npm run demo:crash`: it prints what the clients got; the test reads it.
test('npm run demo:crash: three crashes under load, each answered 500, each worker replaced, nothing lost, exit 0', { timeout: NEVER_MS + PATIENCE_MS }, async (t: TestContext) => {
  const child = spawn(process.execPath, [join(root, 'examples', 'demo-crash.js')], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => { child.kill('SIGKILL') })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  // About 9 s on a quiet machine; the demo's own watchdog gives up at NEVER_MS.
  const [code] = await within(once(child, 'exit') as Promise<[number | null]>, NEVER_MS, 'the demo to end')
  t.assert.strictEqual(code, 0, out)
  const answered = Number(/answered: (\d+)/.exec(out)?.[1])
  const lost = Number(/lost: (\d+)/.exec(out)?.[1])
  // How many depends on the machine's speed; that the load ran does not.
  t.assert.ok(answered > 0, out)
  t.assert.ok(lost <= answered / 1000, `lost ${lost} of ${answered}: a loss is a client racing a close, bounded like the reliability test's`)
  t.assert.match(out, /crashing requests: 500, 500, 500 /)
  t.assert.match(out, /workers forked: 5 /)
  t.assert.match(out, /all workers exited: the primary exits 0/)
})

/** The port of the first server the example logs listening other than `port` (its second server). */
async function otherPort (example: Example): Promise<number> {
  const other = (line: string): boolean => LISTENING.test(line) && Number(LISTENING.exec(line)?.[1]) !== example.port
  await until(() => example.lines.some(other), 'the second server to listen')
  return Number(LISTENING.exec(example.lines.find(other) as string)?.[1])
}

// examples/prometheus.mjs is docs/events.md's Prometheus recipe, run as pasted.
test('the Prometheus recipe (docs/events.md): hang-ups by phase and route, cancelled calls by reason, requests in flight, fatal errors', async (t: TestContext) => {
  const slow = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => slow.close())
  const served = await startExample(t, 'prometheus.mjs', { UPSTREAM: slow.url, METRICS_PORT: '0' })
  const metrics = `http://127.0.0.1:${await otherPort(served)}/metrics`
  const scrape = async (): Promise<string> => await (await request(metrics)).body.text()
  const sample = (text: string, name: string): number | undefined => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `))
    return line === undefined ? undefined : Number(line.slice(name.length + 1))
  }

  await hangUpWhenCalled(t, served.port, { path: '/search' }, slow)
  t.assert.strictEqual((await slow.closed(1)).closedEarly, true)
  // One request left in flight, waiting on the upstream.
  const leave = new AbortController()
  const inFlight = request(`http://127.0.0.1:${served.port}/search`, { signal: leave.signal }).catch(() => {})
  await until(() => slow.received() === 2, 'the second call to reach the upstream')
  const before = await scrape()
  t.assert.strictEqual(sample(before, 'http_client_hangups_total{phase="handler",route="/search"}'), 1, before)
  t.assert.strictEqual(sample(before, 'upstream_calls_cancelled_total{reason="clientDisconnected",client="undici"}'), 1, before)
  t.assert.strictEqual(sample(before, 'http_requests_in_flight'), 1, before)
  t.assert.strictEqual(sample(before, 'fatal_errors_total'), 0, before)

  t.assert.strictEqual((await request(`http://127.0.0.1:${served.port}/crash`)).statusCode, 500)
  // Scraped while the close drains the request in flight.
  const after = await scrape()
  t.assert.strictEqual(sample(after, 'fatal_errors_total'), 1, after)
  // Its client leaves: drained, the process exits 1 (a crash).
  leave.abort()
  await inFlight
  const [code] = await within(served.exited, PATIENCE_MS, 'the example to exit')
  t.assert.strictEqual(code, 1)
})

// examples/opentelemetry.mjs is docs/events.md's OpenTelemetry recipe, run
// as pasted after examples/tracing.mjs (instrumentation-http's server span,
// printed by the console exporter).
test('the OpenTelemetry recipe (docs/events.md): the request\'s server span gets a hang-up event and a cancelled-call event, with their attributes', async (t: TestContext) => {
  const slow = await startUpstream({ delayMs: NEVER_MS })
  t.after(() => slow.close())
  const served = await startExample(t, 'opentelemetry.mjs', { UPSTREAM: slow.url }, { preload: 'tracing.mjs' })
  await hangUpWhenCalled(t, served.port, { path: '/search' }, slow)
  t.assert.strictEqual((await slow.closed(1)).closedEarly, true)
  const printed = (): string => served.lines.join('\n')
  await until(() => printed().includes("name: 'client hung up'"), 'the server span to be printed')
  const span = printed()
  t.assert.match(span, /kind: 1,/, 'a server span')
  t.assert.match(span, /name: 'upstream call cancelled',\s+attributes: \{\s+'hangup\.cancel\.reason': 'clientDisconnected',\s+'hangup\.cancel\.client': 'undici'/)
  t.assert.match(span, /name: 'client hung up',\s+attributes: \{ 'hangup\.phase': 'handler' \}/)
  t.assert.match(span, /'hangup\.phase': 'handler',/)
  t.assert.match(span, /'hangup\.cancel\.reason': 'clientDisconnected'/)
})

/** Each example the tests above run, and the page that shows it. */
const SHOWN = {
  'quickstart.mjs': 'README.md',
  'autobind.mjs': 'README.md',
  'crash.mjs': 'docs/crashes.md',
  'cluster.mjs': 'docs/cluster.md',
  'prometheus.mjs': 'docs/events.md',
  'opentelemetry.mjs': 'docs/events.md',
  'tracing.mjs': 'docs/events.md'
}

// "Runs as pasted" holds only while the page shows the file the tests run.
test('the README and docs/ show each example the tests run, verbatim (leading comment lines aside)', async (t: TestContext) => {
  const { readFile } = await import('node:fs/promises')
  for (const [file, page] of Object.entries(SHOWN)) {
    const text = await readFile(join(root, page), 'utf8')
    const blocks = [...text.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1])
    const source = (await readFile(join(root, 'examples', file), 'utf8')).replace(/^(\/\/.*\n)+/, '')
    t.assert.ok(blocks.includes(source), `${page} has examples/${file} as a js block`)
    t.assert.ok(text.includes(`(${page === 'README.md' ? '' : '../'}examples/${file})`), `${page} links examples/${file}`)
  }
})
