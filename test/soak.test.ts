import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { promisify } from 'node:util'

/**
 * The soak, short: bench/soak.js (the compiled plugin in dist/cjs, a
 * real upstream and real clients on 127.0.0.1) for 50,000 requests that mix
 * completed, hung-up (upload, handler, response, fan-out), timed-out and
 * fan-out requests on keep-alive and fresh connections. The long run is
 * `npm run test:soak` (HANGUP_SOAK_REQUESTS=1000000); its figures are in
 * docs/benchmarks.md. Every check of the script is asserted here one by one, so a failure
 * names what drifted.
 */

const root = join(__dirname, '..', '..', '..')
const REQUESTS = Number(process.env.HANGUP_SOAK_REQUESTS ?? 50_000)
/** About 1,000 requests a second on the 2-core CI machine; the bound is 5 times that, plus start-up: only a stuck run reaches it. */
const BOUND_MS = 30_000 + REQUESTS * 5

interface Check { name: string, value: unknown, ok: boolean }
interface SoakResult {
  checks: Check[]
  failures: string[]
  samples: Array<{ requests: number, heapUsed: number, quiet: boolean }>
  byKind: Record<string, { sent: number, failed: number }>
}

test(`soak: ${REQUESTS} mixed requests leave no heap growth, no handle, no warning, no error log`, { timeout: BOUND_MS + 5000 }, async (t: TestContext) => {
  const dir = mkdtempSync(join(tmpdir(), 'hangup-soak-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const out = join(dir, 'soak.json')
  // Without NODE_V8_COVERAGE (set by c8): the soak runs dist/cjs, which the
  // coverage report does not include, and block counters slow it down.
  const { NODE_V8_COVERAGE: _, ...env } = process.env
  const run = promisify(execFile)(process.execPath, ['bench/soak.js', '--requests', String(REQUESTS), '--out', out, '--quiet'], {
    cwd: root,
    env,
    timeout: BOUND_MS,
    maxBuffer: 2 ** 22
  })
  let stdout: string
  try {
    ({ stdout } = await run)
  } catch (err) {
    // Exit code 1 is a failed check: the JSON is written, assert on it below.
    const { code, stdout: printed, stderr } = err as { code?: number, stdout?: string, stderr?: string }
    if (code !== 1) throw new Error(`bench/soak.js failed (${String(code)}):\n${printed ?? ''}\n${stderr ?? ''}`)
    stdout = printed ?? ''
  }
  const result = JSON.parse(readFileSync(out, 'utf8')) as SoakResult
  t.diagnostic(stdout.trim().split('\n').slice(-14).join(' | '))

  const sent = Object.values(result.byKind).reduce((n, k) => n + k.sent, 0)
  t.assert.strictEqual(sent, REQUESTS, 'every request of the run was sent')
  t.assert.ok(result.samples.length >= 10, 'sampled through the run')
  t.assert.ok(result.checks.length >= 10)
  for (const check of result.checks) {
    t.assert.ok(check.ok, `${check.name}: ${JSON.stringify(check.value)}${result.failures.length > 0 ? `\nfirst failures: ${result.failures.join('; ')}` : ''}`)
  }
})
