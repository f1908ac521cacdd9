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
 * 500 ms for 10 s (HANGUP_RELIABILITY_MS to run it longer). Two load
 * clients run side by side through the same crashes: one with no retry, one
 * with undici's retry interceptor (the standard idempotent retry of a GET
 * that failed before any response: ECONNRESET, ECONNREFUSED, socket closed;
 * a 5xx is not retried, it counts as lost). Target: zero lost for the
 * retrying client; the plain client's losses are reported, and must all be
 * connection errors (never a 5xx: that would be the drain answering 503).
 * HANGUP_DEBUG=1 prints the primary's log and each failure's time.
 */

const FIXTURE = join(__dirname, 'fixtures', 'cluster-app.js')
const DURATION_MS = Number(process.env.HANGUP_RELIABILITY_MS ?? 10_000)
const CRASH_EVERY_MS = 500
/** Concurrent requests per load client. */
const CONCURRENCY = 6

interface Tally {
  ok: number
  /** Non-crash requests answered 5xx. */
  status5xx: number
  /** Non-crash requests that failed without a response, by error code. */
  errors: Record<string, number>
}

function lost (tally: Tally): number {
  return tally.status5xx + Object.values(tally.errors).reduce((sum, n) => sum + n, 0)
}

/** `CONCURRENCY` loops of GET /work until `until`, each request bounded by undici's timeouts. */
async function load (url: string, dispatcher: Dispatcher, until: number): Promise<Tally> {
  const tally: Tally = { ok: 0, status5xx: 0, errors: {} }
  async function loop (): Promise<void> {
    while (performance.now() < until) {
      try {
        const res = await request(`${url}/work?ms=2`, { dispatcher, headersTimeout: 5000, bodyTimeout: 5000 })
        await res.body.dump()
        if (res.statusCode >= 500) tally.status5xx++
        else tally.ok++
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

/** One crash request every CRASH_EVERY_MS, each on a new connection; returns the statuses (or error codes) they got. */
async function crasher (url: string, until: number): Promise<Array<number | string>> {
  const results: Array<number | string> = []
  while (performance.now() + CRASH_EVERY_MS < until) {
    await new Promise((resolve) => setTimeout(resolve, CRASH_EVERY_MS))
    const client = new Client(url)
    try {
      const res = await client.request({ path: '/crash', method: 'GET', headersTimeout: 5000, bodyTimeout: 5000 })
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

test(`2 workers under load, a crash every ${CRASH_EVERY_MS} ms for ${DURATION_MS / 1000} s: no request is lost with an idempotent retry`, { timeout: DURATION_MS + 30_000 }, async (t: TestContext) => {
  const config: ClusterFixtureConfig = { workers: 2, logLevel: 'warn', gracePeriod: 3000 }
  const cluster = spawnLogged(t, FIXTURE, { HANGUP_CLUSTER: JSON.stringify(config) })
  await cluster.waitForLog(() => cluster.logs.filter((line) => line.msg === 'worker listening').length >= 2, 15_000)
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

  const until = performance.now() + DURATION_MS
  const [plainTally, retryTally, crashes] = await within(
    Promise.all([load(url, plain, until), load(url, retrying, until), crasher(url, until)]),
    DURATION_MS + 20_000,
    'the load to finish'
  )
  const exits = cluster.logs.filter((line: LogLine) => line.msg === 'worker exited')
  const restarts = cluster.logs.filter((line: LogLine) => line.msg === 'worker listening' && typeof line.restartMs === 'number').map((line) => line.restartMs as number)
  t.diagnostic(`crashes: ${crashes.length} sent, ${crashes.filter((s) => s === 500).length} answered 500; worker exits: ${exits.length}; restart (closing → replacement listening) ms: median ${median(restarts)}, max ${Math.max(...restarts)}`)
  t.diagnostic(`no retry: ${plainTally.ok} ok, ${lost(plainTally)} lost (${plainTally.status5xx} 5xx, errors ${JSON.stringify(plainTally.errors)})`)
  t.diagnostic(`idempotent retry: ${retryTally.ok} ok, ${lost(retryTally)} lost (${retryTally.status5xx} 5xx, errors ${JSON.stringify(retryTally.errors)})`)

  if (process.env.HANGUP_DEBUG !== undefined) {
    for (const line of cluster.logs) if (line.level !== 60) t.diagnostic(`${(line.time as number) % 1000000} ${line.msg} ${JSON.stringify({ ...line, time: undefined, msg: undefined, hostname: undefined, level: undefined, pid: undefined })}`)
  }
  t.assert.ok(crashes.length >= (DURATION_MS / CRASH_EVERY_MS) * 0.6, 'the crashes ran')
  t.assert.ok(exits.filter((line) => line.cause === 'fatal').length >= crashes.length * 0.8, 'the crashes crashed workers')
  t.assert.deepStrictEqual(crashes.filter((s) => s !== 500), [], 'every crashing request got its 500')
  t.assert.ok(plainTally.ok > 1000 && retryTally.ok > 1000, 'the load ran')
  t.assert.strictEqual(plainTally.status5xx, 0, 'no request but the crashing ones is answered 5xx')
  t.assert.strictEqual(lost(retryTally), 0, 'with an idempotent retry, nothing is lost')
  // Without retry it is 0 too on this machine (idle connections get a window,
  // lib/graceful-close.ts IDLE_WINDOW_MS); before that window 33 to 44 of
  // ~12,000 were reset. A loss is a client racing a close, so bound it
  // rather than demand 0 of every machine.
  t.assert.ok(lost(plainTally) <= plainTally.ok / 1000, `without retry, at most 0.1% lost (${lost(plainTally)} of ${plainTally.ok})`)

  cluster.kill('SIGTERM')
  t.assert.strictEqual((await within(cluster.exited, 10_000, 'the cluster to stop')).code, 0)
})

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? NaN
}
