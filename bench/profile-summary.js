'use strict'

// Summarizes a V8 .cpuprofile (from `node bench/run.js --prof plugin`):
//   node bench/profile-summary.js <file.cpuprofile> [filter] [top]
// prints the top functions by self time, then, for the functions whose script
// URL contains `filter` (default: fastify-hangup's dist/), as % of busy time:
// - inclusive time: the function and everything it called. A hook's `done()`
//   runs the rest of the request synchronously, so this overstates hooks;
// - own time: samples in that function or in what it called (Node core, a
//   dependency such as @fastify/error), up to the first frame of Fastify or of
//   the benchmark's app: its own cost, not the rest of the request.

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
const own = new Map()
// Frames of Fastify itself, of the benchmark's app or of the plugin: the
// request chain, where attributing a sample to the caller stops.
const isChain = (n) => /[/\\]node_modules[/\\](fastify|find-my-way)[/\\]|[/\\](bench|dist)[/\\]/.test(n.callFrame.url)
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
  for (let id = node.id; id !== undefined; id = parent.get(id)) {
    const n = byId.get(id)
    if (n.callFrame.url.includes(filter)) {
      own.set(key(n), (own.get(key(n)) ?? 0) + dt)
      break
    }
    if (isChain(n)) break
  }
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
let ownTotal = 0
console.log(`\nown time (with what they call, short of Fastify and the app) of functions in scripts matching "${filter}":`)
for (const [k, v] of [...own].sort((a, b) => b[1] - a[1])) {
  ownTotal += v
  console.log(`${pct(v)} ${ms(v)}  ${k}`)
}
console.log(`${pct(ownTotal)} ${ms(ownTotal)}  total`)
