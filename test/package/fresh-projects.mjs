// The package as a new user gets it: packs the tarball, installs it with
// fastify, undici, typescript and @types/node from the npm registry into
// three fresh TypeScript projects, and in each type-checks (strict) and runs
// the README's and docs' examples:
// - esm: "type": "module", nodenext: every code block of README.md and
//   docs/*.md, then the runnable examples (examples/*.mjs, shown verbatim by
//   the pages) run against the installed tarball;
// - cjs: "module": "commonjs" (node10 resolution): the CommonJS blocks, and an
//   app written with `import hangup = require('fastify-hangup')` and
//   `fastify-hangup/cluster`, compiled by tsc and run;
// - bundler: "moduleResolution": "bundler": every code block, and the
//   README's quickstart as TypeScript, compiled by tsc and run.
// Fails on a type error, an example that does not answer as the docs say,
// or an npm notice about the package at install.
//
// Needs the network (the npm registry), so it is run by .ci/run, not by
// npm test. Run after `npm run build && npm run build:test` (it reads the
// docs with test/helpers/docs-blocks.ts, compiled).
// Usage: node test/package/fresh-projects.mjs [--tarball <file>] [--keep]
// (without --tarball it packs one, which builds the package first).
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
// The compiled helper of the docs-blocks test; CI passes a copy (HANGUP_DOCS_BLOCKS) so that
// this can run beside test runs that rebuild dist/test.
const docsBlocksPath = process.env.HANGUP_DOCS_BLOCKS ?? join(root, 'dist', 'test', 'test', 'helpers', 'docs-blocks.js')
const { docBlocks, blockSource } = createRequire(import.meta.url)(docsBlocksPath)
const PATIENCE_MS = 60_000
const nodeMajor = Number(process.versions.node.split('.')[0])
// undici 8 needs Node 22.19: on Node 20 the README says undici@7.
const [major, minor] = process.versions.node.split('.').map(Number)
const undiciSpec = major > 22 || (major === 22 && minor >= 19) ? 'undici' : 'undici@7'

const started = Date.now()
const work = mkdtempSync(join(tmpdir(), 'hangup-fresh-'))
const keep = process.argv.includes('--keep')
const tarballOption = process.argv.includes('--tarball') ? resolve(process.argv[process.argv.indexOf('--tarball') + 1]) : null

/** The tarball, as `npm publish` would make it (prepack builds). */
function pack () {
  const packed = JSON.parse(sh('npm', ['pack', '--json', '--pack-destination', work], root))
  log(`packed ${packed[0].filename} (${packed[0].files.length} files)`)
  return join(work, packed[0].filename)
}

function log (line) {
  console.log(`[fresh-projects ${((Date.now() - started) / 1000).toFixed(1)} s] ${line}`)
}

function sh (command, args, cwd) {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' } })
}

/** npm's output, stdout and stderr, whatever the exit code. */
function npm (args, cwd) {
  const result = spawnSyncOutput('npm', args, cwd)
  if (result.status !== 0) throw new Error(`npm ${args.join(' ')} failed:\n${result.output}`)
  return result.output
}

function spawnSyncOutput (command, args, cwd) {
  try {
    const output = execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' } })
    return { status: 0, output }
  } catch (error) {
    return { status: error.status ?? 1, output: `${error.stdout ?? ''}${error.stderr ?? ''}` }
  }
}

function writeJson (file, value) {
  writeFileSync(file, JSON.stringify(value, null, 2) + '\n')
}

const STRICT = { strict: true, skipLibCheck: true, target: 'ES2022', lib: ['ES2022'], types: ['node'] }

async function main () {
  log(`node ${process.versions.node}, work dir ${work}`)
  const tarball = tarballOption ?? pack()

  // One node_modules for the three projects, above them.
  writeJson(join(work, 'package.json'), { name: 'fresh-projects', private: true })
  const installed = npm(['install', '--no-package-lock', tarball, 'fastify@5', undiciSpec, 'typescript@5', `@types/node@${nodeMajor}`], work)
  const notices = installed.split('\n').filter((line) => /^npm (warn|notice|error)/i.test(line) && /fastify-hangup|install script|prepare/i.test(line))
  if (notices.length > 0) throw new Error(`npm printed notices about the package at install:\n${notices.join('\n')}`)
  log(`installed: ${sh('npm', ['ls', '--depth=0'], work).split('\n').slice(1).join(' ').replace(/\s+/g, ' ').trim()}`)

  const all = docBlocks(root)
  const blocks = all.filter(importsOnlyFreshPackages)
  const skipped = all.filter((block) => !blocks.includes(block)).map((block) => `${block.page} block ${block.index}`)
  if (skipped.length > 0) log(`blocks that import other packages (type-checked by the repository's docs-blocks test): ${skipped.join(', ')}`)
  const upstream = await startUpstream()
  try {
    await esmProject(blocks, upstream)
    await cjsProject(blocks, upstream)
    await bundlerProject(blocks, upstream)
  } finally {
    upstream.server.close()
  }
  log(`all three projects type-check and run: ${((Date.now() - started) / 1000).toFixed(1)} s`)
}

/**
 * The packages a fresh project installs besides Node's own. A block that
 * imports another (a recipe's prom-client or close-with-grace) is a recipe
 * for that package: test/docs-blocks.test.ts type-checks it against the
 * repository's devDependencies.
 */
const FRESH_PACKAGES = new Set(['fastify', 'fastify-hangup', 'undici'])

function importsOnlyFreshPackages (block) {
  const { text } = blockSource(block)
  for (const [, specifier] of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^import\s+)['"]([^'"]+)['"]/gm)) {
    if (specifier.startsWith('node:') || specifier.startsWith('.')) continue
    const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]
    if (!FRESH_PACKAGES.has(name)) return false
  }
  return true
}

function project (name, type, compilerOptions, files) {
  const dir = join(work, name)
  mkdirSync(join(dir, 'src'), { recursive: true })
  writeJson(join(dir, 'package.json'), { name: `fresh-${name}`, private: true, type })
  writeJson(join(dir, 'tsconfig.json'), { compilerOptions: { ...STRICT, ...compilerOptions }, include: ['src'] })
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, 'src', file), text)
  return dir
}

function blockFiles (blocks, keepBlock = () => true) {
  const files = {}
  for (const block of blocks.filter(keepBlock)) {
    const source = blockSource(block)
    files[`block-${source.fileName}`] = source.text
  }
  return files
}

function typeCheck (name, dir) {
  const tsc = join(work, 'node_modules', 'typescript', 'bin', 'tsc')
  const result = spawnSyncOutput(process.execPath, [tsc, '-p', dir], dir)
  if (result.status !== 0) throw new Error(`${name}: tsc failed:\n${result.output}`)
  log(`${name}: tsc -p ok (${readdirSync(join(dir, 'src')).length} files)`)
}

async function esmProject (blocks, upstream) {
  const dir = project('esm', 'module', { module: 'nodenext', moduleResolution: 'nodenext', noEmit: true, allowJs: true, checkJs: true, moduleDetection: 'force' }, blockFiles(blocks))
  typeCheck('esm (nodenext)', dir)
  // The examples the pages show verbatim (test/readme-example.test.ts checks they do).
  for (const file of ['quickstart.mjs', 'autobind.mjs', 'crash.mjs', 'cluster.mjs']) copyFileSync(join(root, 'examples', file), join(dir, file))

  const quick = await startApp(dir, ['quickstart.mjs'], { UPSTREAM: upstream.url })
  await expectAnswer('esm: README quickstart', `${quick.url}/search`, { method: 'POST', body: '{"q":"x"}', headers: { 'content-type': 'application/json' } }, 200, 'done /search {"q":"x"}')
  await quick.stop()

  const bound = await startApp(dir, ['autobind.mjs'], { UPSTREAM: upstream.url })
  await expectAnswer('esm: README autoBind example', `${bound.url}/reports/7`, {}, 200, '{"id":"7","report":"done /reports/7 "}')
  await bound.stop()

  const crash = await startApp(dir, ['crash.mjs'])
  await expectAnswer('esm: docs/crashes.md example', `${crash.url}/crash`, {}, 500, '{"statusCode":500,"error":"Internal Server Error","message":"Internal Server Error"}')
  const [code] = await within(crash.exited, 'the crash example to exit')
  if (code !== 1) throw new Error(`esm: the crash example exited ${code}, not 1`)
  log('esm: docs/crashes.md example: 500, exit 1')

  const cluster = await startApp(dir, ['cluster.mjs'], {}, { group: true })
  await expectAnswer('esm: docs/cluster.md example', `${cluster.url}/`, {}, 200, null)
  await cluster.stop()
}

const CJS_APP = `import Fastify from 'fastify'
import hangup = require('fastify-hangup')
import { startCluster } from 'fastify-hangup/cluster'
import { request } from 'undici'

const upstream = process.env.UPSTREAM ?? 'http://127.0.0.1:3001'

async function main (): Promise<void> {
  const app = Fastify({ logger: true })
  await app.register(hangup, { autoBind: true })
  app.post('/search', async (req, reply) => {
    const res = await request(\`\${upstream}/search\`, {
      method: 'POST',
      body: JSON.stringify(req.body),
      headers: { 'content-type': 'application/json' },
      signal: req.signal
    })
    return reply.code(res.statusCode).send(res.body)
  })
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
}

// A worker of one: the supervisor starts the app in a forked process.
void startCluster({ workers: 1, start: main })
`

async function cjsProject (blocks, upstream) {
  const commonJs = (block) => /\.c[jt]s$/.test(blockSource(block).fileName)
  const dir = project('cjs', 'commonjs', { module: 'commonjs', esModuleInterop: true, allowJs: true, checkJs: true, outDir: 'dist', rootDir: 'src' }, { ...blockFiles(blocks, commonJs), 'app.ts': CJS_APP })
  typeCheck('cjs ("module": "commonjs")', dir)
  const app = await startApp(dir, ['dist/app.js'], { UPSTREAM: upstream.url }, { group: true })
  await expectAnswer('cjs: import = require app under startCluster', `${app.url}/search`, { method: 'POST', body: '{"q":"y"}', headers: { 'content-type': 'application/json' } }, 200, 'done /search {"q":"y"}')
  await app.stop()
}

async function bundlerProject (blocks, upstream) {
  const dir = project('bundler', 'module', { module: 'esnext', moduleResolution: 'bundler', allowJs: true, checkJs: true, moduleDetection: 'force', outDir: 'dist', rootDir: 'src' }, { ...blockFiles(blocks), 'app.ts': readFileSync(join(root, 'examples', 'quickstart.mjs'), 'utf8') })
  typeCheck('bundler', dir)
  const app = await startApp(dir, ['dist/app.js'], { UPSTREAM: upstream.url })
  await expectAnswer('bundler: README quickstart in TypeScript', `${app.url}/search`, { method: 'POST', body: '{"q":"z"}', headers: { 'content-type': 'application/json' } }, 200, 'done /search {"q":"z"}')
  await app.stop()
}

/** Answers `done <url> <body>`: what the app under test proxied. */
async function startUpstream () {
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8').on('data', (chunk) => { body += chunk }).on('end', () => res.end(`done ${req.url} ${body}`))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, url: `http://127.0.0.1:${server.address().port}` }
}

const LISTENING = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/

/** Starts `node <args>` in `dir` on port 0 and waits for pino's "Server listening" line. */
async function startApp (dir, args, env = {}, { group = false } = {}) {
  const child = spawn(process.execPath, args, { cwd: dir, env: { ...process.env, PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: group })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk) => { stderr += chunk })
  const exited = once(child, 'exit')
  const port = await within(new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = LISTENING.exec(line)
      if (match !== null) resolve(Number(match[1]))
    })
    exited.then(([code]) => reject(new Error(`${args.join(' ')} exited ${code} before listening:\n${stderr}`)))
  }), `${args.join(' ')} to listen`)
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      if (group) process.kill(-child.pid, 'SIGTERM')
      else child.kill('SIGTERM')
    }
    await within(exited, `${args.join(' ')} to stop`)
  }
  return { url: `http://127.0.0.1:${port}`, exited, stop }
}

async function expectAnswer (what, url, init, status, body) {
  const res = await fetch(url, init)
  const text = await res.text()
  if (res.status !== status || (body !== null && text !== body)) {
    throw new Error(`${what}: ${url} answered ${res.status} ${JSON.stringify(text)}, expected ${status} ${JSON.stringify(body)}`)
  }
  log(`${what}: ${res.status} ok`)
}

async function within (promise, what) {
  let timer
  try {
    return await Promise.race([promise, new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${PATIENCE_MS} ms waiting for ${what}`)), PATIENCE_MS) })])
  } finally {
    clearTimeout(timer)
  }
}

try {
  await main()
} finally {
  if (keep) log(`kept ${work}`)
  else rmSync(work, { recursive: true, force: true })
}
