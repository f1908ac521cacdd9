import { test, type TestContext } from 'node:test'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'

// bench/readme.js writes README.md's benchmark section from bench/results/*.json;
// these keep the README's figures and the JSON in step.

const root = join(__dirname, '..', '..', '..')
const script = join(root, 'bench', 'readme.js')

function run (args: string[]): { status: number | null, stdout: string, stderr: string } {
  const child = spawnSync(process.execPath, [script, ...args], { cwd: root, encoding: 'utf8', timeout: 10_000 })
  return { status: child.status, stdout: child.stdout, stderr: child.stderr }
}

function tempDir (t: TestContext): string {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'bench-readme-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

test('the README benchmark section is what bench/readme.js writes from bench/results/*.json', (t: TestContext) => {
  const { status, stdout, stderr } = run(['--check'])
  t.assert.strictEqual(status, 0, `${stdout}${stderr}\nrun npm run bench:readme, and review the figures that changed`)
})

test('--check fails with a diff when a figure in the README differs from the JSON', (t: TestContext) => {
  const dir = tempDir(t)
  const readme = fs.readFileSync(join(root, 'README.md'), 'utf8')
  const edited = readme.replace('**Against the alternatives**', '**Against the alternatives** 12.34 ms')
  t.assert.notStrictEqual(edited, readme)
  fs.writeFileSync(join(dir, 'README.md'), edited)
  const { status, stdout } = run(['--check', '--readme', join(dir, 'README.md')])
  t.assert.strictEqual(status, 1)
  t.assert.match(stdout, /^- \*\*Against the alternatives\*\* 12\.34 ms/m)
  t.assert.match(stdout, /^\+ \*\*Against the alternatives\*\* \(/m)
})

test('rows whose result file is missing are left out with a note', (t: TestContext) => {
  const dir = tempDir(t)
  const missing = ['compare-v22.23.3.json', 'hangup-latency-v24.21.0.json', 'cluster-v20.20.2.json']
  for (const file of fs.readdirSync(join(root, 'bench', 'results'))) {
    if (file.endsWith('.json') && !missing.includes(file)) fs.copyFileSync(join(root, 'bench', 'results', file), join(dir, file))
  }
  const { status, stdout, stderr } = run(['--print', '--results', dir])
  t.assert.strictEqual(status, 0, stderr)
  for (const file of missing) t.assert.ok(stdout.includes(`${file}\` is missing`), `a note for ${file}`)
  t.assert.ok(!stdout.includes('| Node 22.23.3 | Node 24.21.0 | clients'), 'no Node 22 column in the comparison')
  t.assert.ok(!/^\| 24\.21\.0 \| 0\.\d+ \/ \*\*/m.test(stdout), 'no Node 24 row in the hang-up latency table')
})
