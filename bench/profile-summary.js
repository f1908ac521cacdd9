'use strict'

// Summarizes a V8 .cpuprofile (from `node bench/run.js --prof plugin`):
//   node bench/profile-summary.js <file.cpuprofile> [filter] [top]
// prints the top functions by self time, then the inclusive time (the
// function and everything it called) of the functions whose script URL
// contains `filter` (default: fastify-hangup's dist/), as % of the busy time.

const fs = require('node:fs')
const path = require('node:path')

const [file, filter = `${path.sep}dist${path.sep}cjs${path.sep}`, topArg = '25'] = process.argv.slice(2)
if (file === undefined) {
  console.error('usage: node bench/profile-summary.js <file.cpuprofile> [url filter] [top n]')
  process.exit(2)
}

const profile = JSON.parse(fs.readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const parent = new Map()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)

function key (node) {
  const f = node.callFrame
  const url = f.url === '' ? '' : ` ${f.url.replace(/^file:\/\//, '').split('/node_modules/').pop()}:${f.lineNumber + 1}`
  return `${f.functionName || '(anonymous)'}${url}`
}

const self = new Map()
const inclusive = new Map()
let total = 0
let idle = 0
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i] ?? 0
  const node = byId.get(profile.samples[i])
  const name = node.callFrame.functionName
  if (name === '(idle)' || name === '(program)') {
    idle += name === '(idle)' ? dt : 0
  }
  total += dt
  self.set(key(node), (self.get(key(node)) ?? 0) + dt)
  const seen = new Set()
  for (let id = node.id; id !== undefined; id = parent.get(id)) {
    const n = byId.get(id)
    if (!n.callFrame.url.includes(filter)) continue
    const k = key(n)
    if (seen.has(k)) continue
    seen.add(k)
    inclusive.set(k, (inclusive.get(k) ?? 0) + dt)
  }
}

const busy = total - idle
const pct = (v) => `${(v / busy * 100).toFixed(2).padStart(6)}%`
const ms = (v) => `${(v / 1000).toFixed(0).padStart(7)} ms`
console.log(`${path.basename(file)}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (percentages are of busy time)\n`)
console.log(`top ${topArg} by self time:`)
for (const [k, v] of [...self].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, Number(topArg))) {
  console.log(`${pct(v)} ${ms(v)}  ${k}`)
}
console.log(`\ninclusive time of functions in scripts matching "${filter}":`)
for (const [k, v] of [...inclusive].sort((a, b) => b[1] - a[1])) console.log(`${pct(v)} ${ms(v)}  ${k}`)
