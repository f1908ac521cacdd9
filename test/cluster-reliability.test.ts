import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { Agent, Client, interceptors, request, type Dispatcher } from 'undici'
import { within } from './helpers/app.js'
import { spawnLogged } from './helpers/child.js'
import type { LogLine } from './helpers/logs.js'
import type { ClusterFixtureConfig } from './fixtures/cluster-app.js'

/**
 * The cluster's reliability test: a real 2-worker cluster on 127.0.0.1 under
 * steady keep-alive load, and a request that crashes its worker every
 * 500 ms, 19 times (10 s; HANGUP_RELIABILITY_MS to run it longer). Two load
 * clients run side by side through the same crashes, until the last crash
 * is answered: one with no retry, one with undici's retry interceptor (the
 * standard idempotent retry of a GET that failed before any response:
 * ECONNRESET, ECONNREFUSED, socket closed; a 5xx is not retried, it counts
 * as lost). Zero lost for the retrying client; for the plain one no refused
 * connection (the port is never left without a listener) and no 5xx (that
 * would be the drain answering 503).
 *
 * Nothing here depends on the machine's speed: a loaded machine restarts
 * workers slower (seen: median 1.7 to 3.4 s with busy loops beside it), so
 * more crashes land on a worker that is already closing, and fewer requests
 * are sent; the counts are checked against each other, and each wait is for
 * an event. HANGUP_DEBUG=1 prints the primary's log and each failure's time.
 */

const FIXTURE = join(__dirname, 'fixtures', 'cluster-app.js')
const DURATION_MS = Number(process.env.HANGUP_RELIABILITY_MS ?? 10_000)
const CRASH_EVERY_MS = 500
const CRASHES = Math.floor(DURATION_MS / CRASH_EVERY_MS) - 1
/** Each request's own bound (undici's headers and body timeouts): generous, a starved machine answers late, which is not a loss. */
const REQUEST_TIMEOUT_MS = 30_000
/** Concurrent requests per load client. */
const CONCURRENCY = 6

interface Tally {
  ok: number
  /** Non-crash requests answered 5xx. */
  status5xx: number
  /** Non-crash requests that failed without a response, by error code. */
  errors: Record<string, number>
  /** The workers that answered. */
  workers: Set<number>
}

function lost (tally: Tally): number {
  return tally.status5xx + Object.values(tally.errors).reduce((sum, n) => sum + n, 0)
}

/** `CONCURRENCY` loops of GET /work until `done()`, each request bounded by undici's timeouts. */
async function load (url: string, dispatcher: Dispatcher, done: () => boolean): Promise<Tally> {
  const tally: Tally = { ok: 0, status5xx: 0, errors: {}, workers: new Set() }
  async function loop (): Promise<void> {
    while (!done()) {
      try {
        const res = await request(`${url}/work?ms=2`, { dispatcher, headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS })
        const text = await res.body.text()
        if (res.statusCode >= 500) {
          tally.status5xx++
        } else {
          tally.ok++
          tally.workers.add((JSON.parse(text) as { worker: number }).worker)
        }
      } catch (error) {
        const code = (error as { code?: string }).code ?? (error as Error).message
        tally.errors[code] = (tally.errors[code] ?? 0) + 1
        if (process.env.HANGUP_DEBUG !== undefined) console.log('#fail', Date.now(), code)
      }
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, loop))
  return tally
}

/** `CRASHES` crash requests, one CRASH_EVERY_MS after the last one's answer, each on a new connection; returns the statuses (or error codes) they got. */
async function crasher (url: string): Promise<Array<number | string>> {
  const results: Array<number | string> = []
  for (let i = 0; i < CRASHES; i++) {
    await new Promise((resolve) => setTimeout(resolve, CRASH_EVERY_MS))
    const client = new Client(url)
    try {
      const res = await client.request({ path: '/crash', method: 'GET', headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS })
      await res.body.dump()
      results.push(res.statusCode)
    } catch (error) {
      results.push((error as { code?: string }).code ?? 'error')
    } finally {
      await client.destroy()
    }
  }
  return results
}

/** The longest the crashes can take: each waits CRASH_EVERY_MS, then for its answer (bounded by REQUEST_TIMEOUT_MS). */
const CRASHER_MAX_MS = CRASHES * (CRASH_EVERY_MS + REQUEST_TIMEOUT_MS)

test(`2 workers under load, ${CRASHES} crashes ${CRASH_EVERY_MS} ms apart: no connection refused, and no request is lost with an idempotent retry`, { timeout: CRASHER_MAX_MS + 120_000 }, async (t: TestContext) => {
  // killTimeout: a closing worker holds the port until 2.5 s before it, and
  // a loaded 2-core machine took up to 25 s to start a replacement.
  const config: ClusterFixtureConfig = { workers: 2, logLevel: 'warn', gracePeriod: 3000, killTimeout: 60_000 }
  const cluster = spawnLogged(t, FIXTURE, { HANGUP_CLUSTER: JSON.stringify(config) })
  await cluster.waitForLog(() => cluster.logs.filter((line) => line.msg === 'worker listening').length >= 2, 60_000)
  const port = cluster.logs.find((line) => line.msg === 'worker listening')?.port as number
  const url = `http://127.0.0.1:${port}`

  const plain = new Agent({ keepAliveTimeout: 30_000 })
  const retrying = new Agent({ keepAliveTimeout: 30_000 }).compose(interceptors.retry({
    statusCodes: [], // a 5xx is an answer, not retried: it counts as lost
    minTimeout: 20,
    maxTimeout: 500,
    timeoutFactor: 2,
    maxRetries: 5
  }))
  t.after(() => Promise.all([plain.destroy(), retrying.destroy()]))

  let crashesDone = false
  const crashing = crasher(url).finally(() => { crashesDone = true })
  const [plainTally, retryTally, crashes] = await within(
    Promise.all([load(url, plain, () => crashesDone), load(url, retrying, () => crashesDone), crashing]),
    CRASHER_MAX_MS + 2 * REQUEST_TIMEOUT_MS,
    'the load to finish'
  )
  // Every worker that began to close exits, however long its replacement
  // takes to listen (it holds its listener until then).
  const closings = cluster.logs.filter((line: LogLine) => line.msg === 'worker closing')
  const closed = new Set(closings.map((line) => line.worker))
  const exitsOfClosed = (): LogLine[] => cluster.logs.filter((line: LogLine) => line.msg === 'worker exited' && closed.has(line.worker))
  await cluster.waitForLog(() => exitsOfClosed().length === closed.size, 60_000)
  const exits = exitsOfClosed()
  // Each crash request threw in the worker that served it: a fatal line,
  // "(already closing)" when it reached a worker holding its listener.
  const fatalLines = cluster.logs.filter((line: LogLine) => line.level === 60 && String(line.msg).startsWith('uncaught exception'))
  const restarts = cluster.logs.filter((line: LogLine) => line.msg === 'worker listening' && typeof line.restartMs === 'number').map((line) => line.restartMs as number)
  t.diagnostic(`crashes: ${crashes.length} sent, ${crashes.filter((s) => s === 500).length} answered 500, ${fatalLines.length} fatal lines; workers closed: ${closed.size}, exited: ${exits.length}; restart (closing → replacement listening) ms: median ${median(restarts)}, max ${Math.max(...restarts)}`)
  t.diagnostic(`no retry: ${plainTally.ok} ok, ${lost(plainTally)} lost (${plainTally.status5xx} 5xx, errors ${JSON.stringify(plainTally.errors)}), ${plainTally.workers.size} workers answered`)
  t.diagnostic(`idempotent retry: ${retryTally.ok} ok, ${lost(retryTally)} lost (${retryTally.status5xx} 5xx, errors ${JSON.stringify(retryTally.errors)}), ${retryTally.workers.size} workers answered`)

  if (process.env.HANGUP_DEBUG !== undefined) {
    for (const line of cluster.logs) if (line.level !== 60) t.diagnostic(`${(line.time as number) % 1000000} ${line.msg} ${JSON.stringify({ ...line, time: undefined, msg: undefined, hostname: undefined, level: undefined, pid: undefined })}`)
  }
  t.assert.deepStrictEqual(crashes.filter((s) => s !== 500), [], 'every crashing request got its 500')
  t.assert.strictEqual(fatalLines.length, CRASHES, 'each crash request crashed the worker that served it')
  t.assert.ok(closed.size >= 1 && closings.every((line) => line.cause === 'fatal'), 'the crashes closed workers')
  t.assert.deepStrictEqual(exits.map((line) => [line.cause, line.code]), closings.map(() => ['fatal', 1]), 'each worker that closed exited after its crash, on its own')
  // Requests crossed the restarts: answered by the first workers and by replacements.
  t.assert.ok(plainTally.workers.size >= 3 && retryTally.workers.size >= 3, 'the load ran through the restarts')
  t.assert.strictEqual(plainTally.status5xx, 0, 'no request but the crashing ones is answered 5xx')
  t.assert.strictEqual(plainTally.errors.ECONNREFUSED, undefined, 'no connection is refused: a closing worker holds the port until another listens')
  t.assert.strictEqual(lost(retryTally), 0, 'with an idempotent retry, nothing is lost')
  // Without retry it is 0 too on a quiet machine (idle connections get a
  // window, lib/shutdown/graceful-close.ts IDLE_WINDOW_MS); before that window 33 to
  // 44 of ~12,000 were reset. What is left is a client racing a close on a
  // keep-alive connection (HTTP/1.1 has no way to say "stop using it"): a
  // reset, never a refusal or a timeout. A starved machine (load average
  // 16) reset 1 request of 218 to 365 in a few runs, so the bound is 0.1%,
  // or one per worker that closed, whichever is larger.
  const resets = (plainTally.errors.ECONNRESET ?? 0) + (plainTally.errors.UND_ERR_SOCKET ?? 0)
  t.assert.strictEqual(lost(plainTally), resets, 'without retry, a request is lost only to a reset')
  t.assert.ok(resets <= Math.max(plainTally.ok / 1000, closed.size), `without retry, at most 0.1% or one per closed worker lost (${resets} of ${plainTally.ok}, ${closed.size} closed)`)

  cluster.kill('SIGTERM')
  t.assert.strictEqual((await within(cluster.exited, 60_000, 'the cluster to stop')).code, 0)
})

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? NaN
}
