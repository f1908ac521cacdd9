'use strict'

// The benchmark tables of docs/benchmarks.md, generated from bench/results/*.json
// (npm run bench:readme). See bench/README.md.
//
// Each table sits between `<!-- bench:table NAME -->` and `<!-- bench:end NAME -->`
// and is rewritten whole; everything outside the markers (the prose that says
// what a table shows) is written by hand. The result files are found by name:
// each table has a pattern (TABLES below), and every file that matches it
// gives a row or a column, ordered by Node version. A run on a new Node version
// (`cluster-v26.0.0.json`, ...) shows up without editing this file.
// `--check` writes nothing and exits 1 when a table is not what this script
// would write (test/bench-readme.test.ts runs it in `npm test`).

const fs = require('node:fs')
const path = require('node:path')
const { cli } = require('./cli.js')

const HELP = `usage: node bench/readme.js [options]

Rewrites the tables of docs/benchmarks.md (each between <!-- bench:table NAME -->
and <!-- bench:end NAME -->) from the result files in bench/results.

  --check          write nothing; exit 1 and print the first stale line if a
                   table is not what this script would write
  --print          print the page instead of writing it
  --doc <file>     the page (default docs/benchmarks.md)
  --results <dir>  the result files (default bench/results)
  --help
`

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

/** `n` with `decimals` decimals, thousands grouped with commas, a real minus sign. */
function num (n, decimals = 0) {
  const s = Math.abs(n).toFixed(decimals)
  const [whole, fraction] = s.split('.')
  const sign = n < 0 && Number(s) !== 0 ? '−' : ''
  return sign + whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',') + (fraction === undefined ? '' : `.${fraction}`)
}

function pct (ratio, decimals = 1) {
  return `${num(ratio * 100, decimals)}%`
}

/** Three significant digits (hangup-latency.js's milliseconds). */
function sig3 (n) {
  return n >= 100 ? num(n) : n.toPrecision(3)
}

function megabytes (bytes, signed = false) {
  return `${signed && bytes >= 0 ? '+' : ''}${num(bytes / 2 ** 20, 2)} MB`
}

function range (values, fmt) {
  const lo = fmt(Math.min(...values))
  const hi = fmt(Math.max(...values))
  return lo === hi ? lo : `${lo}${Math.min(...values) < 0 ? ' to ' : '–'}${hi}`
}

/** 'v22.23.3' → '22.23.3' */
function bare (node) {
  return String(node).replace(/^v/, '')
}

function table (head, rows, align = head.map(() => 'l')) {
  const line = (cells) => `|${cells.map((c) => (c === '' ? ' ' : ` ${c} `)).join('|')}|`
  return [line(head), `|${align.map((a) => (a === 'r' ? '---:' : '---')).join('|')}|`, ...rows.map(line)].join('\n')
}

/** A table with one column per result file (`cols`), one row per [label, fmt(json)]. */
function columns (cols, rows) {
  return table(['', ...cols.map((c) => `Node ${bare(c.node)}`)], rows.map(([label, fmt]) => [label, ...cols.map((c) => fmt(c.json))]))
}

// ---------------------------------------------------------------------------
// Discovery: the files of a table are those whose name matches its pattern.
// The pattern's first group is the Node version; `tag` (named group) what
// tells two runs on one Node apart (`-acf`, `-2`, ...).
// ---------------------------------------------------------------------------

const VERSION = String.raw`v(\d+\.\d+\.\d+)`

function compareVersions (a, b) {
  const pa = bare(a).split('.').map(Number)
  const pb = bare(b).split('.').map(Number)
  return pa[0] - pb[0] || pa[1] - pb[1] || pa[2] - pb[2]
}

/** The files of `dir` matching `pattern`, read, by Node version then name. */
function discover (dir, pattern) {
  const found = []
  for (const file of fs.readdirSync(dir).sort()) {
    const match = pattern.exec(file)
    if (match === null) continue
    const json = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'))
    found.push({ file, json, node: json.versions?.node ?? `v${match[1]}`, tag: match.groups ?? {} })
  }
  // On one Node, the plain run first, then tagged ones (`-acf`, `-2`) by name.
  const tags = (f) => Object.values(f.tag).filter(Boolean).length
  const stem = (f) => f.file.replace(/\.json$/, '')
  return found.sort((a, b) => compareVersions(a.node, b.node) || tags(a) - tags(b) || stem(a).localeCompare(stem(b)))
}

// ---------------------------------------------------------------------------
// The tables. Each: a name (its markers), the pattern(s) of its files, and a
// renderer from the files found to a Markdown table.
// ---------------------------------------------------------------------------

/** One row per Node version: when and where its results were measured. */
function renderSetup (files) {
  const byNode = new Map()
  for (const f of files) {
    if (!byNode.has(f.node)) byNode.set(f.node, [])
    byNode.get(f.node).push(f.json)
  }
  const rows = [...byNode].sort((a, b) => compareVersions(a[0], b[0])).map(([node, all]) => {
    const days = [...new Set(all.map((j) => String(j.date).slice(0, 10)))].sort()
    const machines = [...new Set(all.map((j) => describeMachine(j.machine)))]
    const version = (name) => [...new Set(all.map((j) => j.versions?.[name]).filter(Boolean))].join(', ') || '—'
    return [bare(node), days.length === 1 ? days[0] : `${days[0]} – ${days.at(-1)}`, machines.join('; '), version('fastify'), version('undici'), version('autocannon'), version('plugin')]
  })
  return table(['Node', 'measured', 'machine', 'Fastify', 'undici', 'autocannon', 'fastify-hangup'], rows)
}

function describeMachine (m = {}) {
  const [os, release, arch] = String(m.platform ?? 'unknown').split(' ')
  const memory = m.totalMemoryMB === undefined ? '' : `, ${num(m.totalMemoryMB / 1024, 1)} GiB`
  return `${m.cores ?? '?'}-core ${m.cpuModel ?? 'unknown CPU'} (${os === 'linux' ? 'Linux' : os} ${release ?? ''} ${arch ?? ''}`.trimEnd() + `${memory})`
}

function renderHangupLatency (files) {
  const mode = (json, name) => json.summaries.find((s) => s.mode === name)?.hangupToUpstreamCloseMs
  const ms = (h, bold) => (h ? `${sig3(h.p50)} / ${bold ? `**${sig3(h.p99)}**` : sig3(h.p99)} / ${sig3(h.max)} ms` : '—')
  const none = (json) => {
    const s = json.summaries.find((x) => x.mode === 'none')
    return s ? `upstream ran its full ${num(s.upstreamHoldMs / 1000)} s (${s.upstreamCompleted}/${s.measured})` : '—'
  }
  return table(
    ['Node', 'fastify-hangup p50 / p99 / max', "Fastify's own signal (GET only) p50 / p99 / max", 'no signal'],
    files.map((f) => [bare(f.node), ms(mode(f.json, 'plugin'), true), ms(mode(f.json, 'fastify')), none(f.json)])
  )
}

/** Runs under Node 22's --experimental-async-context-frame say so in their name (`-acf`): the JSON does not record the flag. */
function nodeLabel (f, frames = ', async context frames') {
  return bare(f.node) + (f.tag.acf ? frames : '')
}

function renderCpu (files) {
  const cell = (v, bold = false) => (v ? `${v.extraNanosPerRequest >= 0 ? '+' : ''}${num(v.extraNanosPerRequest)} ns → ${bold ? `**${pct(v.throughputVsBare)}**` : pct(v.throughputVsBare)}` : '—')
  return table(
    ['Node', 'defaults (`asyncContext` on)', '`fatal: { asyncContext: false }`', '`fatal: false`', 'defaults, `/read`'],
    files.map((f) => {
      const ignore = f.json.results.ignore
      const read = f.json.results.read?.plugin
      return [nodeLabel(f, ' with `--experimental-async-context-frame`'), cell(ignore.plugin, true), cell(ignore['no-context']), cell(ignore['no-fatal']), read ? pct(read.throughputVsBare) : '—']
    }),
    ['l', 'r', 'r', 'r', 'r']
  )
}

/** How many pairs a route's figures come from: its clean pairs, or all of them when too few were clean. */
function pairsCell (s) {
  return s.basis === 'clean pairs' ? num(s.cleanPairs) : `${num(s.pairs)} (not clean)`
}

/** The `/ignore` summary of each run, the one route of the autoBind and load tables. */
function ignoreRows (files, row) {
  return files.flatMap((f) => f.json.summaries.filter((s) => s.route === 'ignore').map((s) => row(f, s)))
}

function pairRatios (s) {
  return `${pct(s.pairRatios.median)} [${num(s.pairRatios.q1 * 100, 1)}–${num(s.pairRatios.q3 * 100, 1)}]`
}

function renderThroughput (files) {
  const rows = []
  for (const f of files) {
    const variant = { 'no-fatal': ', `fatal: false`', 'no-context': ', `fatal: { asyncContext: false }`', context: ', `fatal: { asyncContext: true }`' }[f.json.against] ?? ''
    const label = nodeLabel(f) + (f.tag.run ? ` (run ${f.tag.run})` : '') + variant
    for (const s of f.json.summaries) {
      const noise = s.bareRps?.rangePct === undefined ? '—' : `±${num(s.bareRps.rangePct / 2, 0)}%`
      rows.push([label, `\`/${s.route}\``, num(s.bareMedianRps), num(s.pluginMedianRps), pct(s.ratio), pairRatios(s), noise, pairsCell(s)])
    }
  }
  return table(['Node', 'route', 'bare rps', 'plugin rps', 'plugin/bare (medians)', 'within pairs, median [IQR]', 'bare runs ±', 'pairs'], rows, ['l', 'l', 'r', 'r', 'r', 'l', 'r', 'r'])
}

function renderUpstreamCall (files) {
  const ks = [...new Set(files.flatMap((f) => f.json.cases.map((c) => c.perRequest)))].sort((a, b) => a - b)
  const calls = (k) => `${k} call${k === 1 ? '' : 's'} per request`
  const ratio = (c) => (c ? `**${pct(c.wall.binding.ratio.median)}** [${num(c.wall.binding.ratio.iqr[0] * 100, 1)}–${num(c.wall.binding.ratio.iqr[1] * 100, 1)}]` : '—')
  return table(
    ['Node', `${calls(ks[0])}: unbound → bound`, 'ratio [IQR]', ...ks.slice(1).map((k) => `${calls(k)}: ratio [IQR]`)],
    files.map((f) => {
      const c = (k) => f.json.cases.find((x) => x.perRequest === k)
      const one = c(ks[0])
      const times = one ? `${num(one.wall.microsPerCall.unbound.median, 1)} → ${num(one.wall.microsPerCall.bound.median, 1)} µs` : '—'
      return [bare(f.node), times, ratio(one), ...ks.slice(1).map((k) => ratio(c(k)))]
    })
  )
}

/** Whether the defaults (`asyncContext: 'auto'`) have the context on in this run: async context frames. */
function framesOn (f) {
  return Number(bare(f.node).split('.')[0]) >= 24 || f.tag.acf === '-acf'
}

/**
 * One row per run of `--baseline plugin --against autobind` (`/ignore`, no
 * upstream call): the target is at most 2 points below the defaults. Where
 * the defaults have no context (Node 20, 22 without frames), autoBind turns
 * it on: that is the gap.
 */
function renderAutobindRoute (files) {
  return table(
    ['Node', 'the defaults\' async context', 'autobind vs the defaults (medians)', 'within pairs, median [IQR]', 'pairs'],
    ignoreRows(files, (f, s) => [
      nodeLabel(f),
      framesOn(f) ? 'on (frames)' : 'off (`autoBind` turns it on)',
      pct(s.ratio),
      pairRatios(s),
      pairsCell(s)
    ]),
    ['l', 'l', 'r', 'l', 'r']
  )
}

/** What a `load-undici` run loaded into bare Fastify. */
function loadedModules (json) {
  if (json.against === 'bare-undici') return "undici's index (`require('undici')`)"
  return (json.required ?? []).map((m) => `\`${m}\``).join(', ')
}

/** Bare Fastify with undici (or some of its modules) loaded, against bare Fastify. */
function renderLoadUndici (files) {
  return table(
    ['Node', 'loaded into bare Fastify', 'vs bare Fastify (medians)', 'within pairs, median [IQR]', 'pairs'],
    ignoreRows(files, (f, s) => [bare(f.node), loadedModules(f.json), pct(s.ratio), pairRatios(s), pairsCell(s)]),
    ['l', 'l', 'r', 'l', 'r']
  )
}

/** The comparison's rows: a variant and its methods (two methods: one row, figures "GET / POST"). */
const COMPARE_ROWS = [
  { variant: 'core-signal', methods: ['GET'], label: "Fastify's own `request.signal`" },
  { variant: 'core-signal', methods: ['POST'], label: "Fastify's own `request.signal`" },
  { variant: 'reply-from', methods: ['GET', 'POST'], label: '@fastify/reply-from' },
  { variant: 'http-proxy', methods: ['GET', 'POST'], label: '@fastify/http-proxy' },
  { variant: 'hangup-signal', methods: ['GET'], label: 'fastify-hangup, `signal: request.signal`' },
  { variant: 'hangup-signal', methods: ['POST'], label: 'fastify-hangup, `signal: request.signal`' },
  { variant: 'hangup-autobind', methods: ['GET'], label: 'fastify-hangup, `autoBind` (no signal)' },
  { variant: 'hangup-autobind', methods: ['POST'], label: 'fastify-hangup, `autoBind` (no signal)' }
]

/** One figure when every Node gives the same, else one per Node. */
function perNode (cols, values) {
  return values.every((v) => v === values[0]) ? values[0] : cols.map((c, i) => `${bare(c.node).split('.')[0]}: ${values[i]}`).join(', ')
}

/** ' (500)': what the clients that stayed got instead of their answer. */
function failures (result) {
  const why = Object.keys(result.stayers.failures ?? {}).map((k) => k.replace(/^status /, ''))
  return why.length === 0 ? '' : ` (${why.join(', ')})`
}

function renderCompare (cols) {
  const rows = []
  for (const def of COMPARE_ROWS) {
    const results = cols.map((c) => def.methods.map((m) => c.json.results.find((r) => r.variant === def.variant && r.method === m)).filter(Boolean))
    if (results.every((rs) => rs.length === 0)) continue
    const saved = results.flat().map((r) => r.abandoned.savedShare).filter((x) => x !== null)
    const savedCell = saved.length === 0 ? '— (nothing left to cancel)' : range(saved.map((x) => x * 100), (x) => `${num(x, 1)}%`)
    const latency = results.map((rs) => {
      const h = rs.map((r) => r.abandoned.hangupToUpstreamCloseMs).filter(Boolean)
      if (h.length === 0) return '—'
      const p50 = Math.max(...h.map((x) => x.p50))
      const p99 = Math.max(...h.map((x) => x.p99))
      // Calls that ran to their end: whole milliseconds, the higher of the methods.
      return p50 >= 100 ? `~${num(p50)} / ~${num(p99)}` : `${num(p50, 2)} / ${num(p99, 2)}`
    })
    const failed = perNode(cols, results.map((rs) => [...new Set(rs.map((r) => (r.stayers.failed === 0 ? '0' : `${num(r.stayers.failed)} of ${num(r.stayed)}${failures(r)}`)))].join(' / ')))
    const errors = perNode(cols, results.map((rs) => rs.map((r) => num(r.logs.errorLevel)).join(' / ')))
    rows.push([def.label, def.methods.join(' / '), savedCell, ...latency, failed, errors])
  }
  return table(
    ['variant', 'method', 'abandoned upstream work saved', ...cols.map((c) => `Node ${bare(c.node)}`), 'clients that stayed and failed', 'error-level log lines'],
    rows,
    ['l', 'l', 'r', ...cols.map(() => 'l'), 'r', 'r']
  )
}

function renderCluster (cols) {
  const modes = (j) => j.throughput.modes
  const crashFree = (j) => modes(j).find((m) => m.interval === null)
  const intervals = [...new Set(cols.flatMap((c) => modes(c.json).map((m) => m.interval).filter((iv) => iv !== null)))].sort((a, b) => b - a)
  const mode = (j, iv) => modes(j).find((m) => m.interval === iv)
  const d = (x) => (x === null || x === undefined ? '—' : String(x))
  const dist = (x) => `${d(x.median)} / ${d(x.p90)} / ${d(x.max)}`
  return columns(cols, [
    ["**restart**: the crash's 500 → first answer from the replacement, median / p90 / max", (j) => {
      const r = j.restart
      return `${dist(r.outsideMs)} ms${r.busySamples > 0 && r.quietOutsideMs ? ` (quiet samples: ${dist(r.quietOutsideMs)})` : ''}`
    }],
    ["the primary's `restartMs` (closing message → replacement listening), median", (j) => `${d(j.restart.primaryRestartMs.median)} ms`],
    ["of which the new worker's own start (fork → listening), median", (j) => `${d(j.restart.forkToListeningMs.median)} ms`],
    ['requests failed while polling during restarts', (j) => `${num(Object.values(j.restart.pollErrors ?? {}).reduce((a, b) => a + b, 0))} of ${num(j.restart.polls)}`],
    ['throughput crash-free (median)', (j) => `${num(crashFree(j).medianRps)} rps`],
    ...intervals.map((iv) => [`with a crash every ${iv} ms: rps, share of crash-free`, (j) => {
      const m = mode(j, iv)
      return m ? `${num(m.medianRps)}, **${pct(m.ratio)}**` : '—'
    }]),
    [`p99 latency crash-free / ${intervals.map((iv) => `every ${iv} ms`).join(' / ')}`, (j) => `${[crashFree(j), ...intervals.map((iv) => mode(j, iv))].map((m) => d(m?.latencyP99Median)).join(' / ')} ms`],
    ["a keep-alive client (Node's `http.Agent`, no retry) beside the load: lost", (j) => {
      const sent = modes(j).reduce((a, m) => a + m.probeSent, 0)
      const ok = modes(j).reduce((a, m) => a + m.probeOk, 0)
      return `${num(sent - ok)} of ~${num(Math.round(sent / 100) * 100)}`
    }]
  ])
}

/** `cluster.js --phases clients --hogs N`: one row per file (Node, busy loops beside the cluster). */
function renderClusterClients (files) {
  const d = (x) => (x === null || x === undefined ? '—' : num(x))
  const rows = files.filter((f) => f.json.clients).map((f) => {
    const c = f.json.clients
    return [
      `Node ${bare(f.node)}`,
      num(f.json.hogs ?? 0),
      f.json.machine?.loadAverage ? num(f.json.machine.loadAverage[0], 1) : '—',
      `${num(c.crashesSent)} / ${num(c.restartsStarted)}`,
      `${d(c.restartMs?.median)} / ${d(c.restartMs?.max)} ms`,
      num(c.sent),
      `**${num(c.refused)}**`,
      c.lost === 0 ? '0' : `${num(c.lost)} (${pct(c.lost / c.sent, 2)})`
    ]
  })
  return table(['', 'busy loops', 'load', 'crashes / restarts', 'restart median / max', 'requests', 'refused', 'lost'], rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'])
}

function renderSoak (cols) {
  const check = (j, start) => j.checks.find((c) => c.name.startsWith(start))
  const failed = (j, start) => (check(j, start)?.ok ? '' : ' **(check failed)**')
  const mark = (j) => j.samples.find((s) => s.requests === Math.round(j.options.requests / 10))
  const end = (j) => j.samples.at(-1)
  const heaps = (j) => j.samples.map((s) => s.heapUsed)
  const handles = (r) => Object.entries(r).map(([k, v]) => `${k} ${v}`).join(', ')
  const first = cols[0].json
  return columns(cols, [
    ['requests after the warm-up, time, rate', (j) => `${num(j.options.requests)} in ${num(j.seconds)} s, ${num(j.requestsPerSecond)}/s`],
    ['heap after GC: after the warm-up / at the 10% mark / at the end', (j) => `${megabytes(j.baseline.heapUsed)} / ${megabytes(mark(j).heapUsed)} / ${megabytes(end(j).heapUsed)}`],
    [`**heap growth, ${num(mark(first).requests)} → ${num(end(first).requests)} requests** (target < ${num(first.options.maxGrowthBytes / 2 ** 20)} MB)`, (j) => `**${megabytes(end(j).heapUsed - mark(j).heapUsed, true)}**${failed(j, 'heap growth')}`],
    ['heap after GC over the marks: min – max', (j) => `${megabytes(Math.min(...heaps(j)))} – ${megabytes(Math.max(...heaps(j)))}`],
    ['RSS at the 10% mark / at the end', (j) => `${megabytes(mark(j).rss)} / ${megabytes(end(j).rss)}`],
    [`active handles at each of the ${first.samples.length} marks`, (j) => (j.samples.every((s) => s.quiet) && check(j, 'every sample quiet')?.ok ? `as after the warm-up (${handles(j.baseline.resources)})` : '**not as after the warm-up**')],
    ['warnings (app and clients)', (j) => num(j.final.warnings.length + j.warnings.length)],
    ['log lines at `warn` or above, handler timeouts apart', (j) => num(Number(check(j, 'no log line')?.value)) + failed(j, 'no log line')],
    ["Fastify's `error` lines for its handler timeouts (503)", (j) => {
      const lines = Object.entries(j.logLines).filter(([key]) => key.endsWith('(FST_ERR_HANDLER_TIMEOUT)')).reduce((a, [, n]) => a + n, 0)
      return `${num(lines)} for ${num(j.byKind.timeout.sent)} timeouts${failed(j, 'Fastify')}`
    }],
    ['requests not answered as their kind expects', (j) => num(Object.values(j.byKind).reduce((n, k) => n + k.failed, 0))],
    ['hang-ups counted upload / handler / response (= sent)', (j) => {
      const dc = j.final.stats.disconnects
      return `${num(dc.upload)} / ${num(dc.handler)} / ${num(dc.response)}${failed(j, 'disconnects')}`
    }],
    ['upstream calls: made / completed / closed early (left by hang-ups + by timeouts)', (j) => {
      const u = j.upstream
      return `${num(u.started)} / ${num(u.completed)} / ${num(u.closedEarly)} (${num(j.expected.hangUpCalls)} + ${num(u.closedEarly - j.expected.hangUpCalls)})${failed(j, 'upstream: every call left')}${failed(j, 'upstream: every call of')}`
    }],
    ['requests in flight at the end, fatal errors', (j) => `${num(j.final.stats.inflight)}, ${num(j.final.stats.fatal)}`],
    ['checks of the script passed', (j) => `${j.checks.filter((c) => c.ok).length} of ${j.checks.length}`]
  ])
}

/**
 * The tables, by marker name. `patterns`: one per argument of `render`
 * (the files matching each). A table whose files are all missing says so.
 */
const TABLES = {
  'hangup-latency': { patterns: [new RegExp(`^hangup-latency-${VERSION}\\.json$`)], render: renderHangupLatency },
  cpu: { patterns: [new RegExp(`^overhead-${VERSION}(?<acf>-acf)?-fatal\\.json$`)], render: renderCpu },
  throughput: { patterns: [new RegExp(`^${VERSION}(?<acf>-acf)?-fatal-(?:plugin|no-fatal|no-context|context)(?:-(?<run>\\d+))?\\.json$`)], render: renderThroughput },
  'upstream-call': { patterns: [new RegExp(`^upstream-call-${VERSION}\\.json$`)], render: renderUpstreamCall },
  'autobind-route': { patterns: [new RegExp(`^${VERSION}(?<acf>-acf)?-autobind-vs-plugin\\.json$`)], render: renderAutobindRoute },
  'load-undici': { patterns: [new RegExp(`^${VERSION}-load-undici(?<part>-[a-z]+)?\\.json$`)], render: renderLoadUndici },
  compare: { patterns: [new RegExp(`^compare-${VERSION}\\.json$`)], render: renderCompare },
  cluster: { patterns: [new RegExp(`^cluster-${VERSION}\\.json$`)], render: renderCluster },
  'cluster-clients': { patterns: [new RegExp(`^cluster-clients-${VERSION}-hogs(?<hogs>\\d+)\\.json$`)], render: renderClusterClients },
  // The 1,000,000-request runs; longer ones (`soak-<node>-3m.json`) are quoted in the prose.
  soak: { patterns: [new RegExp(`^soak-${VERSION}\\.json$`)], render: renderSoak }
}

/** Every table's Markdown, by name; `setup` lists the Node versions, dates and machines of all the files used. */
function renderTables (resultsDir) {
  const out = {}
  const used = []
  for (const [name, { patterns, render }] of Object.entries(TABLES)) {
    const groups = patterns.map((p) => discover(resultsDir, p))
    used.push(...groups.flat())
    out[name] = groups.every((g) => g.length === 0)
      ? `_No results: no file in bench/results matches ${patterns.map((p) => `\`${p.source}\``).join(', ')}._`
      : render(...groups)
  }
  out.setup = used.length === 0 ? '_No results in bench/results._' : renderSetup(used)
  return out
}

// ---------------------------------------------------------------------------
// The page
// ---------------------------------------------------------------------------

const MARKER = /<!-- bench:table ([a-z-]+) -->\n[\s\S]*?<!-- bench:end \1 -->/g

/** The page with every table rewritten; fails on a marker with no table, or a table with no marker. */
function rewrite (text, tables, fail) {
  const seen = new Set()
  const result = text.replace(MARKER, (_, name) => {
    if (!(name in tables)) fail(`unknown table "${name}" (known: ${Object.keys(tables).join(', ')})`)
    seen.add(name)
    return `<!-- bench:table ${name} -->\n${tables[name]}\n<!-- bench:end ${name} -->`
  })
  const absent = Object.keys(tables).filter((name) => !seen.has(name))
  if (absent.length > 0) fail(`no <!-- bench:table NAME --> ... <!-- bench:end NAME --> markers for ${absent.join(', ')}`)
  return result
}

/** The first line where `a` and `b` differ (1-based), with both versions. */
function firstDifference (a, b) {
  const x = a.split('\n')
  const y = b.split('\n')
  let i = 0
  while (i < x.length && x[i] === y[i]) i++
  return { line: i + 1, found: x[i] ?? '(end of file)', expected: y[i] ?? '(end of file)' }
}

function main () {
  const { fail, parse } = cli('readme', HELP)
  const values = parse({ check: { type: 'boolean' }, print: { type: 'boolean' }, doc: { type: 'string' }, results: { type: 'string' } })
  const root = path.join(__dirname, '..')
  const docFile = path.resolve(values.doc ?? path.join(root, 'docs', 'benchmarks.md'))
  const shown = path.relative(process.cwd(), docFile) || docFile
  let text
  try {
    text = fs.readFileSync(docFile, 'utf8')
  } catch (err) {
    fail(`cannot read ${docFile}: ${err.message}`)
  }
  const updated = rewrite(text, renderTables(path.resolve(values.results ?? path.join(__dirname, 'results'))), fail)
  if (values.print) {
    process.stdout.write(updated)
  } else if (updated === text) {
    console.log(`${shown}: the tables match bench/results/*.json`)
  } else if (values.check) {
    const { line, found, expected } = firstDifference(text, updated)
    console.log(`${shown} is stale: run npm run bench:readme\nfirst differing line, ${line}:\n- ${found}\n+ ${expected}`)
    process.exitCode = 1
  } else {
    fs.writeFileSync(docFile, updated)
    console.log(`${shown}: tables rewritten from bench/results/*.json`)
  }
}

if (require.main === module) main()

module.exports = { renderTables, TABLES }
