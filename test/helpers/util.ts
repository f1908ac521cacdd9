import { execFileSync } from 'node:child_process'
import type { EventEmitter } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'

/**
 * Rejects with a message naming `what` when `promise` has not settled within
 * `ms`, or with `cancel`'s reason as soon as it aborts (the timer never
 * outlives the wait).
 */
export async function within<T> (promise: Promise<T>, ms: number, what: string, cancel?: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  let onCancel: (() => void) | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
    if (cancel !== undefined) {
      onCancel = () => reject(cancel.reason)
      if (cancel.aborted) onCancel()
      else cancel.addEventListener('abort', onCancel, { once: true })
    }
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
    if (onCancel !== undefined) cancel?.removeEventListener('abort', onCancel)
  }
}

/**
 * Resolves once `check()` is true, re-checking on every `event` of `emitter`;
 * rejects after `ms` with a message naming `what`. No polling, no sleeps.
 */
export async function until (emitter: EventEmitter, event: string, check: () => boolean, ms: number, what: string, cancel?: AbortSignal): Promise<void> {
  if (check()) return
  let onEvent: (() => void) | undefined
  try {
    await within(new Promise<void>((resolve) => {
      onEvent = () => { if (check()) resolve() }
      emitter.on(event, onEvent)
    }), ms, what, cancel)
  } finally {
    if (onEvent !== undefined) emitter.removeListener(event, onEvent)
  }
}

/**
 * For state that emits nothing (a counter of the plugin): re-checks every few
 * milliseconds, bounded by `ms`. The loop is bounded in time and count.
 */
export async function poll (check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = performance.now() + ms
  for (let i = 0; i < 10_000; i++) {
    if (check()) return
    if (performance.now() > deadline) break
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

/** Collects every process warning emitted while the test runs. */
export function collectWarnings (t: TestContext): Error[] {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.after(() => { process.removeListener('warning', onWarning) })
  return warnings
}

/** Lets already-queued warnings (emitted on nextTick) reach the collector. */
export async function settleWarnings (): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
}

export interface TlsMaterial {
  key: Buffer
  cert: Buffer
  /** 'openssl' when generated for this run, 'fixture' when read from test/matrix/fixtures. */
  source: 'openssl' | 'fixture'
}

let material: TlsMaterial | undefined

/**
 * A self-signed certificate for IP:127.0.0.1. Generated with `openssl` at test
 * time when it is on the PATH (no network needed); otherwise the fixed pair
 * shipped in test/matrix/fixtures (generated once with the same command).
 */
export function tlsMaterial (): TlsMaterial {
  if (material !== undefined) return material
  const dir = mkdtempSync(join(tmpdir(), 'hangup-matrix-'))
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')
    ], { stdio: 'ignore', timeout: 10_000 })
    material = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')), source: 'openssl' }
  } catch {
    material = fixtureTlsMaterial()
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  return material
}

/** The fixed pair shipped in test/matrix/fixtures (the fallback when `openssl` is missing). */
export function fixtureTlsMaterial (): TlsMaterial {
  // compiled to dist/test/test/helpers; the fixtures stay in the source tree
  const fixtures = join(__dirname, '..', '..', '..', '..', 'test', 'matrix', 'fixtures')
  return { key: readFileSync(join(fixtures, 'key.pem')), cert: readFileSync(join(fixtures, 'cert.pem')), source: 'fixture' }
}

/** A one-line description of whatever an API rejected with, for diagnostics. */
export function describeError (err: unknown): string {
  if (!(err instanceof Error)) return `non-error ${String(err)}`
  const e = err as Error & { code?: unknown, cause?: unknown }
  let text = `${e.constructor.name}(name=${e.name}${e.code === undefined ? '' : `, code=${String(e.code)}`}): ${e.message}`
  if (e.cause instanceof Error) text += ` [cause: ${describeError(e.cause)}]`
  return text
}
