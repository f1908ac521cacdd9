import { test, type TestContext } from 'node:test'
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import ts from 'typescript'

/**
 * The built package's types, as a TypeScript project that installed it
 * sees them, under each module resolution a project may use: node10
 * (`"module": "commonjs"`), node16/nodenext from a CommonJS and from an ES
 * module file, and bundler. Each project imports the plugin and
 * `fastify-hangup/cluster` the ways its module system allows, registers the
 * plugin, and reads `request.signal`. npm test builds the package first.
 */

const root = join(__dirname, '..', '..', '..')
const projects = join(root, 'dist', 'test', 'types-resolution')

/** What every project checks, whatever its imports. */
const USE = `
const app = Fastify()
app.register(hangup)
app.register(hangup, { abortOnResponse: false, fatal: { onFatal: (error) => { console.error(error) } } })
app.register(fastifyHangup, { autoBind: true })
app.get('/', async (request) => {
  const signal: AbortSignal = request.signal
  // @ts-expect-error: request.signal is an AbortSignal, not any
  signal.nope()
  return signal.aborted
})
const reason: ClientDisconnectedError = ClientDisconnectedError.create('upload')
const supervisor: Promise<ClusterSupervisor | undefined> = startCluster({ start: () => {} })
void reason
void supervisor
`

const CJS_IMPORTS = `
import Fastify from 'fastify'
import hangup = require('fastify-hangup')
import cluster = require('fastify-hangup/cluster')
const { fastifyHangup, ClientDisconnectedError } = hangup
type ClientDisconnectedError = hangup.ClientDisconnectedError
const { startCluster } = cluster
type ClusterSupervisor = cluster.ClusterSupervisor
`

const ESM_IMPORTS = `
import Fastify from 'fastify'
import hangup, { fastifyHangup, ClientDisconnectedError } from 'fastify-hangup'
import { startCluster, type ClusterSupervisor } from 'fastify-hangup/cluster'
`

const COMMON: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  esModuleInterop: true,
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2022.d.ts'],
  types: ['node']
}

interface Project {
  options: ts.CompilerOptions
  files: Record<string, string>
}

const PROJECTS: Record<string, Project> = {
  'node10 ("module": "commonjs")': {
    options: { module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10 },
    files: { 'require.ts': CJS_IMPORTS + USE, 'import.ts': ESM_IMPORTS + USE }
  },
  'node16, CommonJS file': {
    options: { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16 },
    files: { 'require.cts': CJS_IMPORTS + USE, 'import.cts': ESM_IMPORTS + USE }
  },
  'nodenext, ES module file': {
    options: { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext },
    files: { 'import.mts': ESM_IMPORTS + USE }
  },
  bundler: {
    options: { module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler },
    files: { 'import.ts': ESM_IMPORTS + USE }
  }
}

/**
 * A project directory whose node_modules/fastify-hangup links to the
 * package: resolved as installed (package.json `exports`, `types`,
 * `typesVersions`), with fastify, undici and @types/node found above it.
 */
function createProject (name: string, project: Project): string[] {
  const dir = join(projects, name.replace(/\W+/g, '-'))
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(join(dir, 'node_modules'), { recursive: true })
  symlinkSync(root, join(dir, 'node_modules', 'fastify-hangup'), 'dir')
  // Not the package's own scope: CommonJS unless a file says otherwise.
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'a-user-project', private: true }))
  return Object.entries(project.files).map(([file, text]) => {
    writeFileSync(join(dir, file), text)
    return join(dir, file)
  })
}

function diagnostics (name: string, project: Project): string[] {
  const files = createProject(name, project)
  const program = ts.createProgram(files, { ...COMMON, ...project.options })
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const where = diagnostic.file === undefined
      ? ''
      : `${diagnostic.file.fileName.slice(projects.length + 1)}:${diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start ?? 0).line + 1}: `
    return `${where}TS${diagnostic.code} ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`
  })
}

for (const [name, project] of Object.entries(PROJECTS)) {
  test(`types under ${name}: the plugin and fastify-hangup/cluster resolve, register, and type request.signal`, (t: TestContext) => {
    t.assert.deepStrictEqual(diagnostics(name, project), [])
  })
}
