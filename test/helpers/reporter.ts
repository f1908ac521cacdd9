import { relative, resolve } from 'node:path'
import { inspect } from 'node:util'

/**
 * The test reporter of `npm test`: a dot per passing test, every failure in
 * full as it happens (its name, file, error and diagnostics), and a summary:
 * counts, duration, the slowest files and the failures' names, ending in the
 * line "tests: N passed, N failed, N skipped". Node's `tap` printed some
 * 5,000 lines for the suite, `spec` prints a line per test and `dot` no
 * summary. Loaded by `node --test --test-reporter=./dist/test/test/helpers/reporter.js`.
 */

/** The fields of Node's reporter events this reporter reads (node:test's "test:*" events). */
interface ReporterEvent {
  type: string
  data?: {
    name?: string
    nesting?: number
    file?: string
    message?: string
    skip?: string | boolean
    todo?: string | boolean
    details?: {
      duration_ms?: number
      type?: string
      error?: unknown
    }
  }
}

/** Where one run's counts go. */
interface Tally {
  passed: number
  failed: number
  skipped: number
  todo: number
  /** Milliseconds per file, its process included. */
  fileMs: Map<string, number>
  failures: string[]
  /** Per file: the names of the tests started, by nesting. */
  names: Map<string, string[]>
  /** The places (file and nesting) whose last test failed: the diagnostics that follow are its. */
  failedAt: Set<string>
  /** Per file: the last STDERR_LINES lines its process wrote to stderr, printed if one of its tests failed. */
  stderr: Map<string, string[]>
  filesFailed: Set<string>
}

const DOTS_PER_LINE = 80
const STDERR_LINES = 50
const SLOWEST = 5

function newTally (): Tally {
  return { passed: 0, failed: 0, skipped: 0, todo: 0, fileMs: new Map(), failures: [], names: new Map(), failedAt: new Set(), stderr: new Map(), filesFailed: new Set() }
}

/** Where an event comes from: a file and its position (nesting) in it. */
function where (event: ReporterEvent): { file: string, nesting: number, key: string } {
  const file = event.data?.file === undefined ? '(no file)' : relative(process.cwd(), event.data.file)
  const nesting = event.data?.nesting ?? 0
  return { file, nesting, key: `${file}\0${nesting}` }
}

/**
 * The test that stands for a whole file (its process): named by the file's
 * path as given (Node 20: made absolute), at nesting 0. Node 20 to 26 report
 * it only with 'test:complete', or 'test:fail' when the file itself failed
 * (a throw at load).
 */
function isFileTest (event: ReporterEvent): boolean {
  const data = event.data
  return data?.nesting === 0 && data.file !== undefined && data.name !== undefined && resolve(data.name) === data.file
}

/** `a > b > c`: the test's name with its parents'. */
function fullName (tally: Tally, event: ReporterEvent): string {
  const { file, nesting } = where(event)
  const parents = (tally.names.get(file) ?? []).slice(0, nesting)
  return [...parents, event.data?.name ?? '(unnamed)'].join(' > ')
}

/** The error a failed test carries: Node wraps the test's own error (ERR_TEST_FAILURE) as the cause. */
function describeFailure (error: unknown): string {
  const cause = (error as { cause?: unknown } | undefined)?.cause ?? error
  return inspect(cause, { depth: 6, colors: false })
}

function indent (text: string): string {
  return text.split('\n').map((line) => `    ${line}`).join('\n')
}

function started (tally: Tally, event: ReporterEvent): void {
  const { file, nesting, key } = where(event)
  const names = tally.names.get(file) ?? []
  names.length = nesting
  names.push(event.data?.name ?? '(unnamed)')
  tally.names.set(file, names)
  tally.failedAt.delete(key)
}

/**
 * A test ended (in the order they ran; passes and failures come in the
 * order of the file's report). For a whole file: its duration, and its
 * stderr if one of its tests failed.
 */
function completed (tally: Tally, event: ReporterEvent): string {
  if (!isFileTest(event)) return ''
  const { file } = where(event)
  tally.fileMs.set(file, event.data?.details?.duration_ms ?? 0)
  const stderr = tally.stderr.get(file) ?? []
  tally.stderr.delete(file)
  if (!tally.filesFailed.has(file) || stderr.length === 0) return ''
  return `\n[stderr of ${file}, last ${stderr.length} lines]\n${stderr.join('\n')}\n`
}

/** A line of a file's stderr (a warning Node printed, a child's output a test passed through): kept for `completed`. */
function keepStderr (tally: Tally, event: ReporterEvent): void {
  const { file } = where(event)
  const lines = tally.stderr.get(file) ?? []
  lines.push(...(event.data?.message ?? '').replace(/\n$/, '').split('\n'))
  tally.stderr.set(file, lines.slice(-STDERR_LINES))
}

/** A test passed (or was skipped, or is a todo): a dot, or nothing for a suite or a file. */
function passed (tally: Tally, event: ReporterEvent): string {
  tally.failedAt.delete(where(event).key)
  if (isFileTest(event) || event.data?.details?.type === 'suite') return ''
  if (event.data?.skip !== undefined && event.data.skip !== false) {
    tally.skipped++
    return 's'
  }
  if (event.data?.todo !== undefined && event.data.todo !== false) {
    tally.todo++
    return 't'
  }
  tally.passed++
  return '.'
}

/** A test failed: the whole story at once, unless it only failed through its subtests (each told already). */
function failed (tally: Tally, event: ReporterEvent): string {
  const { file, key } = where(event)
  const error = event.data?.details?.error as { failureType?: string } | undefined
  if (event.data?.todo !== undefined && event.data.todo !== false) {
    tally.todo++
    return 't'
  }
  if (error?.failureType === 'subtestsFailed') return ''
  if (isFileTest(event) || event.data?.details?.type === 'suite') {
    // A file or suite that failed by itself (a throw at load, a hook).
    tally.failures.push(`${file}: ${event.data?.name ?? ''}`)
  } else {
    tally.failed++
    tally.failures.push(`${file}: ${fullName(tally, event)}`)
  }
  tally.failedAt.add(key)
  tally.filesFailed.add(file)
  return `\n✖ ${fullName(tally, event)}\n  ${file}\n${indent(describeFailure(error))}\n`
}

/**
 * A diagnostic comes right after its test's result, at its nesting: printed
 * for a failed test, dropped for a passed one. The runner's own totals
 * (no file) are dropped too: the summary has them.
 */
function diagnostic (tally: Tally, event: ReporterEvent): string {
  if (event.data?.file === undefined || !tally.failedAt.has(where(event).key)) return ''
  return `    # ${event.data.message ?? ''}\n`
}

function seconds (ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}

/** The summary, ending in the one line CI tools read: "tests: N passed, N failed, N skipped". */
function summary (tally: Tally, durationMs: number): string {
  const slowest = [...tally.fileMs].sort((a, b) => b[1] - a[1]).slice(0, SLOWEST)
  const lines = ['', '', `duration ${seconds(durationMs)}; slowest files:`]
  for (const [file, ms] of slowest) lines.push(`  ${seconds(ms).padStart(8)}  ${file}`)
  if (tally.todo > 0) lines.push(`todo: ${tally.todo}`)
  if (tally.failures.length > 0) lines.push('failed:', ...tally.failures.map((name) => `  ✖ ${name}`))
  lines.push(`tests: ${tally.passed} passed, ${tally.failed} failed, ${tally.skipped} skipped`)
  return `${lines.join('\n')}\n`
}

/** What one event prints. */
function report (tally: Tally, event: ReporterEvent): string {
  switch (event.type) {
    case 'test:start':
      started(tally, event)
      return ''
    case 'test:complete':
      return completed(tally, event)
    case 'test:pass':
      return passed(tally, event)
    case 'test:fail':
      return failed(tally, event)
    case 'test:diagnostic':
      return diagnostic(tally, event)
    case 'test:stderr':
      keepStderr(tally, event)
      return ''
    default:
      return ''
  }
}

/** Wraps the dots at DOTS_PER_LINE. */
function wrapDots (): (text: string) => string {
  let column = 0
  return (text) => {
    if (text.length !== 1) {
      column = 0
      return text
    }
    column++
    if (column < DOTS_PER_LINE) return text
    column = 0
    return `${text}\n`
  }
}

async function * compactReporter (source: AsyncIterable<ReporterEvent>): AsyncGenerator<string> {
  const startedAt = performance.now()
  const tally = newTally()
  const wrap = wrapDots()
  for await (const event of source) {
    const text = report(tally, event)
    if (text !== '') yield wrap(text)
  }
  yield summary(tally, performance.now() - startedAt)
}

// Node loads a reporter with import(): the default export of a CommonJS
// module is its module.exports.
export = compactReporter
