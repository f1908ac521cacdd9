import { availableParallelism } from 'node:os'
import { InvalidOptionError } from '../errors.js'
import { describe, millisecondsOption } from '../options.js'

/** What `startCluster` logs through: pino's signature, `(object, message)`. */
export interface ClusterLogger {
  info (object: object, message: string): void
  warn (object: object, message: string): void
  error (object: object, message: string): void
}

/** Re-fork delays for workers that die young (a crash loop). */
export interface BackoffOptions {
  /**
   * A worker that exits before it listens, or sooner than this many
   * milliseconds after, died young. One that lives this long ends the streak.
   * @default 1000
   */
  minUptime?: number
  /**
   * The delay before the second young death's replacement (the first is
   * replaced at once); it doubles with each further one.
   * @default 100
   */
  initial?: number
  /**
   * The longest delay between re-forks.
   * @default 10000
   */
  max?: number
}

export interface StartClusterOptions<T = unknown> {
  /**
   * How many workers the primary keeps running.
   * @default os.availableParallelism()
   */
  workers?: number
  /** Runs in each worker: build the app and listen. Its rejection exits the worker with code 1. */
  start: () => T | Promise<T>
  /**
   * Where the primary logs (one line per fork and per exit). Any logger with
   * pino's `info/warn/error(object, message)`; the default writes pino-style
   * JSON lines to stdout.
   */
  logger?: ClusterLogger
  /**
   * Milliseconds a worker gets to exit once it was told to stop or began
   * closing on its own (a fatal error), before the primary sends SIGKILL.
   * Keep it above the plugin's `fatal.gracePeriod` plus 1.5 s.
   * @default 15000
   */
  killTimeout?: number
  backoff?: BackoffOptions
}

export interface ResolvedBackoff {
  readonly minUptime: number
  readonly initial: number
  readonly max: number
}

export interface ResolvedClusterOptions {
  readonly workers: number
  readonly start: () => unknown
  readonly logger: ClusterLogger | null
  readonly killTimeout: number
  readonly backoff: ResolvedBackoff
}

export const BACKOFF_DEFAULTS: ResolvedBackoff = Object.freeze({ minUptime: 1000, initial: 100, max: 10_000 })

/** gracePeriod (10 s) + the deadline's 0.5 s + the log flush (at most 1 s), with room to spare. */
export const DEFAULT_KILL_TIMEOUT = 15_000

/** The most workers a primary forks: a typo of 1000 must not fork a thousand processes. */
const MAX_WORKERS = 1024

function workersOption (value: unknown): number {
  if (value === undefined) return availableParallelism()
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_WORKERS) {
    throw new InvalidOptionError('workers', `an integer from 1 to ${MAX_WORKERS}`, describe(value))
  }
  return value
}

function loggerOption (value: unknown): ClusterLogger | null {
  if (value === undefined) return null
  const logger = value as Record<string, unknown> | null
  const valid = typeof logger === 'object' && logger !== null &&
    ['info', 'warn', 'error'].every((level) => typeof logger[level] === 'function')
  if (!valid) throw new InvalidOptionError('logger', 'an object with info, warn and error methods (pino-compatible)', describe(value))
  return value as ClusterLogger
}

function backoffOption (value: unknown): ResolvedBackoff {
  if (value === undefined) return BACKOFF_DEFAULTS
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError('backoff', 'an object', describe(value))
  }
  const record = value as Record<string, unknown>
  const minUptime = millisecondsOption(record, 'minUptime', 'backoff.minUptime', BACKOFF_DEFAULTS.minUptime)
  const initial = millisecondsOption(record, 'initial', 'backoff.initial', BACKOFF_DEFAULTS.initial, 1)
  const max = millisecondsOption(record, 'max', 'backoff.max', Math.max(BACKOFF_DEFAULTS.max, initial), initial)
  return Object.freeze({ minUptime, initial, max })
}

/** Validates `startCluster`'s options; each error names its option (`backoff.max`, …). */
export function resolveClusterOptions (options: unknown): ResolvedClusterOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidOptionError('options', 'an object with a start function', describe(options))
  }
  const record = options as Record<string, unknown>
  if (typeof record.start !== 'function') {
    throw new InvalidOptionError('start', 'a function that builds the app and listens', describe(record.start))
  }
  return Object.freeze({
    workers: workersOption(record.workers),
    start: record.start as () => unknown,
    logger: loggerOption(record.logger),
    killTimeout: millisecondsOption(record, 'killTimeout', 'killTimeout', DEFAULT_KILL_TIMEOUT),
    backoff: backoffOption(record.backoff)
  })
}
