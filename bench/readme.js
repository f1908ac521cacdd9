'use strict'

const { cli } = require('./cli.js')

// The "## Benchmarks" section of README.md, generated from bench/results/*.json
// (npm run bench:readme). See bench/README.md.
//
// Everything between <!-- bench:start --> and <!-- bench:end --> is rewritten:
// one renderer per table (SECTIONS below), each reading the result files that
// SOURCES maps to its rows. Every figure printed, the verdicts against the
// targets included, is computed from those files; the machine, the Node
// versions and the dates come from their `machine`, `versions` and `date`
// fields. A row whose file is missing (or is not the run it should be) is left
// out with a note under its table. `--check` writes nothing and exits 1 with a
// diff when the README's section is not what this script would write
// (test/bench-readme.test.ts runs it).
//
// After re-running a benchmark into the same file (e.g. compare.js, which
// writes results/compare-<node>.json), `npm run bench:readme` updates the
// README. A run into a new file (another Node, another name) needs its row in
// SOURCES first.

const fs = require('node:fs')
const path = require('node:path')
const { median, quantile } = require('./stats.js')

const HELP = `usage: node bench/readme.js [options]

Rewrites README.md's benchmark section (between <!-- bench:start --> and
<!-- bench:end -->) from the JSON results that SOURCES in this file maps to
its tables.

  --check            write nothing; exit 1 and print a diff if the section is not
                     what this script would write
  --print            print the section instead of writing README.md
  --readme <file>    the README (default README.md at the repository's root)
  --results <dir>    the result files (default bench/results)
  --help
`

// ---------------------------------------------------------------------------
// The mapping: which result file each row of each table comes from. Files are
// relative to bench/results/. `node` is the Node version the file should hold
// (checked against its versions.node; it names the row when the file is
// missing). Row order is table order.
// ---------------------------------------------------------------------------

const SOURCES = {
  // hangup-latency.js: one row per Node.
  hangupLatency: [
    { node: 'v20.20.2', file: 'hangup-latency-v20.20.2.json' },
    { node: 'v22.23.3', file: 'hangup-latency-v22.23.3.json' },
    { node: 'v24.21.0', file: 'hangup-latency-v24.21.0.json' }
  ],
  // overhead.js --routes ignore,read --variants bare,no-fatal,no-context,plugin.
  // `asyncContextFrame`: the run was under Node 22's
  // --experimental-async-context-frame (the JSON does not record the flag; the
  // `-acf` in the name says it). Node 24 and later have the frames anyway.
  cpu: [
    { node: 'v20.20.2', file: 'overhead-v20.20.2-fatal.json', label: '{node}' },
    { node: 'v22.23.3', file: 'overhead-v22.23.3-fatal.json', label: '{node}' },
    { node: 'v22.23.3', file: 'overhead-v22.23.3-acf-fatal.json', label: '{node} with `--experimental-async-context-frame`', asyncContextFrame: true },
    { node: 'v24.21.0', file: 'overhead-v24.21.0-fatal.json', label: '{node}' }
  ],
  // run.js --against plugin (or no-fatal): one row per file and route.
  throughput: [
    { node: 'v20.20.2', file: 'v20.20.2-fatal-plugin.json', route: 'ignore', label: '{node}' },
    { node: 'v20.20.2', file: 'v20.20.2-fatal-plugin.json', route: 'read', label: '{node}' },
    { node: 'v22.23.3', file: 'v22.23.3-fatal-plugin.json', route: 'ignore', label: '{node}' },
    { node: 'v22.23.3', file: 'v22.23.3-fatal-plugin.json', route: 'read', label: '{node}' },
    { node: 'v22.23.3', file: 'v22.23.3-acf-fatal-plugin.json', route: 'ignore', label: '{node}, async context frames', asyncContextFrame: true },
    { node: 'v24.21.0', file: 'v24.21.0-fatal-plugin.json', route: 'ignore', label: '{node}' },
    { node: 'v24.21.0', file: 'v24.21.0-fatal-plugin-2.json', route: 'ignore', label: '{node} (second run)' },
    { node: 'v24.21.0', file: 'v24.21.0-fatal-plugin.json', route: 'read', label: '{node}' },
    { node: 'v24.21.0', file: 'v24.21.0-fatal-no-fatal.json', route: 'ignore', label: '{node}, `fatal: false`', against: 'no-fatal' }
  ],
  // upstream-call.js: one row per Node.
  upstreamCall: [
    { node: 'v20.20.2', file: 'upstream-call-v20.20.2.json' },
    { node: 'v22.23.3', file: 'upstream-call-v22.23.3.json' },
    { node: 'v24.21.0', file: 'upstream-call-v24.21.0.json' }
  ],
  // One row per Node: run.js --against autobind (vs bare Fastify), run.js
  // --against autobind --baseline bare-undici, and overhead.js
  // --variants bare,bare-undici,plugin,autobind (the cost of loading undici,
  // quoted in the prose under the table).
  autobindRoute: [
    { node: 'v20.20.2', vsBare: 'v20.20.2-autobind.json', vsBareUndici: 'v20.20.2-autobind-vs-bare-undici.json', undiciCost: 'overhead-v20.20.2-autobind-undici.json' },
    { node: 'v22.23.3', vsBare: 'v22.23.3-autobind.json', vsBareUndici: 'v22.23.3-autobind-vs-bare-undici.json', undiciCost: 'overhead-v22.23.3-autobind-undici.json' },
    { node: 'v24.21.0', vsBare: 'v24.21.0-autobind.json', vsBareUndici: 'v24.21.0-autobind-vs-bare-undici.json', undiciCost: 'overhead-v24.21.0-autobind-undici.json' }
  ],
  // compare.js: one column per Node.
  compare: [
    { node: 'v20.20.2', file: 'compare-v20.20.2.json' },
    { node: 'v22.23.3', file: 'compare-v22.23.3.json' },
    { node: 'v24.21.0', file: 'compare-v24.21.0.json' }
  ],
  // cluster.js: one column per Node.
  cluster: [
    { node: 'v20.20.2', file: 'cluster-v20.20.2.json' },
    { node: 'v22.23.3', file: 'cluster-v22.23.3.json' },
    { node: 'v24.21.0', file: 'cluster-v24.21.0.json' }
  ],
  // cluster.js --phases clients --hogs N: one row per file (Node, busy loops).
  clusterClients: [
    { node: 'v20.20.2', file: 'cluster-clients-v20.20.2-hogs0.json' },
    { node: 'v20.20.2', file: 'cluster-clients-v20.20.2-hogs4.json' },
    { node: 'v26.12.1', file: 'cluster-clients-v26.12.1-hogs0.json' },
    { node: 'v26.12.1', file: 'cluster-clients-v26.12.1-hogs4.json' }
  ],
  // soak.js (1,000,000 requests): one column per Node.
  soak: [
    { node: 'v20.20.2', file: 'soak-v20.20.2.json' },
    { node: 'v22.23.3', file: 'soak-v22.23.3.json' },
    { node: 'v24.21.0', file: 'soak-v24.21.0.json' }
  ],
  // soak.js --requests 3000000 --out results/soak-<node>-3m.json: the longer
  // runs quoted under the soak table (where RSS levels off).
  soakLong: [
    { node: 'v24.21.0', file: 'soak-v24.21.0-3m.json' }
  ]
}

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

const MINUS = '−'

/** `n` with `decimals` decimals, thousands grouped with commas, a real minus sign. */
function num (n, decimals = 0) {
  const s = Math.abs(n).toFixed(decimals)
  const [whole, fraction] = s.split('.')
  const sign = n < 0 && Number(s) !== 0 ? MINUS : ''
  return sign + whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',') + (fraction === undefined ? '' : `.${fraction}`)
}

/** A ratio as a percentage, `decimals` decimals (as run.js prints it). */
function pct (ratio, decimals = 1) {
  return `${num(ratio * 100, decimals)}%`
}

/** Three significant digits (hangup-latency.js's milliseconds). */
function sig3 (n) {
  return n >= 100 ? num(n) : n.toPrecision(3)
}

function signedNanos (ns) {
  return `${ns >= 0 ? '+' : ''}${num(ns)} ns`
}

/** Nanoseconds as microseconds: 2 decimals under 0.1 µs, else 1. */
function micros (ns) {
  const us = ns / 1000
  return Math.abs(us) < 0.1 ? num(us, 2) : num(us, 1)
}

/** Milliseconds, seconds from 1 s up: `1000` → `1 s`. */
function duration (ms) {
  return ms >= 1000 ? `${num(ms / 1000, ms % 1000 === 0 ? 0 : 1)} s` : `${num(ms)} ms`
}

/**
 * The range of `values` as `min–max` (one figure when both format alike),
 * formatted by `fmt`; `unit` after it. Negative ends are joined with " to ".
 */
function range (values, fmt, unit = '') {
  if (values.length === 0) return '—'
  const lo = fmt(Math.min(...values))
  const hi = fmt(Math.max(...values))
  if (lo === hi) return `${lo}${unit}`
  return `${lo}${Math.min(...values) < 0 ? ' to ' : '–'}${hi}${unit}`
}

/** `a`, `a and b`, `a, b and c`. */
function and (items) {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`
}

const WORDS = ['no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine']
function word (n) {
  return WORDS[n] ?? num(n)
}

/** 'v22.23.3' → '22.23.3' */
function bareVersion (node) {
  return String(node).replace(/^v/, '')
}

function major (node) {
  return Number(bareVersion(node).split('.')[0])
}

function day (date) {
  return String(date).slice(0, 10)
}

/**
 * "met on every Node", "missed on every Node", or "met on Node 20.20.2,
 * missed on Node 22.23.3" from `items` ({ label, met }).
 */
function verdict (items, what = 'Node') {
  const met = items.filter((i) => i.met)
  const missed = items.filter((i) => !i.met)
  if (missed.length === 0) return `met on every ${what}`
  if (met.length === 0) return `missed on every ${what}`
  return `met on ${and(met.map((i) => i.label))}, missed on ${and(missed.map((i) => i.label))}`
}

function table (head, rows, align) {
  const line = (cells) => `|${cells.map((c) => (c === '' ? ' ' : ` ${c} `)).join('|')}|`
  return [line(head), `|${align.map((a) => (a === 'r' ? '---:' : '---')).join('|')}|`, ...rows.map(line)].join('\n')
}

const WIDTH = 100

/**
 * Re-wraps, at WIDTH columns, each paragraph or bullet item that has a line
 * longer than WIDTH + 2 (the others keep their line breaks); never inside a
 * code span. Tables and comments are left alone.
 */
function wrap (markdown) {
  const out = []
  let item = []
  const flush = () => {
    if (item.length === 0) return
    if (item.some((line) => line.length > WIDTH + 2)) {
      const bullet = item[0].startsWith('- ')
      // Words, a code span kept whole and a unit kept with its figure.
      const words = []
      let open = false
      for (const w of item.map((line) => line.trim()).join(' ').replace(/^- /, '').split(' ')) {
        if (words.length > 0 && (open || /^(µs|ms|ns|s|rps)\b/.test(w))) words[words.length - 1] += ` ${w}`
        else words.push(w)
        if ((w.match(/`/g) ?? []).length % 2 === 1) open = !open
      }
      const lead = bullet ? '- ' : ''
      const indent = bullet ? '  ' : ''
      let line = lead
      for (const w of words) {
        const fresh = line === lead || line === indent
        if (!fresh && line.length + 1 + w.length > WIDTH) {
          out.push(line)
          line = indent + w
        } else {
          line += (fresh ? '' : ' ') + w
        }
      }
      out.push(line)
    } else {
      out.push(...item)
    }
    item = []
  }
  for (const line of markdown.split('\n')) {
    if (line === '' || line.startsWith('|') || line.startsWith('<!--')) {
      flush()
      out.push(line)
    } else if (line.startsWith('- ')) {
      flush()
      item.push(line)
    } else {
      item.push(line)
    }
  }
  flush()
  return out.join('\n')
}

function paragraphs (...parts) {
  return parts.filter((p) => p !== null && p !== undefined && p !== '').join('\n\n')
}

function bullets (...items) {
  return items.filter(Boolean).map((item) => `- ${item}`).join('\n')
}

// ---------------------------------------------------------------------------
// Loading: each section loads its files through its context, which remembers
// them (for the dates, the machine and the versions) and turns a missing or
// wrong file into a note under the section's table.
// ---------------------------------------------------------------------------

function makeLoader (dir) {
  const cache = new Map()
  return function read (file) {
    if (!cache.has(file)) {
      const full = path.join(dir, file)
      let entry
      try {
        entry = { json: JSON.parse(fs.readFileSync(full, 'utf8')) }
      } catch (err) {
        entry = { problem: err.code === 'ENOENT' ? 'missing' : `unreadable (${err.message})` }
      }
      cache.set(file, entry)
    }
    return cache.get(file)
  }
}

function makeContext (read, resultsLabel) {
  const used = new Map()
  const notes = []
  return {
    used,
    notes,
    note (text) { notes.push(text) },
    /**
     * The JSON of `file`, or null with a note saying that `what` is left
     * out. `expect`: top-level fields the file must have (e.g. `benchmark`,
     * `against`; undefined: must be absent); `node`: the Node version it must
     * hold.
     */
    load (file, { what, expect = {}, node } = {}) {
      const { json, problem } = read(file)
      const where = `\`${resultsLabel}/${file}\``
      if (problem !== undefined) {
        notes.push(`${what ?? 'its row'}: left out, ${where} is ${problem}`)
        return null
      }
      for (const [key, value] of Object.entries(expect)) {
        if (json[key] !== value) {
          notes.push(`${what ?? 'its row'}: left out, ${where} has ${key} ${JSON.stringify(json[key])}, not ${JSON.stringify(value)}`)
          return null
        }
      }
      if (node !== undefined && json.versions?.node !== node) {
        notes.push(`${where} was expected to hold Node ${bareVersion(node)} and holds ${json.versions?.node ?? 'no Node version'}`)
      }
      used.set(file, json)
      return json
    },
    /** A file another section reports (no note, not counted as this section's). */
    peek (file) {
      return read(file).json ?? null
    }
  }
}

/** The machine facts that identify a machine (not its load). */
function machineKey (m = {}) {
  return JSON.stringify([m.cpuModel, m.cores, m.totalMemoryMB, m.platform])
}

function describeMachine (m = {}) {
  const [os, release, arch] = String(m.platform ?? 'unknown').split(' ')
  const system = [os === 'linux' ? 'Linux' : os, release].filter(Boolean).join(' ')
  const memory = m.totalMemoryMB === undefined ? 'unknown memory' : `${num(m.totalMemoryMB / 1024, 1)} GiB of memory`
  return `a ${m.cores ?? '?'}-core ${m.cpuModel ?? 'unknown CPU'} machine (${system}${arch ? ` ${arch}` : ''}, ${memory})`
}

/** Notes on the dates and machines of one section's files. */
function provenanceNotes (used, mainMachine) {
  const notes = []
  const byDay = new Map()
  for (const [file, json] of used) {
    const d = day(json.date)
    if (!byDay.has(d)) byDay.set(d, [])
    byDay.get(d).push(`\`${file}\``)
  }
  if (byDay.size > 1) {
    notes.push(`measured on different dates: ${[...byDay].sort().map(([d, files]) => `${d} (${files.join(', ')})`).join('; ')}`)
  }
  for (const [file, json] of used) {
    if (machineKey(json.machine) !== mainMachine) notes.push(`\`${file}\` was measured on ${describeMachine(json.machine)}`)
  }
  return notes
}

// ---------------------------------------------------------------------------
// The sections, in README order. Each renderer gets a context (`load`,
// `peek`, `note`) and returns its Markdown, or null to leave the section out.
// ---------------------------------------------------------------------------

/** Loads each row's file; rows whose file could not be used are dropped (with a note). */
function loadRows (ctx, rows, expect) {
  const out = []
  for (const row of rows) {
    const json = ctx.load(row.file, { what: row.label ? rowName(row) : `Node ${bareVersion(row.node)}`, expect, node: row.node })
    if (json !== null) out.push({ ...row, json, node: json.versions?.node ?? row.node })
  }
  return out
}

/** A row's first cell: its label with its Node version. */
function rowLabel (row) {
  return (row.label ?? '{node}').replace('{node}', bareVersion(row.node))
}

/** A row in a note: its label and route. */
function rowName (row) {
  return rowLabel(row) + (row.route ? ` \`/${row.route}\`` : '')
}

/** **Hang-up → upstream close** (hangup-latency.js). */
function renderHangupLatency (ctx) {
  const rows = loadRows(ctx, SOURCES.hangupLatency, { benchmark: 'hangup-latency' })
  if (rows.length === 0) return null
  const mode = (json, name) => json.summaries.find((s) => s.mode === name)
  const latency = (s) => {
    if (!s?.hangupToUpstreamCloseMs) return '—'
    const h = s.hangupToUpstreamCloseMs
    return `${sig3(h.p50)} / **${sig3(h.p99)}** / ${sig3(h.max)} ms`
  }
  const plain = (s) => {
    if (!s?.hangupToUpstreamCloseMs) return '—'
    const h = s.hangupToUpstreamCloseMs
    return `${sig3(h.p50)} / ${sig3(h.p99)} / ${sig3(h.max)} ms`
  }
  const none = (s) => (s ? `upstream ran its full ${duration(s.upstreamHoldMs)} (${s.upstreamCompleted}/${s.measured})` : '—')
  const n = rows.map((r) => r.json.options.n)
  const target = rows[0].json.target.p99Ms
  const met = rows.map((r) => ({ label: `Node ${bareVersion(r.node)}`, met: mode(r.json, 'plugin')?.hangupToUpstreamCloseMs?.p99 <= r.json.target.p99Ms }))
  return paragraphs(
    `**Hang-up → upstream close** (\`node bench/hangup-latency.js\`): a client sends a GET through a
Fastify proxy calling the upstream with \`undici.request(url, { signal: request.signal })\`, and
destroys its socket once the upstream has the request; the time is until the upstream's response
emits \`'close'\`. ${range(n, num)} hang-ups per mode, one process, one clock.`,
    table(
      ['Node', 'fastify-hangup p50 / p99 / max', "Fastify's own signal (GET only) p50 / p99 / max", 'no signal'],
      rows.map((r) => [bareVersion(r.node), latency(mode(r.json, 'plugin')), plain(mode(r.json, 'fastify')), none(mode(r.json, 'none'))]),
      ['l', 'l', 'l', 'l']
    ),
    `Target p99 ≤ ${num(target)} ms: ${verdict(met)}. On a GET, Fastify's own signal is as fast; it is with a body
(aborted at once, before any hang-up) and after \`reply.hijack()\` (never aborted) that it fails — see
the demo.`
  )
}

/** The CPU rows (overhead.js), also quoted by the throughput section's prose. */
function cpuFigures (rows) {
  return rows.map((r) => {
    const ignore = r.json.results.ignore
    return {
      ...r,
      contextFrames: r.asyncContextFrame === true || major(r.node) >= 24,
      plugin: ignore.plugin,
      noContext: ignore['no-context'],
      noFatal: ignore['no-fatal'],
      read: r.json.results.read?.plugin
    }
  })
}

const CPU_EXPECT = { benchmark: 'overhead' }

/** **CPU per request** (overhead.js). */
function renderCpu (ctx) {
  const rows = cpuFigures(loadRows(ctx, SOURCES.cpu, CPU_EXPECT))
  if (rows.length === 0) return null
  const cell = (v, bold = false) => (v ? `${signedNanos(v.extraNanosPerRequest)} → ${bold ? `**${pct(v.throughputVsBare)}**` : pct(v.throughputVsBare)}` : '—')
  return paragraphs(
    `**CPU per request** (\`node bench/overhead.js\`: each variant serves ${range(rows.map((r) => r.json.options.chunk), num)} requests alone on one core,
${range(rows.map((r) => r.json.options.rounds), num)} alternating rounds, median of the per-round ratios; the sharpest figure on this noisy VM).
\`/ignore\` never reads \`request.signal\`; \`/read\` reads it. "Throughput-equivalent" is bare Fastify's
CPU time per request divided by the variant's.`,
    table(
      ['Node', 'defaults (`asyncContext` on)', '`fatal: { asyncContext: false }`', '`fatal: false`', 'defaults, `/read`'],
      rows.map((r) => [rowLabel(r), cell(r.plugin, true), cell(r.noContext), cell(r.noFatal), r.read ? pct(r.read.throughputVsBare) : '—']),
      ['l', 'r', 'r', 'r', 'r']
    )
  )
}

/** The throughput rows (run.js), each with its route's summary. */
function throughputRows (ctx) {
  const out = []
  for (const row of SOURCES.throughput) {
    const what = rowName(row)
    const json = ctx.load(row.file, { what, expect: { benchmark: 'throughput', against: row.against ?? 'plugin', baseline: undefined }, node: row.node })
    if (json === null) continue
    const summary = json.summaries.find((s) => s.route === row.route)
    if (!summary) {
      ctx.note(`${what}: left out, \`${row.file}\` has no \`/${row.route}\` route`)
      continue
    }
    out.push({ ...row, json, node: json.versions.node, summary, against: row.against ?? 'plugin', contextFrames: row.asyncContextFrame === true || major(json.versions.node) >= 24 })
  }
  return out
}

function pairRatios (s) {
  return `${pct(s.pairRatios.median)} [${num(s.pairRatios.q1 * 100, 1)}–${num(s.pairRatios.q3 * 100, 1)}]`
}

/** **Throughput** (run.js), and what the CPU and throughput figures say. */
function renderThroughput (ctx) {
  const rows = throughputRows(ctx)
  if (rows.length === 0) return null
  const clean = rows.map((r) => r.summary.cleanPairs)
  const notClean = rows.filter((r) => r.summary.basis !== 'clean pairs')
  for (const r of notClean) ctx.note(`${rowName(r)}: fewer than 3 clean pairs, its figures are over all ${r.summary.pairs} pairs`)
  const intro = `**Throughput** (\`npm run bench\`): bare Fastify and Fastify + the plugin's defaults in two forked
servers driven alternately by autocannon (\`-c ${range(rows.map((r) => r.json.autocannon.connections), num)}\`, ${range(rows.map((r) => r.json.autocannon.duration), num)} s runs, ${range(clean, num)} clean pairs per route: server
saturated, no other program on the CPU).`
  const tbl = table(
    ['Node', 'route', 'bare rps', 'plugin rps', 'plugin/bare (medians)', 'within pairs, median [IQR]'],
    rows.map((r) => [rowLabel(r), `\`/${r.route}\``, num(r.summary.bareMedianRps), num(r.summary.pluginMedianRps), pct(r.summary.ratio), pairRatios(r.summary)]),
    ['l', 'l', 'r', 'r', 'r', 'l']
  )
  return paragraphs(intro, tbl, 'What the figures say:', bullets(
    contextCostBullet(ctx),
    targetsBullet(ctx, rows),
    noContextBullet(ctx),
    readBullet(ctx, rows),
    noiseBullet(rows)
  ))
}

/** The CPU rows for the prose (the CPU section reports their missing files). */
function peekCpu (ctx) {
  const rows = []
  for (const row of SOURCES.cpu) {
    const json = ctx.peek(row.file)
    if (json !== null && json.benchmark === CPU_EXPECT.benchmark) rows.push({ ...row, json, node: json.versions.node })
  }
  return cpuFigures(rows)
}

function contextCostBullet (ctx) {
  const cpu = peekCpu(ctx).filter((r) => r.plugin && r.noContext)
  const cost = (r) => r.plugin.extraNanosPerRequest - r.noContext.extraNanosPerRequest
  const hooks = cpu.filter((r) => !r.contextFrames).map(cost)
  const frames = cpu.filter((r) => r.contextFrames).map(cost)
  if (hooks.length === 0 && frames.length === 0) return null
  return `**The cost is the async context, and it depends on how Node implements \`AsyncLocalStorage\`.** On
  Node 20 and 22 it is built on async hooks: once any \`AsyncLocalStorage\` is in use, every promise
  and async resource the process creates pays a hook, ${range(hooks, micros, ' µs')} per request of this trivial
  route (more on routes that create more promises). Node 24 (and Node 22 with \`--experimental-async-context-frame\`) uses
  async context frames, where the context costs ${range(frames, micros, ' µs')} of CPU (defaults minus
  \`fatal: { asyncContext: false }\`, CPU per request).`
}

function targetsBullet (ctx, rows) {
  const cpu = peekCpu(ctx)
  const defaults = rows.filter((r) => r.against === 'plugin' && r.route === 'ignore')
  const targeted = defaults.find((r) => r.json.target)?.json.target
  if (!targeted || cpu.length === 0) return null
  const goal = targeted.minRatio
  const nodes = [...new Set([...cpu.map((r) => bareVersion(r.node)), ...defaults.map((r) => bareVersion(r.node))])]
    .sort((a, b) => major(b) - major(a))
  const sentences = []
  const untargeted = []
  for (const node of nodes) {
    const group = (frames) => {
      const c = cpu.find((r) => bareVersion(r.node) === node && r.contextFrames === frames)
      const t = defaults.filter((r) => bareVersion(r.node) === node && r.contextFrames === frames)
      return { cpu: c?.plugin?.throughputVsBare, thr: t.map((r) => r.summary.ratio), runs: t }
    }
    const own = group(major(node) >= 24)
    const nodeRuns = defaults.filter((r) => bareVersion(r.node) === node)
    const target = nodeRuns.find((r) => r.json.target)?.json.target ?? null
    if (nodeRuns.length === 0) {
      untargeted.push(`Node ${major(node)}: ${own.cpu === undefined ? 'no figures' : `${pct(own.cpu)} CPU`} (no throughput run).`)
      continue
    }
    if (target === null) {
      untargeted.push(`Node ${major(node)} (no target): ${[own.cpu === undefined ? null : `${pct(own.cpu)} CPU`, own.thr.length ? `${and(own.thr.map((x) => pct(x)))} throughput` : null].filter(Boolean).join(', ')}.`)
      continue
    }
    const min = target.minRatio
    const cpuMet = own.cpu !== undefined && own.cpu >= min
    const thrMet = own.thr.length > 0 && own.thr.every((x) => x >= min)
    const runs = own.thr.length > 1 ? ` in ${word(own.thr.length)} runs` : ''
    const thrText = `${and(own.thr.map((x) => pct(x)))}${runs}`
    let s
    if (own.cpu === undefined || own.thr.length === 0) {
      s = `Node ${major(node)}: ${own.cpu === undefined ? '' : `${pct(own.cpu)} CPU`}${own.thr.length ? `${thrText} throughput` : ''}`
    } else if (cpuMet && thrMet) {
      s = `Node ${major(node)} meets it by CPU (${pct(own.cpu)}) and in throughput (${thrText})`
    } else if (cpuMet) {
      const just = own.thr.every((x) => min - x < 0.05) ? 'just ' : ''
      s = `Node ${major(node)} meets it by CPU (${pct(own.cpu)}) and sits ${just}under it in throughput (${thrText}${noFatalClause(rows, node, own.runs)})`
    } else if (thrMet) {
      s = `Node ${major(node)} misses it by CPU (${pct(own.cpu)}) and meets it in throughput (${thrText})`
    } else {
      s = `Node ${major(node)} misses it${major(node) < 24 ? ' with its default `AsyncLocalStorage`' : ''} (${pct(own.cpu)} CPU, ${thrText} throughput)`
    }
    if (major(node) < 24) {
      const acf = group(true)
      if (acf.cpu !== undefined || acf.thr.length > 0) {
        const parts = []
        const inRuns = `${and(acf.thr.map((x) => pct(x)))} in ${word(acf.thr.length)} throughput run${acf.thr.length > 1 ? 's' : ''}`
        if (acf.cpu !== undefined) parts.push(`${acf.cpu >= min ? 'reaches' : 'stays at'} ${pct(acf.cpu)} by CPU`)
        if (acf.thr.length > 0) parts.push(acf.cpu !== undefined ? `(${inRuns})` : `gives ${inRuns}`)
        s += `; with \`--experimental-async-context-frame\` it ${parts.join(' ')}`
      }
    }
    sentences.push(`${s}.`)
  }
  const from = String(targeted.from ?? '').split(':')[0] || 'the issue'
  const which = and(defaults.filter((r) => r.json.target).map((r) => String(major(r.node))).filter((v, i, a) => a.indexOf(v) === i))
  return `**Targets** (${from}: the defaults ≥ ${pct(goal, 0)} of bare Fastify on Node ${which}): ${[...sentences, ...untargeted].join('\n  ')}`
}

/** "; `fatal: false` gives 99.3% in a run beside the second, so about 5 points are the context ...". */
function noFatalClause (rows, node, runs) {
  const nf = rows.find((r) => r.against === 'no-fatal' && r.route === 'ignore' && bareVersion(r.node) === node)
  if (!nf || runs.length === 0) return ''
  const at = Date.parse(nf.json.date)
  let nearest = 0
  runs.forEach((r, i) => { if (Math.abs(Date.parse(r.json.date) - at) < Math.abs(Date.parse(runs[nearest].json.date) - at)) nearest = i })
  const beside = runs.length === 1 ? 'it' : `the ${['first', 'second', 'third', 'fourth'][nearest] ?? `run ${nearest + 1}`}`
  const points = Math.round((nf.summary.ratio - runs[nearest].summary.ratio) * 100)
  return `; \`fatal: false\` gives ${pct(nf.summary.ratio)} in a run beside ${beside}, so about ${points} points are the context under ${nf.json.autocannon.connections} concurrent connections`
}

function noContextBullet (ctx) {
  const cpu = peekCpu(ctx).filter((r) => r.noContext)
  if (cpu.length === 0) return null
  return `**Without the context** (\`fatal: { asyncContext: false }\`) the plugin costs ${range(cpu.map((r) => r.noContext.extraNanosPerRequest), micros, ' µs')} per
  request, ${range(cpu.map((r) => r.noContext.throughputVsBare * 100), (x) => num(x, 1), '%')} of bare Fastify by CPU on every Node, and still closes gracefully on a crash;
  only the request that crashed is then answered 503 at the deadline instead of 500 at once.`
}

function readBullet (ctx, rows) {
  const cpu = peekCpu(ctx).filter((r) => r.read).map((r) => r.read.throughputVsBare)
  const thr = rows.filter((r) => r.route === 'read' && r.against === 'plugin').map((r) => r.summary.ratio)
  const all = [...cpu, ...thr]
  if (all.length === 0) return null
  const figures = `\`/read\`: ${range(cpu.map((x) => x * 100), (x) => num(x, 1), '%')} by CPU, ${range(thr.map((x) => x * 100), (x) => num(x, 1), '%')} by throughput`
  if (all.some((x) => x <= 1)) return `**Reading the signal** (${figures}): Fastify's getter keeps a \`'close'\` listener that aborts the signal after every response with a fresh \`DOMException\`; the plugin aborts with a reason built without a stack, and only when a signal exists.`
  return `**Reading the signal is cheaper with the plugin than without it** (${figures}, all above 100%): Fastify's
  getter keeps a \`'close'\` listener that aborts the signal after every response with a fresh
  \`DOMException\` (stack trace included); the plugin aborts with a reason built without a stack, and
  only when a signal exists.`
}

function noiseBullet (rows) {
  const spread = rows.flatMap((r) => [r.summary.bareRps.rangePct / 2, r.summary.pluginRps.rangePct / 2])
  const bare = rows.filter((r) => r.route === 'ignore').map((r) => r.summary.bareMedianRps)
  const days = new Set(rows.map((r) => day(r.json.date)))
  const k = (x) => `${num(x / 1000)}k`
  return `Single autocannon runs on this burstable VM vary by ±${range(spread, (x) => num(x), '%')} (half the range of a variant's runs, per
  row); bare Fastify's own rate on \`/ignore\` moved from ${k(Math.min(...bare))} to ${k(Math.max(...bare))} rps between runs${days.size === 1 ? ' of the same day' : ''}.`
}

/** **`autoBind`: cost per upstream call** (upstream-call.js). */
function renderUpstreamCall (ctx) {
  const rows = loadRows(ctx, SOURCES.upstreamCall, { benchmark: 'upstream-call' })
  if (rows.length === 0) return null
  const ks = [...new Set(rows.flatMap((r) => r.json.cases.map((c) => c.perRequest)))].sort((a, b) => a - b)
  const ratio = (c) => (c ? `**${pct(c.wall.binding.ratio.median)}** [${num(c.wall.binding.ratio.iqr[0] * 100, 1)}–${num(c.wall.binding.ratio.iqr[1] * 100, 1)}]` : '—')
  const calls = (k) => `${k} call${k === 1 ? '' : 's'} per request`
  const first = ks[0]
  const head = ['Node', `${calls(first)}: unbound → bound`, 'ratio [IQR]', ...ks.slice(1).map((k) => `${calls(k)}: ratio [IQR]`)]
  const body = rows.map((r) => {
    const c = (k) => r.json.cases.find((x) => x.perRequest === k)
    const one = c(first)
    const times = one ? `${num(one.wall.microsPerCall.unbound.median, 1)} → ${num(one.wall.microsPerCall.bound.median, 1)} µs` : '—'
    return [bareVersion(r.node), times, ratio(one), ...ks.slice(1).map((k) => ratio(c(k)))]
  })
  const maxRatio = rows[0].json.target.maxRatio
  const met = rows.map((r) => ({ label: `Node ${bareVersion(r.node)}`, met: r.json.cases.every((c) => c.wall.binding.ratio.median <= r.json.target.maxRatio) }))
  // The per-request part of a call with the signal read (unbound-signal vs
  // unbound, 1 call per request): what listening on request.signal cost.
  const signalCost = rows.map((r) => ({ node: r.node, ns: r.json.cases.find((c) => c.perRequest === first)?.wall.perRequestPart?.extraNanosPerCall.median })).filter((x) => x.ns !== undefined)
  const most = signalCost.reduce((a, b) => (b.ns > a.ns ? b : a), signalCost[0])
  const signalText = signalCost.length === 0
    ? ''
    : ` (an earlier version that listened on \`request.signal\` cost ${range(signalCost.map((x) => x.ns), (ns) => num(ns / 1000))} µs per request
for the signal alone, most on Node ${major(most.node)})`
  return paragraphs(
    `**\`autoBind\`: cost per upstream call** (\`node bench/upstream-call.js\`: one pinned process with a
local upstream, the app and a keep-alive client; a route makes ${and(ks.map(String)).replace(/ and /, ' or ')} sequential \`undici.request()\`
calls with no signal, bound, or inside \`detach()\`, unbound; ${range(rows.map((r) => r.json.options.rounds), num)} alternating rounds of ${range(rows.map((r) => r.json.options.calls), num)} calls,
median of the per-round ratios, wall time):`,
    table(head, body, head.map(() => 'l')),
    `Target ≤ ${num(Math.round((maxRatio - 1) * 1000) / 10)}% more time per bound call: ${verdict(met)}. Binding a call costs an async-context
lookup, one entry in the request's set of calls and a forwarding handler; it creates no
\`AbortController\`${signalText}. The unbound calls run inside \`detach()\`, which has a small
cost of its own, hence ratios just under 100%.`
  )
}

/** **`autoBind`: route throughput** (run.js --against autobind, with and without --baseline bare-undici). */
function renderAutobindRoute (ctx) {
  const rows = []
  for (const row of SOURCES.autobindRoute) {
    const node = bareVersion(row.node)
    const vsBare = ctx.load(row.vsBare, { what: `Node ${node}, autobind vs bare Fastify`, expect: { benchmark: 'throughput', against: 'autobind', baseline: undefined }, node: row.node })
    const vsUndici = ctx.load(row.vsBareUndici, { what: `Node ${node}, autobind vs bare Fastify + undici`, expect: { benchmark: 'throughput', against: 'autobind', baseline: 'bare-undici' }, node: row.node })
    const cost = ctx.load(row.undiciCost, { what: `Node ${node}, the cost of loading undici (prose)`, expect: { benchmark: 'overhead' }, node: row.node })
    if (vsBare === null && vsUndici === null) continue
    const ignore = (json) => json?.summaries.find((s) => s.route === 'ignore') ?? null
    rows.push({ node, vsBare, vsUndici, bare: ignore(vsBare), undici: ignore(vsUndici), cost: cost?.results.ignore?.['bare-undici'] ?? null })
  }
  if (rows.length === 0) return null
  // "measured before the change above": only while these runs are older than upstream-call.js's.
  const callDates = SOURCES.upstreamCall.map((r) => ctx.peek(r.file)?.date).filter(Boolean).map(Date.parse)
  const ownDates = rows.flatMap((r) => [r.vsBare?.date, r.vsUndici?.date]).filter(Boolean).map(Date.parse)
  const before = callDates.length > 0 && Math.max(...ownDates) < Math.min(...callDates)
  const beforeText = before ? '; measured\nbefore the change above, which does not touch this path' : ''
  const cellBare = (r) => (r.bare ? (r.vsBare.target ? `**${pct(r.bare.ratio)}**` : pct(r.bare.ratio)) : '—')
  const cellUndici = (r) => {
    if (!r.undici) return '—'
    // The within-pair median when it tells another story than the medians' ratio (2 points or more apart).
    const pairs = Math.abs(r.undici.pairRatios.median - r.undici.ratio) >= 0.02 ? ` (within pairs ${pairRatios(r.undici)})` : ''
    return `${pct(r.undici.ratio)}${pairs}`
  }
  const targeted = rows.filter((r) => r.vsBare?.target && r.bare)
  const verdicts = targeted.map((r) => ({ label: `Node ${r.node}`, met: r.bare.ratio >= r.vsBare.target.minRatio }))
  const targetText = targeted.length === 0
    ? ''
    : `Target ≥ ${pct(targeted[0].vsBare.target.minRatio, 0)} of bare Fastify on Node ${and(targeted.map((r) => String(major(r.node))))}: **${verdicts.every((v) => v.met) ? 'met' : verdicts.every((v) => !v.met) ? 'missed' : verdict(verdicts)}**. `
  const costs = rows.filter((r) => r.cost)
  const undiciRatios = rows.filter((r) => r.undici).map((r) => r.undici.ratio * 100)
  const costText = costs.length === 0
    ? ''
    : `Most of the gap is not the plugin: loading
undici at all (\`require('undici')\` in bare Fastify, no plugin) costs ${range(costs.map((r) => r.cost.extraNanosPerRequest), micros)} µs of CPU per request
on this route (\`bench/overhead.js\`, variant \`bare-undici\`: ${range(costs.map((r) => r.cost.costVsBare * 100), (x) => num(x), '%')} of bare's CPU time; CPU profiles
put it in \`process.nextTick\`). `
  return paragraphs(
    `**\`autoBind\`: route throughput** (\`run.js --against autobind\`, \`/ignore\`, no upstream call${beforeText}):`,
    table(
      ['Node', 'autobind vs bare Fastify', "autobind vs bare Fastify + `require('undici')`"],
      rows.map((r) => [r.node, cellBare(r), cellUndici(r)]),
      ['l', 'l', 'l']
    ),
    `${targetText}${costText}An app that uses \`autoBind\` has undici loaded anyway; against that
baseline the plugin's defaults plus \`autoBind\` reach ${range(undiciRatios, (x) => num(x, 1), '%')} by throughput.`
  )
}

/**
 * The rows of the comparison: a variant and its methods (two methods: one
 * row, figures "GET / POST"). `note`: said after the saved share when every
 * abandoned call ran to its end.
 */
const COMPARE_ROWS = [
  { variant: 'core-signal', methods: ['GET'], label: "Fastify's own `request.signal`" },
  { variant: 'core-signal', methods: ['POST'], label: "Fastify's own `request.signal`" },
  { variant: 'reply-from', methods: ['GET', 'POST'], label: '@fastify/reply-from', ranNote: true },
  { variant: 'http-proxy', methods: ['GET', 'POST'], label: '@fastify/http-proxy' },
  { variant: 'hangup-signal', methods: ['GET'], label: 'fastify-hangup, `signal: request.signal`' },
  { variant: 'hangup-signal', methods: ['POST'], label: 'fastify-hangup, `signal: request.signal`' },
  { variant: 'hangup-autobind', methods: ['GET'], label: 'fastify-hangup, `autoBind` (no signal)' },
  { variant: 'hangup-autobind', methods: ['POST'], label: 'fastify-hangup, `autoBind` (no signal)' }
]

/** One figure per Node if they differ, else the one figure. */
/** A row of a table with one column per Node (`cols`): its label, then `fmt(json)` of each. */
function byNode (cols) {
  return (name, fmt) => [name, ...cols.map((c) => fmt(c.json))]
}

/** The table of `rows` (from byNode) under a "Node x.y.z" header per column. */
function nodeTable (cols, rows) {
  return table(['', ...cols.map((c) => `Node ${bareVersion(c.node)}`)], rows, ['l', ...cols.map(() => 'l')])
}

function perNode (cols, fmt) {
  const values = cols.map(fmt)
  return values.every((v) => v === values[0]) ? values[0] : cols.map((c, i) => `${major(c.node)}: ${values[i]}`).join(', ')
}

/** **Against the alternatives** (compare.js). */
function renderCompare (ctx) {
  const cols = loadRows(ctx, SOURCES.compare, { benchmark: 'compare' })
  if (cols.length === 0) return null
  const result = (col, variant, method) => col.json.results.find((r) => r.variant === variant && r.method === method) ?? null
  const versions = cols[0].json.versions
  const opts = cols[0].json.options
  const targets = cols[0].json.targets
  const share = opts.hangupShare === 0.5 ? 'half the clients' : `${pct(opts.hangupShare, 0)} of the clients`
  const rows = []
  for (const def of COMPARE_ROWS) {
    const results = cols.map((col) => def.methods.map((m) => result(col, def.variant, m)))
    if (results.every((rs) => rs.every((r) => r === null))) continue
    const all = results.flat().filter(Boolean)
    const checked = all.some((r) => r.targets)
    const b = (text) => (checked ? `**${text}**` : text)
    const saved = all.map((r) => r.abandoned.savedShare).filter((x) => x !== null)
    let savedCell
    if (saved.length === 0) {
      savedCell = '— (nothing left to cancel)'
    } else {
      const text = range(saved.map((x) => x * 100), (x) => num(x, 1), '%')
      const ranAll = all.every((r) => r.hungUp > 0 && r.abandoned.upstreamRanToCompletion === r.hungUp)
      const negative = Math.max(...saved) < 0
      savedCell = (checked || negative ? `**${text}**` : text) + (def.ranNote && ranAll ? ` (every abandoned call ran its full ${duration(opts.work)})` : '')
    }
    const latency = results.map((rs) => {
      const h = rs.filter(Boolean).map((r) => r.abandoned.hangupToUpstreamCloseMs).filter(Boolean)
      if (h.length === 0) return '—'
      const p50 = Math.max(...h.map((x) => x.p50))
      const p99 = Math.max(...h.map((x) => x.p99))
      // Calls that ran to their end: whole milliseconds, the higher of the methods.
      return p50 >= 100 ? `~${num(p50)} / ~${num(p99)}` : `${num(p50, 2)} / ${num(p99, 2)}`
    })
    const failed = perNode(cols.map((c, i) => ({ node: c.node, rs: results[i].filter(Boolean) })), ({ rs }) => rs.map((r) => {
      const f = r.stayers.failed
      if (f === 0) return b('0')
      const why = Object.keys(r.stayers.failures ?? {}).map((k) => k.replace(/^status /, '')).join(', ')
      return `**${num(f)} of ${num(r.stayed)}**${why ? ` (${why})` : ''}`
    }).filter((v, i, all) => all.indexOf(v) === i).join(' / '))
    const errors = perNode(cols.map((c, i) => ({ node: c.node, rs: results[i].filter(Boolean) })), ({ rs }) => rs.map((r) => {
      const n = r.logs.errorLevel
      const every = n > 0 && n === r.hungUp && def.methods.length === 1 && r.stayers.failed === 0 ? ' (every hang-up a 500)' : ''
      return n === 0 ? b('0') : `${num(n)}${every}`
    }).join(' / '))
    rows.push([def.label, def.methods.join(' / '), savedCell, ...latency, failed, errors])
  }
  const hangup = cols.flatMap((col) => col.json.results.filter((r) => r.targets).map((r) => ({ col, r })))
  const goal = (key) => hangup.map(({ col, r }) => ({ label: `Node ${major(col.node)} ${r.method}`, met: r.targets[key].met }))
  const allMet = (key) => goal(key).every((g) => g.met)
  const others = ['saved99', 'noPrematureAbort', 'noErrorLogs']
  const othersText = others.every(allMet)
    ? '**met** on every Node and method'
    : others.map((k) => `${k}: ${verdict(goal(k), 'Node and method')}`).join('; ')
  const p99s = hangup.map(({ r }) => r.abandoned.hangupToUpstreamCloseMs.p99)
  const proxyLeg = hangup.map(({ r }) => r.abandoned.hangupToProxyCloseMs?.p99).filter((x) => x !== undefined)
  const core = cols.map((col) => result(col, 'core-signal', 'GET')?.abandoned.hangupToUpstreamCloseMs?.p99).filter((x) => x !== undefined)
  const busy = SOURCES.hangupLatency.map((r) => ctx.peek(r.file)).filter(Boolean).map((j) => j.summaries.find((s) => s.mode === 'plugin')?.hangupToUpstreamCloseMs?.p99).filter((x) => x !== undefined)
  const ms2 = (x) => num(x, 1)
  const p99Met = allMet('p99le2ms')
  const p99None = goal('p99le2ms').every((g) => !g.met)
  const p99Text = p99Met
    ? `**met** (${range(p99s, ms2, ' ms')})`
    : `**${p99None ? 'missed' : verdict(goal('p99le2ms'), 'Node and method')}** here
  (${range(p99s, ms2, ' ms')}): the processes of this workload sleep between events, and on this VM the leg from
  the client's hang-up to the proxy's \`'close'\` event, before any plugin code runs, is already
  ${range(proxyLeg, ms2, ' ms')} at p99; Fastify's own signal is as slow (${range(core, ms2, ' ms')})`
  const busyText = busy.length === 0
    ? ''
    : `. \`hangup-latency.js\`, which
  keeps the processes busy, gives ${range(busy, (x) => num(x, 2), ' ms')} (above)`
  return paragraphs(
    `**Against the alternatives** (\`node bench/compare.js\`, issue 6: the same proxy through each
variant, an upstream working ${duration(opts.work)} per request, ${share} hanging up after ${num(opts.hangupAfter)} ms, ${num(opts.requests * opts.hangupShare)}
hang-ups and ${num(opts.requests * (1 - opts.hangupShare))} clients that stay per row, one process tree; Fastify ${versions.fastify}, undici ${versions.undici},
@fastify/reply-from ${versions.replyFrom}, @fastify/http-proxy ${versions.httpProxy}). Hang-up → upstream close p50 / p99 in ms:`,
    table(
      ['variant', 'method', 'abandoned upstream work saved', ...cols.map((c) => `Node ${bareVersion(c.node)}`), 'clients that stayed and failed', 'error-level log lines'],
      rows,
      ['l', 'l', 'r', ...cols.map(() => 'l'), 'r', 'r']
    ),
    bullets(
      hangup.length === 0
        ? null
        : `Targets for fastify-hangup: ≥ ${pct(targets.savedShare, 0)} of abandoned work saved, no premature abort, no error log —
  ${othersText}. p99 hang-up → upstream close ≤ ${num(targets.p99HangupToUpstreamCloseMs)} ms — ${p99Text}${busyText}.`,
      `Fastify's own signal cancels a GET, but logs every hang-up as a 500 at \`error\`, and fails every
  POST (its signal is aborted once the body is read) even for clients that stay.`,
      `reply-from (and http-proxy, built on it) never tells the upstream: each abandoned call ran its
  full ${opts.work === 1000 ? 'second' : duration(opts.work)}; on a POST it then pipes the answer into the dead response and Fastify logs a 500
  "Request aborted" at \`error\`, once per hang-up.`
    )
  )
}

/**
 * The dip after a crash, from each crashing run's `timeline` (responses per
 * bucket): for each crash followed by a whole interval within the run, its
 * lowest bucket before the next crash as a share of the median bucket of the
 * same round's crash-free run, and how long the rate stayed under half of it.
 */
function crashDips (json) {
  const shares = []
  const below = []
  const free = json.throughputRuns.filter((r) => r.interval === null)
  for (const run of json.throughputRuns.filter((r) => r.interval !== null && r.crash && r.timeline)) {
    const ref = free.find((f) => f.round === run.round)
    if (!ref?.timeline) continue
    const bucket = run.timeline.bucketMs
    const rate = median(ref.timeline.responses.slice(1, -1))
    const t = run.timeline.responses
    run.crash.atMs.forEach((at, i) => {
      const next = run.crash.atMs[i + 1] ?? at + run.interval
      const from = Math.floor(at / bucket)
      const to = Math.ceil(next / bucket)
      if (to > t.length - 1) return // the run ended before the next crash: the last bucket is partial
      const seg = t.slice(from, to).map((x) => x / rate)
      shares.push(Math.min(...seg))
      below.push(seg.filter((x) => x < 0.5).length * bucket) // 0: never under half
    })
  }
  return { shares, below }
}

/** **Cluster** (cluster.js). */
function renderCluster (ctx) {
  const cols = loadRows(ctx, SOURCES.cluster, { benchmark: 'cluster' })
  if (cols.length === 0) return null
  const opts = cols[0].json.options
  const modes = (j) => j.throughput.modes
  const crashFree = (j) => modes(j).find((m) => m.interval === null)
  const intervals = [...new Set(cols.flatMap((c) => modes(c.json).filter((m) => m.interval !== null).map((m) => m.interval)))].sort((a, b) => b - a)
  const mode = (j, interval) => modes(j).find((m) => m.interval === interval)
  const d = (x) => (x === null || x === undefined ? '—' : String(x))
  const dist = (x) => `${d(x.median)} / ${d(x.p90)} / ${d(x.max)}`
  const builds = new Set(cols.map((c) => c.json.build?.sha256))
  const buildText = builds.size === 1 && !builds.has(undefined) ? `one build for the ${word(cols.length)} Nodes` : 'builds as each file says'
  const row = byNode(cols)
  const rows = [
    row("**restart**: the crash's 500 → first answer from the replacement, median / p90 / max", (j) => {
      const r = j.restart
      return `${dist(r.outsideMs)} ms${r.busySamples > 0 && r.quietOutsideMs ? ` (quiet samples: ${dist(r.quietOutsideMs)})` : ''}`
    }),
    row("the primary's `restartMs` (closing message → replacement listening), median", (j) => `${d(j.restart.primaryRestartMs.median)} ms`),
    row("of which the new worker's own start (fork → listening), median", (j) => `${d(j.restart.forkToListeningMs.median)} ms`),
    row('requests failed while polling during restarts', (j) => `${num(Object.values(j.restart.pollErrors ?? {}).reduce((a, b) => a + b, 0))} of ${num(j.restart.polls)}`),
    row('throughput crash-free (median)', (j) => `${num(crashFree(j).medianRps)} rps`),
    ...intervals.map((iv) => row(`with a crash every ${iv} ms: rps, share of crash-free`, (j) => {
      const m = mode(j, iv)
      return m ? `${num(m.medianRps)}, **${pct(m.ratio)}**` : '—'
    })),
    row(`p99 latency crash-free / ${intervals.map((iv) => `every ${iv} ms`).join(' / ')}`, (j) => `${[crashFree(j), ...intervals.map((iv) => mode(j, iv))].map((m) => d(m?.latencyP99Median)).join(' / ')} ms`),
    row("a keep-alive client (Node's `http.Agent`, no retry) beside the load: lost", (j) => {
      const sent = modes(j).reduce((a, m) => a + m.probeSent, 0)
      const ok = modes(j).reduce((a, m) => a + m.probeOk, 0)
      return `${num(sent - ok)} of ~${num(Math.round(sent / 100) * 100)}`
    })
  ]

  const target = cols[0].json.target.restartMs
  const p90 = cols.map((c) => ({ label: `Node ${major(c.node)}`, met: c.json.restart.outsideMs.p90 <= target, p90: c.json.restart.outsideMs.p90 }))
  const allMet = p90.every((x) => x.met)
  const maxNotes = cols.filter((c) => c.json.restart.outsideMs.max > target).map((c) => {
    const r = c.json.restart
    if (r.busySamples > 0 && r.quietOutsideMs) {
      return ` Node ${major(c.node)}'s ${num(r.outsideMs.max)} ms maximum came
  from ${num(r.busySamples)} sample${r.busySamples === 1 ? '' : 's'} taken while other programs used the CPU; without them its maximum is ${num(r.quietOutsideMs.max)} ms.`
    }
    return ` Node ${major(c.node)}'s maximum is ${num(r.outsideMs.max)} ms.`
  }).join('')
  const supervisor = cols.map((c) => c.json.restart.supervisorShareMs).filter((x) => x !== undefined)

  const fastest = Math.min(...intervals)
  const perCpu = (iv) => cols.map((c) => (iv === null ? crashFree(c.json) : mode(c.json, iv))?.requestsPerCpuSecond).filter((x) => x !== undefined)
  const k = (x) => num(x / 1000)
  const dips = cols.map((c) => crashDips(c.json))
  const shares = dips.flatMap((x) => x.shares)
  const below = dips.flatMap((x) => x.below).filter((ms) => ms > 0)
  const bucket = cols[0].json.throughputRuns.find((r) => r.timeline)?.timeline.bucketMs
  const dipText = shares.length === 0
    ? ''
    : ` Right after a crash the
  rate drops to ${range([quantile(shares, 0.1), quantile(shares, 0.9)], (x) => num(x * 100), '%')} of the crash-free rate (10th–90th percentile over the ${shares.length} crashes
  of each one's lowest ${bucket} ms) and stays under half of it for ${range(below, (ms) => String(Number((ms / 1000).toFixed(2))), ' s')} (each run's \`timeline\` in the JSON).`
  const freeSpread = cols.map((c) => {
    const m = crashFree(c.json)
    return (m.rpsMax - m.rpsMin) / 2 / m.medianRps * 100
  })

  const crashing = cols.flatMap((c) => modes(c.json).map((m) => ({ c, m })))
  const clean = crashing.every(({ m }) => m.errors === 0 && m.timeouts === 0 && m.non2xx === 0)
  const probeLost = crashing.reduce((a, { m }) => a + m.probeSent - m.probeOk, 0)
  const matching = crashing.every(({ m }) => m.unanswered === m.closeResponses)
  const example = cols[0] && mode(cols[0].json, fastest)
  const unanswered = crashing.reduce((a, { m }) => a + m.unanswered, 0)
  const closes = crashing.reduce((a, { m }) => a + m.closeResponses, 0)
  const exampleText = example
    ? `${num(example.unanswered)} in the ${fastest} ms runs on Node ${major(cols[0].node)}, ${example.unanswered === example.closeResponses ? 'matching the `Connection: close` responses it\n  got exactly' : `for ${num(example.closeResponses)} \`Connection: close\` responses`}`
    : ''

  return paragraphs(
    `**Cluster: restart time and throughput under crashes** (\`node bench/cluster.js\`: a
\`startCluster({ workers: ${opts.workers} })\` cluster with the plugin's defaults on 127.0.0.1; ${buildText.replace(/ (\S+ Nodes)$/, '\n$1')}; ${opts.samples} restart samples, and ${opts.rounds} alternating rounds of ${opts.duration} s autocannon runs, \`-c ${opts.connections}\`, per mode):`,
    nodeTable(cols, rows),
    bullets(
      `**Target: restart ≤ ${target} ms, ${allMet ? 'met** on every Node' : `${verdict(p90)}**`} (p90 ≤ ${num(Math.ceil(Math.max(...p90.map((x) => x.p90))))} ms).${maxNotes}
  Nearly all of a restart is the new worker's own start (Node, Fastify, the plugin); the
  supervisor's share is ${range(supervisor, num, ' ms')} (median of \`restartMs\` − fork → listening).`,
      `**Throughput under crashes** is what ${range(cols.map((c) => c.json.machine.cores), num)} cores give when each crash starts a new Node process
  whose code then runs cold: a crash every ${fastest} ms is ${Number.isInteger(1000 / fastest) ? word(1000 / fastest) : num(1000 / fastest, 1)} process starts a
  second, and the requests served per CPU-second fall from ${range(perCpu(null), k, 'k')} to ${range(perCpu(fastest), k, 'k')}.${dipText} Crash-free runs vary by
  ±${range(freeSpread, num, '%')} on this VM: read the shares as rough.`,
      `**${clean && probeLost === 0 ? 'Nothing was lost.' : 'What was lost.'}** autocannon reported ${clean ? 'no error, timeout or non-2xx' : 'errors, timeouts or non-2xx (see the JSON)'}. It does not honour
  \`Connection: close\` (it writes its next request on the connection the closing worker is ending,
  then reconnects without counting an error), so it leaves about ${closes === 0 ? '—' : num(unanswered / closes)} request per such response
  unanswered (${exampleText}${matching ? '' : '; not in every run'}); a client that honours it (the probe) lost ${probeLost === 0 ? 'none' : num(probeLost)}.`,
      `**After a crash the survivor keeps the keep-alive connections.** Node's primary hands out
  connections, not requests: the crashed worker's clients reconnect while only the other worker
  listens and stay there, so a few long-lived clients (a load balancer's pool) leave the
  replacement idle until connections churn.`
    ),
    clusterClientsTable(ctx)
  )
}

/** **Refused and lost under crashes** (cluster.js --phases clients --hogs N): one row per file. */
function clusterClientsTable (ctx) {
  const rows = loadRows(ctx, SOURCES.clusterClients, { benchmark: 'cluster' }).filter((r) => r.json.clients)
  if (rows.length === 0) return null
  const c0 = rows[0].json.clients
  const d = (x) => (x === null || x === undefined ? '—' : num(x))
  const lines = rows.map((r) => {
    const c = r.json.clients
    return [
      `Node ${bareVersion(r.node)}`,
      num(r.json.hogs ?? 0),
      r.json.machine?.loadAverage ? num(r.json.machine.loadAverage[0], 1) : '—',
      `${num(c.crashesSent)} / ${num(c.restartsStarted)}`,
      `${d(c.restartMs?.median)} / ${d(c.restartMs?.max)} ms`,
      num(c.sent),
      `**${num(c.refused)}**`,
      c.lost === 0 ? '0' : `${num(c.lost)} (${pct(c.lost / c.sent, 2)})`
    ]
  })
  return paragraphs(
    `**Refused and lost under crashes** (\`node bench/cluster.js --phases clients --hogs N\`: ${num(c0.clients)} keep-alive
clients, each Node's \`http.Agent\` with one request at a time and no retry, on \`GET /\` while a
request crashes a worker every ${num(c0.crashEveryMs)} ms for ${num(c0.crashSeconds)} s; ${num(c0.runs)} runs per row; *busy loops*: \`node -e 'for(;;){}'\`
processes beside the cluster; *load*: the machine's 1-minute load average at the start, other
programs included; a crash that reaches a worker already closing starts no restart):`,
    table(['', 'busy loops', 'load', 'crashes / restarts', 'restart median / max', 'requests', 'refused', 'lost'], lines, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'])
  )
}

/** Bytes as MB (2^20), two decimals, signed when asked. */
function megabytes (bytes, signed = false) {
  return `${signed && bytes >= 0 ? '+' : ''}${num(bytes / 2 ** 20, 2)} MB`
}

/**
 * RSS from the 10% mark to the end of each 1M run and, for a Node whose RSS
 * grew more than 5 MB, where its longer run (SOURCES.soakLong) levels off:
 * the first mark after which RSS grows less than 1 MB to the end.
 */
function rssBullet (ctx, cols, mark, end) {
  const grew = cols.map((c) => ({ c, delta: end(c.json).rss - mark(c.json).rss }))
  const text = and(grew.map(({ c, delta }) => `${megabytes(delta, true)} on Node ${major(c.node)}`))
  const climbing = grew.filter(({ delta }) => delta > 5 * 2 ** 20).map(({ c }) => major(c.node))
  let long = ''
  for (const row of loadRows(ctx, SOURCES.soakLong.filter((r) => climbing.includes(major(r.node))), { benchmark: 'soak' })) {
    const samples = row.json.samples
    const last = samples.at(-1)
    const at = samples.findIndex((s, i) => Math.max(...samples.slice(i).map((x) => x.rss)) - s.rss < 2 ** 20)
    const flat = samples[at]
    long += ` In a ${num(row.json.options.requests)}-request run on Node ${bareVersion(row.node)} it climbs from
  ${megabytes(samples[0].rss)} at ${num(samples[0].requests)} requests to ${megabytes(flat.rss)} at ${num(flat.requests)}, then stays there (${megabytes(last.rss)} at
  ${num(last.requests)}; heap after GC ${megabytes(Math.min(...samples.map((x) => x.heapUsed)))} – ${megabytes(Math.max(...samples.map((x) => x.heapUsed)))} throughout): memory the process keeps, not a leak.`
  }
  return `RSS (resident memory) from the 10% mark to the end: ${text}.${climbing.length === 0 ? '' : ` Where it grows, the heap does not: native memory (V8's own pages, the allocator's).${long}`}`
}

/** **Soak** (soak.js): one column per Node. */
function renderSoak (ctx) {
  const cols = loadRows(ctx, SOURCES.soak, { benchmark: 'soak' })
  if (cols.length === 0) return null
  const opts = cols[0].json.options
  const check = (j, start) => j.checks.find((c) => c.name.startsWith(start))
  const mark = (j) => j.samples.find((s) => s.requests === Math.round(j.options.requests / 10))
  const end = (j) => j.samples.at(-1)
  const growth = (j) => end(j).heapUsed - mark(j).heapUsed
  const handles = (r) => Object.entries(r).map(([k, v]) => `${k} ${v}`).join(', ')
  const row = byNode(cols)
  const ok = (j, start) => (check(j, start)?.ok ? '' : ' **(check failed)**')
  const rows = [
    row('requests after the warm-up, time, rate', (j) => `${num(j.options.requests)} in ${num(j.seconds)} s, ${num(j.requestsPerSecond)}/s`),
    row('heap after GC: after the warm-up / at the 10% mark / at the end', (j) => `${megabytes(j.baseline.heapUsed)} / ${megabytes(mark(j).heapUsed)} / ${megabytes(end(j).heapUsed)}`),
    row(`**heap growth, ${num(mark(cols[0].json).requests)} → ${num(end(cols[0].json).requests)} requests** (target < ${num(opts.maxGrowthBytes / 2 ** 20)} MB)`, (j) => `**${megabytes(growth(j), true)}**`),
    row('heap after GC over the marks: min – max', (j) => `${megabytes(Math.min(...j.samples.map((s) => s.heapUsed)))} – ${megabytes(Math.max(...j.samples.map((s) => s.heapUsed)))}`),
    row('RSS at the 10% mark / at the end', (j) => `${megabytes(mark(j).rss)} / ${megabytes(end(j).rss)}`),
    row(`active handles at each of the ${cols[0].json.samples.length} marks`, (j) => (j.samples.every((s) => s.quiet) && check(j, 'every sample quiet').ok ? `as after the warm-up (${handles(j.baseline.resources)})` : '**not as after the warm-up**')),
    row('warnings (app and clients)', (j) => num(j.final.warnings.length + j.warnings.length)),
    row('log lines at `warn` or above, handler timeouts apart', (j) => num(Number(check(j, 'no log line').value)) + ok(j, 'no log line')),
    row("Fastify's `error` lines for its handler timeouts (503)", (j) => {
      const lines = Object.entries(j.logLines).filter(([key]) => key.endsWith('(FST_ERR_HANDLER_TIMEOUT)')).reduce((a, [, n]) => a + n, 0)
      return `${num(lines)} for ${num(j.byKind.timeout.sent)} timeouts${ok(j, 'Fastify')}`
    }),
    row('requests not answered as their kind expects', (j) => num(Object.values(j.byKind).reduce((n, k) => n + k.failed, 0))),
    row('hang-ups counted upload / handler / response (= sent)', (j) => {
      const d = j.final.stats.disconnects
      return `${num(d.upload)} / ${num(d.handler)} / ${num(d.response)}${ok(j, 'disconnects')}`
    }),
    row('upstream calls: made / completed / closed early (left by hang-ups + by timeouts)', (j) => {
      const e = j.expected
      return `${num(j.upstream.started)} / ${num(j.upstream.completed)} / ${num(j.upstream.closedEarly)} (${num(e.hangUpCalls)} + ${num(j.upstream.closedEarly - e.hangUpCalls)})${ok(j, 'upstream: every call left')}${ok(j, 'upstream: every call of')}`
    }),
    row('requests in flight at the end, fatal errors', (j) => `${num(j.final.stats.inflight)}, ${num(j.final.stats.fatal)}`)
  ]
  const label = (c) => `Node ${bareVersion(c.node)}`
  const targets = cols.map((c) => ({ label: label(c), met: ['heap growth', 'every sample quiet', 'no warning'].every((start) => check(c.json, start)?.ok) }))
  const others = cols.map((c) => ({ label: label(c), met: c.json.checks.every((x) => x.ok) }))
  return paragraphs(
    `**Soak** (\`node bench/soak.js\`, issue 6: ${num(opts.requests)} requests after ${num(opts.warmup)} of warm-up, ${opts.concurrency} at a
time, through one app with the plugin (\`autoBind: true\`) and Fastify's request logging on; a cycle
of 20 kinds: 6 with no upstream call, 6 proxied (GET and POST, 2 on fresh connections), 1 fan-out
of 4 calls, 1 handler timeout, and 5 hang-ups: upload, handler (keep-alive GET, fresh POST),
fan-out, response. At ${cols[0].json.samples.length} marks the load pauses until nothing is in flight and every
connection is closed, and the app reports its heap after GC and its active handles):`,
    nodeTable(cols, rows),
    bullets(
      `**Targets** (heap growth under ${num(opts.maxGrowthBytes / 2 ** 20)} MB between the 10% mark and the end, handles back to the
  baseline, no warning): **${verdict(targets)}**. The other checks of the script (every count above
  equal to what the clients did, no premature abort, no log above \`info\` from a hang-up): ${others.every((x) => x.met) ? 'passed on every Node' : `failed on ${and(others.filter((x) => !x.met).map((x) => x.label))}`}.`,
      rssBullet(ctx, cols, mark, end),
      `Fastify logs each handler timeout twice at \`error\`, with or without the plugin: its 503 and,
  once the handler rejects with the signal's reason, "Promise errored, but reply.sent = true was
  set". A hang-up adds nothing above \`info\`.`,
      `\`npm test\` runs the same script with ${num(50000)} requests (\`test/soak.test.ts\`) and asserts every check.`
    )
  )
}

/**
 * The sections, in README order. To add one: map its result files in
 * SOURCES, write a renderer (ctx) → Markdown | null, and list it here. Its
 * files' dates and machines are checked, and its notes printed, for it.
 */
const SECTIONS = [
  { id: 'hangup-latency', render: renderHangupLatency },
  { id: 'cpu', render: renderCpu },
  { id: 'throughput', render: renderThroughput },
  { id: 'upstream-call', render: renderUpstreamCall },
  { id: 'autobind-route', render: renderAutobindRoute },
  { id: 'compare', render: renderCompare },
  { id: 'cluster', render: renderCluster },
  { id: 'soak', render: renderSoak }
]

// ---------------------------------------------------------------------------
// Assembly
// ---------------------------------------------------------------------------

/** The installed version of `name` (the plugin: the root package.json), for what no result records. */
function installedVersion (root, name) {
  const file = name === 'plugin' ? path.join(root, 'package.json') : path.join(root, 'node_modules', name, 'package.json')
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')).version
  } catch {
    return 'unknown'
  }
}

function header (root, used, mainMachine) {
  const all = [...used.values()]
  const days = [...new Set(all.map((j) => day(j.date)))].sort()
  const when = days.length === 1 ? `on ${days[0]}` : `between ${days[0]} and ${days[days.length - 1]} (each table says which)`
  const machine = describeMachine(all.find((j) => machineKey(j.machine) === mainMachine)?.machine)
  const others = new Set(all.map((j) => machineKey(j.machine)))
  const nodes = [...new Set(all.map((j) => j.versions?.node ?? j.machine?.node).filter(Boolean))].sort((a, b) => major(a) - major(b)).map(bareVersion)
  const version = (name, shown) => {
    const recorded = [...new Set(all.map((j) => j.versions?.[name]).filter(Boolean))]
    return recorded.length > 0 ? `${shown} ${recorded.join(' / ')}` : `${shown} ${installedVersion(root, name)} (installed; not recorded in the results)`
  }
  return `<!-- Generated by \`npm run bench:readme\` (bench/readme.js) from bench/results/*.json; do not edit by hand. -->

Measured ${when} on ${machine}${others.size > 1 ? ' (some tables on another machine: see their notes)' : ''}, Node ${and(nodes)},
${version('fastify', 'Fastify')}, ${version('undici', 'undici')}, ${version('autocannon', 'autocannon')}, ${version('plugin', 'fastify-hangup')} with its default options (\`fatal\` on, with
\`asyncContext\`) unless a row says otherwise. Method and raw data: [bench/README.md](bench/README.md),
\`bench/results/*.json\`.`
}

/** The section's Markdown (without the markers). */
function generate ({ root, resultsDir }) {
  const read = makeLoader(resultsDir)
  const relative = path.relative(root, resultsDir)
  const resultsLabel = relative.startsWith('..') || path.isAbsolute(relative) ? resultsDir : relative.split(path.sep).join('/')
  const rendered = []
  const used = new Map()
  for (const section of SECTIONS) {
    const ctx = makeContext(read, resultsLabel)
    const body = section.render(ctx)
    for (const [file, json] of ctx.used) used.set(file, json)
    rendered.push({ section, body, ctx })
  }
  // The machine most files were measured on; the others are said per table.
  const counts = new Map()
  for (const json of used.values()) counts.set(machineKey(json.machine), (counts.get(machineKey(json.machine)) ?? 0) + 1)
  const mainMachine = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0]
  const parts = [used.size === 0 ? 'No benchmark results found in `bench/results/`.' : header(root, used, mainMachine)]
  for (const { section, body, ctx } of rendered) {
    const notes = [...ctx.notes, ...provenanceNotes(ctx.used, mainMachine)]
    const noteText = notes.length === 0 ? '' : notes.map((n) => `_Note: ${n}._`).join('\n\n')
    if (body === null) {
      parts.push(`_Left out: the ${section.id} results (${notes.length ? notes.join('; ') : 'no files'})._`)
      continue
    }
    parts.push(paragraphs(body, noteText))
  }
  return wrap(parts.join('\n\n'))
}

const START = '<!-- bench:start -->'
const END = '<!-- bench:end -->'

function splitReadme (text, file, fail) {
  const start = text.indexOf(START)
  const end = text.indexOf(END)
  if (start === -1 || end === -1 || end < start) fail(`${file} has no ${START} ... ${END} section`)
  const bodyStart = start + START.length
  return { before: text.slice(0, bodyStart), body: text.slice(bodyStart, end), after: text.slice(end) }
}

/** A line diff (longest common subsequence), as unified-diff-like hunks with 2 lines of context. */
function diff (oldLines, newLines, offset) {
  const n = oldLines.length
  const m = newLines.length
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1))
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = oldLines[i] === newLines[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1])
    }
  }
  const ops = []
  let i = 0
  let j = 0
  while (i < n || j < m) {
    if (i < n && j < m && oldLines[i] === newLines[j]) {
      ops.push({ op: ' ', line: oldLines[i], at: i }); i++; j++
    } else if (i < n && (j === m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      ops.push({ op: '-', line: oldLines[i], at: i }); i++
    } else {
      ops.push({ op: '+', line: newLines[j], at: i }); j++
    }
  }
  const out = []
  const context = 2
  let k = 0
  while (k < ops.length) {
    if (ops[k].op === ' ') { k++; continue }
    let from = Math.max(0, k - context)
    let to = k
    while (to < ops.length) {
      let next = to
      while (next < ops.length && ops[next].op !== ' ') next++
      let gap = next
      while (gap < ops.length && ops[gap].op === ' ') gap++
      to = next
      if (gap < ops.length && gap - next <= 2 * context) { to = gap; continue }
      break
    }
    const end = Math.min(ops.length, to + context)
    if (out.length > 0 && from < k - context) from = k - context
    out.push(`@@ README.md line ${ops[from].at + offset} @@`)
    for (let x = from; x < end; x++) out.push(`${ops[x].op} ${ops[x].line}`)
    k = end
  }
  return out.join('\n')
}

function main () {
  const { fail, parse } = cli('readme', HELP)
  const values = parse({
    check: { type: 'boolean' },
    print: { type: 'boolean' },
    readme: { type: 'string' },
    results: { type: 'string' }
  })
  const root = path.join(__dirname, '..')
  const readmeFile = path.resolve(values.readme ?? path.join(root, 'README.md'))
  const resultsDir = path.resolve(values.results ?? path.join(__dirname, 'results'))
  const generated = `\n${generate({ root, resultsDir })}\n`
  if (values.print) {
    process.stdout.write(generated)
    return
  }
  let text
  try {
    text = fs.readFileSync(readmeFile, 'utf8')
  } catch (err) {
    fail(`cannot read ${readmeFile}: ${err.message}`)
  }
  const { before, body, after } = splitReadme(text, readmeFile, fail)
  if (values.check) {
    if (body === generated) {
      console.log(`${path.relative(process.cwd(), readmeFile) || readmeFile}: the benchmark section matches bench/results/*.json`)
      return
    }
    const offset = before.split('\n').length
    console.log(`${path.relative(process.cwd(), readmeFile) || readmeFile}: the benchmark section is not what bench/readme.js writes from bench/results/*.json (- README, + generated); run npm run bench:readme\n`)
    console.log(diff(body.split('\n'), generated.split('\n'), offset))
    process.exitCode = 1
    return
  }
  if (body === generated) {
    console.log(`${readmeFile}: up to date`)
    return
  }
  fs.writeFileSync(readmeFile, before + generated + after)
  console.log(`${readmeFile}: benchmark section rewritten from ${resultsDir}`)
}

if (require.main === module) main()

module.exports = { generate, SOURCES, SECTIONS }
