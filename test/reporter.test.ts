import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { PATIENCE_MS, within } from './helpers/app.js'
import { killAfter } from './helpers/child.js'

/**
 * The reporter of `npm test` (test/helpers/reporter.ts), run by a real
 * `node --test` on a suite written for the purpose: passes, a skip, a todo,
 * a failure with a diagnostic, a failing subtest, tests in a second file.
 */

const REPORTER = join(__dirname, 'helpers', 'reporter.js')

const SUITE_A = `
const { test } = require('node:test')
process.stderr.write('a says this on stderr\\n')
test('adds', () => {})
test('is skipped', { skip: 'not here' }, () => {})
test('is a todo', { todo: 'later' }, () => { throw new Error('not yet') })
test('compares', (t) => {
  t.diagnostic('the answer was computed by a remote service')
  t.assert.strictEqual(40 + 1, 42)
})
test('outer', async (t) => {
  await t.test('inner passes', () => {})
  await t.test('inner fails', () => { throw new Error('inner broke') })
})
`

const SUITE_B = `
const { test } = require('node:test')
process.stderr.write('b says this on stderr\\n')
test('b passes', () => {})
test('b passes too', () => {})
`

async function runSuite (t: TestContext): Promise<{ code: number | null, out: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'hangup-reporter-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'a.test.js'), SUITE_A)
  await writeFile(join(dir, 'b.test.js'), SUITE_B)
  // Without this file's runner context: a `node --test` that inherits it
  // takes itself for a nested run and runs nothing.
  const env = { ...process.env }
  delete env.NODE_TEST_CONTEXT
  const child = spawn(process.execPath, ['--test', `--test-reporter=${REPORTER}`, join(dir, 'a.test.js'), join(dir, 'b.test.js')], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  killAfter(t, child, false)
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  const [code] = await within(once(child, 'exit'), PATIENCE_MS, 'node --test to end') as [number | null]
  return { code, out }
}

test('the reporter: a dot per test, each failure in full with its diagnostics, a summary ending in "tests: N passed, N failed, N skipped"', async (t: TestContext) => {
  const { code, out } = await runSuite(t)
  t.assert.strictEqual(code, 1, out)
  const lines = out.trimEnd().split('\n')
  t.assert.strictEqual(lines.at(-1), 'tests: 4 passed, 2 failed, 1 skipped', out)
  t.assert.ok(lines.includes('todo: 1'), out)
  // Each failure: its name with its parents', its file, its error, its diagnostics.
  t.assert.match(out, /✖ compares\n {2}\S*a\.test\.js\n[^]*AssertionError[^]*41[^]*42[^]*\n {4}# the answer was computed by a remote service\n/)
  t.assert.match(out, /✖ outer > inner fails\n {2}\S*a\.test\.js\n[^]*inner broke/)
  // A parent that failed only through its subtest is not told twice, nor a file.
  t.assert.doesNotMatch(out, /✖ outer\n/)
  t.assert.ok(lines.includes('failed:'), out)
  t.assert.ok(lines.some((line) => /✖ \S*a\.test\.js: compares$/.test(line)), out)
  t.assert.ok(lines.some((line) => /✖ \S*a\.test\.js: outer > inner fails$/.test(line)), out)
  // The slowest files, each with its duration.
  t.assert.match(out, /duration [\d.]+ s; slowest files:\n {2}[ \d.]+ s {2}\S*[ab]\.test\.js\n {2}[ \d.]+ s {2}\S*[ab]\.test\.js\n/)
  // The stderr of a file with a failure, not of one without.
  t.assert.match(out, /\[stderr of \S*a\.test\.js, last 1 lines\]\na says this on stderr\n/)
  t.assert.doesNotMatch(out, /b says this/)
  // No TAP: no "ok"/"not ok" lines.
  t.assert.ok(!lines.some((line) => /^\s*(not )?ok \d/.test(line)), out)
})
