'use strict'

// Finishes the dual build (one lib/, compiled twice so that both `require` and
// `import` get native modules):
// - dist/esm is ES modules: a package.json with "type": "module" says so to Node;
// - dist/cjs/index.js becomes the plugin function itself, so that
//   `require('fastify-hangup')` returns the plugin (as every Fastify plugin does),
//   with the named exports and `.default` on it;
// - dist/cjs/index.d.ts says so: `export =` of the plugin, with a namespace of
//   the same name holding every named export (the shape of fastify-plugin's and
//   @fastify/cors' types), so that `import hangup = require('fastify-hangup')`
//   is the plugin in a CommonJS TypeScript project. tsc's declarations
//   (`export default`, which would make that import a module object) move to
//   dist/cjs/api.d.ts, which the namespace re-exports name by name.
const { writeFileSync, readFileSync, renameSync } = require('node:fs')
const { join } = require('node:path')
const ts = require('typescript')

const dist = join(__dirname, '..', 'dist')
writeFileSync(join(dist, 'esm', 'package.json'), JSON.stringify({ type: 'module' }) + '\n')
writeFileSync(join(dist, 'cjs', 'package.json'), JSON.stringify({ type: 'commonjs' }) + '\n')

const cjsIndex = join(dist, 'cjs', 'index.js')
const source = readFileSync(cjsIndex, 'utf8')
const marker = '// fastify-hangup: module.exports is the plugin'
if (!source.includes(marker)) {
  const tail = `\n${marker}\nmodule.exports = Object.assign(exports.default, exports);\n`
  const mapComment = source.lastIndexOf('\n//# sourceMappingURL=')
  const patched = mapComment === -1
    ? source + tail
    : source.slice(0, mapComment) + tail + source.slice(mapComment + 1)
  writeFileSync(cjsIndex, patched)
}

const cjsTypes = join(dist, 'cjs', 'index.d.ts')
const apiTypes = join(dist, 'cjs', 'api.d.ts')
if (!readFileSync(cjsTypes, 'utf8').includes('export = fastifyHangup')) {
  renameSync(cjsTypes, apiTypes)
  writeFileSync(cjsTypes, exportAssignmentTypes(exportedNames(apiTypes)))
}

/**
 * What a declaration file exports, as tsc sees it: each name, and whether it
 * is a type only (an import alias cannot name those: they get a type alias).
 */
function exportedNames (file) {
  const program = ts.createProgram([file], {
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    skipLibCheck: true,
    types: []
  })
  const checker = program.getTypeChecker()
  const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(file))
  return checker.getExportsOfModule(moduleSymbol)
    .map((symbol) => ({ name: symbol.name, typeOnly: isTypeOnly(checker, symbol) }))
    .sort((a, b) => a.name.localeCompare(b.name))
}

function isTypeOnly (checker, symbol) {
  const declaration = symbol.declarations?.[0]
  if (declaration !== undefined && ts.isExportSpecifier(declaration) && (declaration.isTypeOnly || declaration.parent.parent.isTypeOnly)) {
    assertNotGeneric(checker, symbol)
    return true
  }
  const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol
  return (target.flags & ts.SymbolFlags.Value) === 0
}

/** `export type X = api.X` would drop a type's parameters: fail the build rather than ship that. */
function assertNotGeneric (checker, symbol) {
  const target = checker.getAliasedSymbol(symbol)
  const parameters = target.declarations?.flatMap((declaration) => declaration.typeParameters ?? []) ?? []
  if (parameters.length > 0) throw new Error(`post-build: ${symbol.name} is a generic type export; give its alias in dist/cjs/index.d.ts its parameters`)
}

function exportAssignmentTypes (exports) {
  const aliases = exports
    .filter(({ name }) => name !== 'default' && name !== 'fastifyHangup')
    .map(({ name, typeOnly }) => typeOnly ? `  export type ${name} = api.${name}` : `  export import ${name} = api.${name}`)
  return [
    '// `require(\'fastify-hangup\')` is the plugin, with every named export and',
    '// `.default` on it (scripts/post-build.js): typed as such for CommonJS.',
    "import * as api from './api.js'",
    '// A function, not a const: only a function merges with a namespace.',
    'declare function fastifyHangup (...args: Parameters<typeof api.fastifyHangup>): ReturnType<typeof api.fastifyHangup>',
    'declare namespace fastifyHangup {',
    '  export const fastifyHangup: typeof api.fastifyHangup',
    '  export { fastifyHangup as default }',
    ...aliases,
    '}',
    'export = fastifyHangup',
    ''
  ].join('\n')
}
