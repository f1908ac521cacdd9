import { EventEmitter, getEventListeners } from 'node:events'
import { fork } from 'node:child_process'
import http from 'node:http'
import http2 from 'node:http2'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type { ClientCommand, ClientReport } from '../fixtures/hangup-clients.js'
import { killAfter } from '../../helpers/child.js'
import { startFaultApp, type FaultApp } from './app.js'
import type { Random } from './random.js'
import { startFaultUpstream, WAIT_MS, type FaultUpstream } from './upstream.js'
import { INFO, type LogLine } from '../../helpers/logs.js'
import { collectWarnings, poll, settleWarnings, tlsMaterial, until, within } from '../../helpers/util.js'

/**
 * The fault-injection suite's tools: what the process and the app's
 * listeners looked like before a case, fresh requests that prove the app
 * still serves, clients in a child process (for a blocked event loop), and
 * the checks every fault case ends with. The raw clients that hang up at a
 * chosen byte are test/helpers/raw-client.ts; the seeded PRNG, the
 * misbehaving upstream and the app are in random.ts, upstream.ts and app.ts
 * beside this file, re-exported here.
 */

export * from './app.js'
export * from './random.js'
export * from './upstream.js'

// ------------------------------------------------------------ the process

export interface ProcessWatch {
  readonly unhandledRejections: unknown[]
  readonly uncaughtExceptions: unknown[]
  readonly warnings: Error[]
}

/**
 * Counts what would crash or warn the process while the test runs. Adding an
 * 'uncaughtException' listener keeps the process alive through one, so the
 * test can say which case caused it instead of dying with it.
 */
export function watchProcess (t: TestContext): ProcessWatch {
  const watch: ProcessWatch = { unhandledRejections: [], uncaughtExceptions: [], warnings: collectWarnings(t) }
  const onRejection = (reason: unknown): void => { watch.unhandledRejections.push(reason) }
  const onException = (error: unknown): void => { watch.uncaughtExceptions.push(error) }
  process.on('unhandledRejection', onRejection)
  process.on('uncaughtException', onException)
  t.after(() => {
    process.removeListener('unhandledRejection', onRejection)
    process.removeListener('uncaughtException', onException)
  })
  return watch
}

export type Snapshot = Record<string, number>

/** Listener counts by `name:event`, for EventEmitters and EventTargets (an AbortSignal's 'abort'). */
export function listenerSnapshot (targets: Record<string, EventEmitter | EventTarget | undefined>): Snapshot {
  const snapshot: Snapshot = {}
  for (const [name, target] of Object.entries(targets)) {
    if (target instanceof EventEmitter) {
      for (const event of target.eventNames()) snapshot[`${name}:${String(event)}`] = target.listenerCount(event)
    } else if (target !== undefined) {
      snapshot[`${name}:abort`] = getEventListeners(target, 'abort').length
    }
  }
  return snapshot
}

/**
 * The emitters an undici Agent keeps per origin (its Pools or Clients), found
 * through its own symbol-keyed Map so that this works with undici 7 and 8
 * without naming their private symbols. Named by position, not by origin:
 * the Agent drops an origin's pool when its last connection closes and makes
 * a new one for the next call, and that is no leak.
 */
export function dispatcherEmitters (name: string, agent: object): Record<string, EventEmitter> {
  const found: Record<string, EventEmitter> = {}
  if (agent instanceof EventEmitter) found[name] = agent
  let n = 0
  for (const symbol of Object.getOwnPropertySymbols(agent)) {
    const value = (agent as Record<symbol, unknown>)[symbol]
    if (!(value instanceof Map)) continue
    for (const entry of value.values()) {
      const pool = (entry as { dispatcher?: unknown } | null)?.dispatcher ?? entry
      if (pool instanceof EventEmitter) found[`${name}.pool#${n++}`] = pool
    }
  }
  return found
}

/**
 * Compares two snapshots; pools (`.pool#`) only when both have them (see
 * dispatcherEmitters): a pool dropped or re-created since is not a leak, a
 * pool with more listeners than its predecessor is.
 */
export function comparableSnapshots (now: Snapshot, before: Snapshot): [Snapshot, Snapshot] {
  const hasPool = (s: Snapshot): boolean => Object.keys(s).some((key) => key.includes('.pool#'))
  if (hasPool(now) && hasPool(before)) return [now, before]
  const withoutPools = (s: Snapshot): Snapshot => Object.fromEntries(Object.entries(s).filter(([key]) => !key.includes('.pool#')))
  return [withoutPools(now), withoutPools(before)]
}

// ------------------------------------------------------------ clients

/** What a plain HTTP/1.1 client saw of one GET: never rejects; `error` is how the response was cut, if it was. */
export interface Seen {
  status: number
  body: string
  error: string
}

/** One GET on a fresh connection (no keep-alive), bounded. */
export async function get (origin: string, path: string): Promise<Seen> {
  return await within(new Promise((resolve) => {
    const seen: Seen = { status: 0, body: '', error: '' }
    const failed = (err: Error & { code?: string }): void => {
      seen.error = err.code ?? err.message
      resolve(seen)
    }
    http.get(`${origin}${path}`, { agent: false }, (res) => {
      seen.status = res.statusCode ?? 0
      res.setEncoding('latin1').on('data', (chunk: string) => { seen.body += chunk })
      res.on('end', () => resolve(seen))
      res.on('error', failed)
    }).on('error', failed)
  }), WAIT_MS, `GET ${path}`)
}

/** A fresh request on a fresh connection: the app still serves. */
export async function freshRequest (fa: FaultApp, path = '/ok'): Promise<{ status: number, body: string }> {
  if (fa.transport === 'h2c' || fa.transport === 'h2-tls') return await freshHttp2Request(fa.origin, path)
  const { status, body, error } = await get(fa.origin, path)
  if (error !== '') throw new Error(`GET ${path} failed: ${error}`)
  return { status, body }
}

async function freshHttp2Request (origin: string, path: string): Promise<{ status: number, body: string }> {
  const session = http2.connect(origin, origin.startsWith('https:') ? { ca: tlsMaterial().cert } : {})
  session.on('error', () => {})
  try {
    return await within(new Promise((resolve, reject) => {
      const stream = session.request({ ':path': path })
      let status = 0
      let body = ''
      stream.on('response', (headers) => { status = Number(headers[':status']) })
      stream.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      stream.on('end', () => resolve({ status, body }))
      stream.on('error', reject)
    }), WAIT_MS, `a fresh HTTP/2 request to ${path}`)
  } finally {
    session.close()
  }
}

// ------------------------------------------------------------- the waits

/** Waits until `check()` holds, re-checked on every change the app's probe reports; bounded. */
export async function probeUntil (fa: FaultApp, check: () => boolean, what: string): Promise<void> {
  await until(fa.probe.events, 'change', check, WAIT_MS, what)
}

/** For state that emits nothing (the plugin's counters, the server's connections): polled, bounded. */
export async function pollUntil (check: () => boolean, what: string): Promise<void> {
  await poll(check, WAIT_MS, what)
}

// ------------------------------------------------------------- the checks

/** The state a fault case is compared against: taken once the app is warmed up. */
export interface Baseline {
  listeners: Snapshot
}

/** Everything whose listeners must not grow: the process, the server, the routes' Agent and its pools. */
export function emittersOf (fa: FaultApp): Record<string, EventEmitter> {
  return { process, server: fa.app.server, ...dispatcherEmitters('agent', fa.dispatcher) }
}

/** One request through the upstream, so the Agent has its pool before the baseline is taken. */
export async function warmUp (fa: FaultApp): Promise<Baseline> {
  const res = await freshRequest(fa, '/proxy/ok')
  if (res.status !== 200) throw new Error(`warm-up: ${res.status} ${res.body}`)
  await poll(() => fa.stats().inflight === 0, WAIT_MS, 'the warm-up to close')
  return { listeners: listenerSnapshot(emittersOf(fa)) }
}

/** What a fault case starts from. */
export interface FaultSetup {
  watch: ProcessWatch
  upstream: FaultUpstream
  fa: FaultApp
  baseline: Baseline
}

/** The process watched, a fault upstream drawing from `random`, the default app (h1, in-process fatal handling) on it, warmed up. */
export async function startFaultSetup (t: TestContext, random: Random): Promise<FaultSetup> {
  const watch = watchProcess(t)
  const upstream = await startFaultUpstream(t, random)
  const fa = await startFaultApp(t, upstream)
  const baseline = await warmUp(fa)
  return { watch, upstream, fa, baseline }
}

export function describeLine (line: LogLine): string {
  const err = line.err as { code?: string, type?: string, message?: string } | undefined
  return `${line.level} ${line.msg}${err === undefined ? '' : ` (${err.code ?? err.type ?? ''}: ${err.message ?? ''})`}`
}

/** `level err.code` (or the error's type when it has no code; the message when there is no error): what an assertion on a line compares. */
export function lineKey (line: LogLine): string {
  const err = line.err as { code?: string, type?: string } | undefined
  return `${line.level} ${err === undefined ? line.msg : (err.code ?? err.type ?? '?')}`
}

export interface CleanOptions {
  /** The index of the case's first log line: only lines from there on are this case's. */
  since?: number
  /** The lines at warn or above this case must log (`lineKey`): an upstream's own fault while the client stays. */
  loud?: string[]
}

/**
 * What every fault case ends with: nothing in flight, the app serves a fresh
 * request, nothing crashed or warned, no log line at warn or above but those
 * the case expects, no fatal error, no listener left behind (on the process,
 * the server, the Agent and its pools, every request.signal a route read).
 */
export async function assertClean (t: TestContext, fa: FaultApp, watch: ProcessWatch, baseline: Baseline, options: CleanOptions = {}): Promise<void> {
  await poll(() => fa.stats().inflight === 0, WAIT_MS, 'stats().inflight to be 0')
  t.assert.deepStrictEqual(await freshRequest(fa), { status: 200, body: 'ok' }, 'the app still serves a fresh request')
  await settleWarnings()
  t.assert.deepStrictEqual(watch.uncaughtExceptions, [], 'no uncaught exception')
  t.assert.deepStrictEqual(watch.unhandledRejections, [], 'no unhandled rejection')
  t.assert.deepStrictEqual(watch.warnings.map((w) => `${w.name}: ${w.message}`), [], 'no process warning (MaxListenersExceededWarning…)')
  t.assert.strictEqual(fa.stats().fatal, 0, 'no fatal error')
  const loud = fa.logs.lines.slice(options.since ?? 0).filter((line) => line.level > INFO)
  t.assert.deepStrictEqual(loud.map(lineKey), options.loud ?? [], `logged at warn or above: ${JSON.stringify(loud.map(describeLine))}`)
  await poll(() => fa.stats().inflight === 0, WAIT_MS, 'the fresh request to close')
  const [now, before] = comparableSnapshots(listenerSnapshot(emittersOf(fa)), baseline.listeners)
  t.assert.deepStrictEqual(now, before, 'no listener left on the process, the server, the Agent or its pools')
  assertDisconnectLines(t, fa)
  const signals = Object.fromEntries(fa.probe.signals.map((signal, i) => [`signal#${i}`, signal]))
  t.assert.deepStrictEqual(Object.entries(listenerSnapshot(signals)).filter(([, n]) => n !== 0), [], "no 'abort' listener left on any request.signal")
}

/** Every "client disconnected" line is at info with statusCode 499, one per hang-up the counters hold. */
function assertDisconnectLines (t: TestContext, fa: FaultApp): void {
  const lines = fa.logs.lines.filter((l) => l.msg === 'client disconnected')
  const { upload, handler, response } = fa.stats().disconnects
  t.assert.strictEqual(lines.length, upload + handler + response, 'one "client disconnected" line per counted hang-up')
  t.assert.deepStrictEqual(lines.filter((l) => l.level !== INFO || l.statusCode !== 499).map(describeLine), [], 'each at info, with statusCode 499')
}

// ------------------------------------------------------- clients in a child

/** The child of test/fault/fixtures/hangup-clients.ts, and its reports in arrival order. */
export interface ClientProcess {
  send (command: ClientCommand): void
  /** The next report of kind `cmd` (a 'failed' one, or the child's exit, rejects); bounded. */
  next (cmd: ClientReport['cmd']): Promise<ClientReport>
}

export const CLIENTS_FIXTURE = join(__dirname, '..', 'fixtures', 'hangup-clients.js')

/** Forks the client process (IPC), killed when the test ends. */
export function forkClients (t: TestContext): ClientProcess {
  const child = fork(CLIENTS_FIXTURE, [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
  killAfter(t, child, false)
  let stderr = ''
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const reports: ClientReport[] = []
  const events = new EventEmitter()
  child.on('message', (report: ClientReport) => {
    reports.push(report)
    events.emit('change')
  })
  let exited = false
  child.on('exit', () => { exited = true; events.emit('change') })
  return {
    send: (command) => { child.send(command) },
    async next (cmd) {
      let found: ClientReport | undefined
      let failure: string | undefined
      await until(events, 'change', () => {
        const failed = reports.find((r) => r.cmd === 'failed')
        if (failed !== undefined) failure = `the client process failed: ${failed.error ?? ''}`
        else if (exited) failure = `the client process exited; stderr: ${stderr}`
        const index = reports.findIndex((r) => r.cmd === cmd)
        if (index >= 0) found = reports.splice(index, 1)[0]
        return failure !== undefined || found !== undefined
      }, WAIT_MS, `the client process to report '${cmd}'`)
      if (found === undefined) throw new Error(failure)
      return found
    }
  }
}

/**
 * Blocks this process's event loop (a busy loop: no I/O, no timer, no
 * callback runs) for at least `ms`, and until `done()` (checked
 * synchronously) is true; never longer than `maxMs`.
 */
export function blockLoop (ms: number, done: () => boolean, maxMs: number): { blockedMs: number, done: boolean } {
  const started = performance.now()
  let finished = false
  while (performance.now() - started < maxMs) {
    finished ||= done()
    if (finished && performance.now() - started >= ms) break
  }
  return { blockedMs: performance.now() - started, done: finished }
}
