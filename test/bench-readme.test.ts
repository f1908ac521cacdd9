import { test, type TestContext } from 'node:test'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'

// bench/readme.js writes the tables of docs/benchmarks.md from bench/results/*.json;
// these keep the page's tables and the JSON in step.

const root = join(__dirname, '..', '..', '..')
const script = join(root, 'bench', 'readme.js')
const results = join(root, 'bench', 'results')
const page = join(root, 'docs', 'benchmarks.md')

function run (args: string[]): { status: number | null, stdout: string, stderr: string } {
  const child = spawnSync(process.execPath, [script, ...args], { cwd: root, encoding: 'utf8', timeout: 30_000 })
  return { status: child.status, stdout: child.stdout, stderr: child.stderr }
}

function tempDir (t: TestContext): string {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'bench-readme-'))
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A copy of bench/results in a temporary directory, without the files `leave`. */
function copyResults (t: TestContext, leave: string[] = []): string {
  const dir = tempDir(t)
  for (const file of fs.readdirSync(results)) {
    if (file.endsWith('.json') && !leave.includes(file)) fs.copyFileSync(join(results, file), join(dir, file))
  }
  return dir
}

/** The lines of one generated table in `text`. */
function tableOf (text: string, name: string): string {
  const match = new RegExp(`<!-- bench:table ${name} -->\\n([\\s\\S]*?)<!-- bench:end ${name} -->`).exec(text)
  if (match === null) throw new Error(`no ${name} table`)
  return match[1]
}

test('the tables of docs/benchmarks.md are what bench/readme.js writes from bench/results/*.json', (t: TestContext) => {
  const { status, stdout, stderr } = run(['--check'])
  t.assert.strictEqual(status, 0, `${stdout}${stderr}\nrun npm run bench:readme, and review the figures that changed`)
})

test('--check fails on a figure edited by hand, and names the first stale line', (t: TestContext) => {
  const dir = tempDir(t)
  const text = fs.readFileSync(page, 'utf8')
  const table = tableOf(text, 'hangup-latency')
  const row = table.split('\n').find((line) => line.startsWith('| 2'))
  t.assert.ok(row !== undefined)
  const edited = text.replace(row, `${row} 12.34 ms`)
  fs.writeFileSync(join(dir, 'benchmarks.md'), edited)
  const { status, stdout } = run(['--check', '--doc', join(dir, 'benchmarks.md')])
  t.assert.strictEqual(status, 1)
  t.assert.match(stdout, /benchmarks\.md is stale: run npm run bench:readme/)
  t.assert.ok(stdout.includes(`- ${row} 12.34 ms\n+ ${row}\n`), stdout)
  // Prose outside the markers is the author's: editing it is no staleness.
  fs.writeFileSync(join(dir, 'benchmarks.md'), text.replace('## Soak', '## Soak, edited'))
  t.assert.strictEqual(run(['--check', '--doc', join(dir, 'benchmarks.md')]).status, 0)
})

test('the result files are discovered by name: a new Node version adds a column, a removed file its row', (t: TestContext) => {
  const dir = copyResults(t, ['compare-v22.23.3.json', 'hangup-latency-v24.21.0.json'])
  // A cluster run on a Node version no code names.
  const cluster = JSON.parse(fs.readFileSync(join(results, 'cluster-v24.21.0.json'), 'utf8'))
  cluster.versions.node = 'v26.1.0'
  fs.writeFileSync(join(dir, 'cluster-v26.1.0.json'), JSON.stringify(cluster))
  const { status, stdout, stderr } = run(['--print', '--results', dir])
  t.assert.strictEqual(status, 0, stderr)
  t.assert.match(tableOf(stdout, 'cluster'), /^\| \| Node 20\.20\.2 \| Node 22\.23\.3 \| Node 24\.21\.0 \| Node 26\.1\.0 \|$/m)
  t.assert.match(tableOf(stdout, 'setup'), /^\| 26\.1\.0 \| /m)
  t.assert.ok(!tableOf(stdout, 'compare').includes('Node 22.23.3'), 'no Node 22 column in the comparison')
  t.assert.ok(tableOf(stdout, 'compare').includes('Node 24.21.0'))
  t.assert.ok(!/^\| 24\.21\.0 \| /m.test(tableOf(stdout, 'hangup-latency')), 'no Node 24 row in the hang-up latency table')
  t.assert.match(tableOf(stdout, 'hangup-latency'), /^\| 22\.23\.3 \| /m)
})

test('a table with no result file says so, and the page keeps its prose', (t: TestContext) => {
  const dir = copyResults(t, fs.readdirSync(results).filter((file) => file.startsWith('soak-')))
  const { status, stdout, stderr } = run(['--print', '--results', dir])
  t.assert.strictEqual(status, 0, stderr)
  t.assert.match(tableOf(stdout, 'soak'), /^_No results: no file in bench\/results matches /)
  t.assert.ok(stdout.includes('## Soak\n'))
})

test('a page without the markers of a table is an error, not a silent skip', (t: TestContext) => {
  const dir = tempDir(t)
  const text = fs.readFileSync(page, 'utf8').replace(/<!-- bench:table cluster -->[\s\S]*?<!-- bench:end cluster -->\n/, '')
  fs.writeFileSync(join(dir, 'benchmarks.md'), text)
  const { status, stderr } = run(['--check', '--doc', join(dir, 'benchmarks.md')])
  t.assert.strictEqual(status, 2)
  t.assert.match(stderr, /no <!-- bench:table NAME --> \.\.\. <!-- bench:end NAME --> markers for cluster/)
})
