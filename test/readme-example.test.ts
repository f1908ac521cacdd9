import { test, type TestContext } from 'node:test'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { request } from 'undici'
import { until, within } from './helpers/app.js'
import { startUpstream } from './helpers/upstream.js'

const root = join(__dirname, '..', '..', '..')

// examples/quickstart.mjs is the README's example; it imports 'fastify-hangup' by
// name, so this runs the built package as a user would.
test('the README example proxies a POST and stops the upstream when the client hangs up', async (t: TestContext) => {
  t.plan(4)
  const upstream = await startUpstream({ delayMs: 20 })
  const slow = await startUpstream({ delayMs: 5000 })
  t.after(() => Promise.all([upstream.close(), slow.close()]))

  async function startExample (target: string): Promise<{ port: number, lines: string[] }> {
    const child = spawn(process.execPath, [join(root, 'examples', 'quickstart.mjs')], {
      cwd: root,
      env: { ...process.env, UPSTREAM: target, PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit']
    })
    t.after(() => { child.kill() })
    const lines: string[] = []
    const rl = createInterface({ input: child.stdout })
    const listening = new Promise<number>((resolve) => {
      rl.on('line', (line) => {
        lines.push(line)
        const match = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(line)
        if (match !== null) resolve(Number(match[1]))
      })
    })
    return { port: await within(listening, 10000, 'the example to listen'), lines }
  }

  const served = await startExample(upstream.url)
  const res = await request(`http://127.0.0.1:${served.port}/search`, { method: 'POST', body: '{"q":"x"}', headers: { 'content-type': 'application/json' } })
  t.assert.strictEqual(await res.body.text(), 'done')
  t.assert.strictEqual((await upstream.closed(1)).bodyBytes, 9)

  const hungUp = await startExample(slow.url)
  const socket = net.connect(hungUp.port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write('POST /search HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 9\r\n\r\n{"q":"x"}')
  await until(() => slow.received() === 1, 'the upstream to receive the request')
  socket.destroy()
  const record = await slow.closed(1, 3000)
  t.assert.strictEqual(record.closedEarly, true)
  t.assert.ok(record.closedAt - record.startedAt < 3000)
})

// examples/crash.mjs is the README's "Crashes" example, run as pasted.
test('the README crash example: the crashing request gets a generic 500, the slow one finishes, the process exits 1', async (t: TestContext) => {
  const child = spawn(process.execPath, [join(root, 'examples', 'crash.mjs')], {
    cwd: root,
    env: { ...process.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.after(() => { child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const exited = once(child, 'exit') as Promise<[number | null]>
  const lines: string[] = []
  createInterface({ input: child.stdout }).on('line', (line) => lines.push(line))
  await until(() => lines.some((line) => line.includes('Server listening at http://127.0.0.1:')), 'the example to listen', 10000)
  const port = Number(/127\.0\.0\.1:(\d+)/.exec(lines.find((line) => line.includes('Server listening')) as string)?.[1])
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
  const [code] = await within(exited, 5000, 'the example to exit')
  t.assert.strictEqual(code, 1)
  t.assert.match(stderr, /report to your error tracker: db password is hunter2 req-/)
})

// examples/autobind.mjs is the README's autoBind example, run as pasted.
test('the README autoBind example: a repository call made with no signal stops when the client hangs up', async (t: TestContext) => {
  const quick = await startUpstream({ delayMs: 10 })
  const slow = await startUpstream({ delayMs: 10_000 })
  t.after(() => Promise.all([quick.close(), slow.close()]))

  async function startExample (target: string): Promise<number> {
    const child = spawn(process.execPath, [join(root, 'examples', 'autobind.mjs')], {
      cwd: root,
      env: { ...process.env, UPSTREAM: target, PORT: '0' },
      stdio: ['ignore', 'pipe', 'inherit']
    })
    t.after(() => { child.kill('SIGKILL') })
    const lines: string[] = []
    createInterface({ input: child.stdout }).on('line', (line) => lines.push(line))
    await until(() => lines.some((line) => line.includes('Server listening at http://127.0.0.1:')), 'the example to listen', 10000)
    return Number(/127\.0\.0\.1:(\d+)/.exec(lines.find((line) => line.includes('Server listening')) as string)?.[1])
  }

  const served = await startExample(quick.url)
  const res = await request(`http://127.0.0.1:${served}/reports/7`)
  t.assert.deepStrictEqual(await res.body.json(), { id: '7', report: 'done' })
  t.assert.strictEqual((await quick.closed(1)).url, '/reports/7')

  const port = await startExample(slow.url)
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write('GET /reports/7 HTTP/1.1\r\nhost: x\r\n\r\n')
  await until(() => slow.received() === 1, 'the upstream to receive the call')
  socket.destroy()
  const record = await slow.closed(1, 3000)
  t.assert.strictEqual(record.closedEarly, true)
})
