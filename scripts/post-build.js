'use strict'

// Finishes the dual build (one lib/, compiled twice so that both `require` and
// `import` get native modules):
// - dist/esm is ES modules: a package.json with "type": "module" says so to Node;
// - dist/cjs/index.js becomes the plugin function itself, so that
//   `require('fastify-hangup')` returns the plugin (as every Fastify plugin does),
//   with the named exports and `.default` on it.
const { writeFileSync, readFileSync } = require('node:fs')
const { join } = require('node:path')

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
