import { constants } from 'node:os'
import type { FastifyRequest } from 'fastify'
import { InvalidOptionError } from './errors.js'

/** The level of the one line logged when a client hangs up; `'silent'` logs nothing. */
export type DisconnectLogLevel = 'trace' | 'debug' | 'info' | 'silent'

export interface FastifyHangupOptions {
  /**
   * An error in the request (a rejected handler, a failing hook) aborts
   * `request.signal` with that error, so sibling upstream calls stop.
   * @default true
   */
  abortOnError?: boolean
  /**
   * A sent response aborts `request.signal` with `FST_HANGUP_RESPONSE_SENT`, so
   * calls still bound to the request (a hedged request's loser) stop.
   * @default true
   */
  abortOnResponse?: boolean
  /**
   * The level of the line logged when a client hangs up (with the request id,
   * the phase and `statusCode: 499`). Never above `info`: a hang-up is the
   * client's choice, not a server fault.
   * @default 'info'
   */
  disconnectLogLevel?: DisconnectLogLevel
  /**
   * Binds every upstream call made inside a request to that request, with no
   * `signal` passed: it is cancelled with the request. `true` binds undici
   * (`undici.request`, `undici.fetch`, Node's global `fetch`, through
   * undici's global dispatcher; needs undici installed) and `node:http` /
   * `node:https` client requests (axios, got, the AWS SDK...); an object
   * picks one. Turns the async context on.
   * @default false
   */
  autoBind?: boolean | AutoBindOptions
  /**
   * Process-level fatal errors and stop signals: the request that crashed gets
   * a 500, the app closes gracefully, the process exits. `false` installs no
   * signal or `uncaughtException` handler, only the `unhandledRejection`
   * listener that keeps the plugin's own cancellations from crashing the
   * process (every other rejection keeps Node's behaviour); `true` is the
   * defaults. The plugin's own cancellations are never fatal.
   * @default true
   */
  fatal?: boolean | FatalOptions
}

/** `autoBind` as an object: which clients are bound. A key left out is `true`. */
export interface AutoBindOptions {
  /**
   * undici's global dispatcher: `undici.request`/`stream`/`pipeline`/`fetch`
   * and Node's global `fetch`. Needs undici installed.
   * @default true
   */
  undici?: boolean
  /**
   * `node:http` and `node:https` client requests (`http.request`, and the
   * clients built on it: axios, got, the AWS SDK's `NodeHttpHandler`).
   * @default true
   */
  http?: boolean
}

/** The `fatal` option. */
export interface FatalOptions {
  /**
   * Milliseconds to drain in-flight requests before the stragglers' signals
   * abort with `FST_HANGUP_SERVER_CLOSING`, they get 503 and the process exits.
   * @default 10000
   */
  gracePeriod?: number
  /**
   * Signals that start a graceful close (exit code 0). A second one exits at
   * once, unless within 500 ms of the first (the same stop delivered twice).
   * @default ['SIGINT', 'SIGTERM']
   */
  signals?: NodeJS.Signals[]
  /**
   * `false`: close the app but leave the process alive (embedding, tests).
   * @default true
   */
  exit?: boolean
  /**
   * Follow each request's async context (`AsyncLocalStorage`) so that an
   * uncaught error is traced to the request that raised it, which is then
   * answered 500 at once. Without it, the request that crashed is answered
   * 503 at the grace deadline like any straggler. `'auto'`: on where the
   * context is cheap, i.e. where Node runs `AsyncLocalStorage` on
   * AsyncContextFrame (Node 24 and later, Node 22 with
   * `--experimental-async-context-frame`); off on Node 20 and on Node 22
   * without the flag, where it runs a hook for every promise and callback of
   * the process (the README's benchmarks measure it). `autoBind`
   * turns it on whatever this says: it finds a call's request through it.
   * @default 'auto'
   */
  asyncContext?: boolean | 'auto'
  /**
   * Escalates a request error (one Fastify caught) to a fatal error: the
   * request gets the generic 500 and the app closes, e.g. for an error that
   * says a connection pool is corrupt.
   */
  isFatal?: (error: Error, request: FastifyRequest) => boolean
  /**
   * Called for every fatal error, before exit, e.g. to report it. Awaited,
   * bounded by the grace period; what it throws is logged.
   */
  onFatal?: (error: unknown, request: FastifyRequest | null) => void | Promise<void>
}

/** `fatal` after validation. */
export interface ResolvedFatalOptions {
  readonly gracePeriod: number
  readonly signals: readonly NodeJS.Signals[]
  readonly exit: boolean
  readonly asyncContext: boolean | 'auto'
  readonly isFatal: ((error: Error, request: FastifyRequest) => boolean) | null
  readonly onFatal: ((error: unknown, request: FastifyRequest | null) => void | Promise<void>) | null
}

/** `autoBind` after validation: which clients are bound. */
export interface ResolvedAutoBind {
  readonly undici: boolean
  readonly http: boolean
}

/** Options after validation: every field present, read once at registration. */
export interface ResolvedOptions {
  readonly abortOnError: boolean
  readonly abortOnResponse: boolean
  readonly disconnectLogLevel: DisconnectLogLevel
  readonly autoBind: ResolvedAutoBind
  /** null: `fatal: false`. */
  readonly fatal: ResolvedFatalOptions | null
}

export const FATAL_DEFAULTS: ResolvedFatalOptions = Object.freeze({
  gracePeriod: 10_000,
  signals: Object.freeze(['SIGINT', 'SIGTERM'] as NodeJS.Signals[]),
  exit: true,
  asyncContext: 'auto',
  isFatal: null,
  onFatal: null
})

const AUTO_BIND_ALL: ResolvedAutoBind = Object.freeze({ undici: true, http: true })
const AUTO_BIND_NONE: ResolvedAutoBind = Object.freeze({ undici: false, http: false })

export const DEFAULTS: ResolvedOptions = Object.freeze({
  abortOnError: true,
  abortOnResponse: true,
  disconnectLogLevel: 'info',
  autoBind: AUTO_BIND_NONE,
  fatal: FATAL_DEFAULTS
})

/** setTimeout's largest delay; a longer one fires at once (with a warning). */
const MAX_TIMER_MS = 2 ** 31 - 1

/** Signals a process can listen for: not SIGKILL / SIGSTOP, which cannot be caught. */
const CATCHABLE_SIGNALS: ReadonlySet<string> = new Set(
  Object.keys(constants.signals).filter((name) => name !== 'SIGKILL' && name !== 'SIGSTOP')
)

const LOG_LEVELS: ReadonlySet<string> = new Set(['trace', 'debug', 'info', 'silent'])

export function describe (value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object'
  return `${typeof value} ${String(value)}`
}

/** The caller's value, or the default when it is absent; an explicit null is a value (and wrong). */
function optionValue<T extends object> (opts: Record<string, unknown>, name: keyof T & string, defaults: T): unknown {
  return opts[name] === undefined ? defaults[name] : opts[name]
}

function booleanOption<T extends object> (opts: Record<string, unknown>, name: keyof T & string, defaults: T, prefix = ''): boolean {
  const value = optionValue(opts, name, defaults)
  if (typeof value !== 'boolean') {
    throw new InvalidOptionError(prefix + name, 'a boolean', describe(value))
  }
  return value
}

/** An integer number of milliseconds a timer can wait, at least `min`; `fallback` when absent. */
export function millisecondsOption (record: Record<string, unknown>, key: string, name: string, fallback: number, min = 0): number {
  const value = record[key] === undefined ? fallback : record[key]
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > MAX_TIMER_MS) {
    throw new InvalidOptionError(name, `an integer number of milliseconds from ${min} to ${MAX_TIMER_MS}`, describe(value))
  }
  return value
}

function gracePeriodOption (opts: Record<string, unknown>): number {
  return millisecondsOption(opts, 'gracePeriod', 'fatal.gracePeriod', FATAL_DEFAULTS.gracePeriod)
}

function signalsOption (opts: Record<string, unknown>): readonly NodeJS.Signals[] {
  const value = optionValue(opts, 'signals', FATAL_DEFAULTS)
  const valid = Array.isArray(value) && value.every((name) => typeof name === 'string' && CATCHABLE_SIGNALS.has(name))
  if (!valid) {
    throw new InvalidOptionError('fatal.signals', "an array of signal names that can be caught, such as ['SIGINT', 'SIGTERM']", describe(value))
  }
  return Object.freeze([...new Set(value as NodeJS.Signals[])])
}

function asyncContextOption (record: Record<string, unknown>): boolean | 'auto' {
  const value = optionValue(record, 'asyncContext', FATAL_DEFAULTS)
  if (typeof value !== 'boolean' && value !== 'auto') {
    throw new InvalidOptionError('fatal.asyncContext', "a boolean or 'auto'", describe(value))
  }
  return value
}

function functionOption<K extends 'isFatal' | 'onFatal'> (opts: Record<string, unknown>, name: K): ResolvedFatalOptions[K] {
  const value = opts[name]
  if (value === undefined) return null
  if (typeof value !== 'function') {
    throw new InvalidOptionError(`fatal.${name}`, 'a function', describe(value))
  }
  return value as ResolvedFatalOptions[K]
}

function fatalOption (opts: Record<string, unknown>): ResolvedFatalOptions | null {
  const value = opts.fatal
  if (value === false) return null
  if (value === true || value === undefined) return FATAL_DEFAULTS
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError('fatal', 'a boolean or an object', describe(value))
  }
  const record = value as Record<string, unknown>
  return Object.freeze({
    gracePeriod: gracePeriodOption(record),
    signals: signalsOption(record),
    exit: booleanOption(record, 'exit', FATAL_DEFAULTS, 'fatal.'),
    asyncContext: asyncContextOption(record),
    isFatal: functionOption(record, 'isFatal'),
    onFatal: functionOption(record, 'onFatal')
  })
}

/**
 * `true` binds every client, an object the ones it names (a key left out is
 * `true`: the object says which to leave out). An unknown key is an error,
 * not ignored: `{ fetch: false }` must not silently bind fetch.
 */
function autoBindOption (opts: Record<string, unknown>): ResolvedAutoBind {
  const value = opts.autoBind
  if (value === undefined || value === false) return AUTO_BIND_NONE
  if (value === true) return AUTO_BIND_ALL
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionError('autoBind', 'a boolean or an object such as { undici: true, http: false }', describe(value))
  }
  const record = value as Record<string, unknown>
  const unknown = Object.keys(record).find((key) => !Object.hasOwn(AUTO_BIND_ALL, key))
  if (unknown !== undefined) {
    throw new InvalidOptionError(`autoBind.${unknown}`, 'absent: autoBind takes undici and http', describe(record[unknown]))
  }
  return Object.freeze({
    undici: booleanOption(record, 'undici', AUTO_BIND_ALL, 'autoBind.'),
    http: booleanOption(record, 'http', AUTO_BIND_ALL, 'autoBind.')
  })
}

function logLevelOption (opts: Record<string, unknown>): DisconnectLogLevel {
  const value = optionValue(opts, 'disconnectLogLevel', DEFAULTS)
  if (typeof value !== 'string' || !LOG_LEVELS.has(value)) {
    throw new InvalidOptionError('disconnectLogLevel', "one of 'trace', 'debug', 'info', 'silent'", describe(value))
  }
  return value as DisconnectLogLevel
}

/**
 * Validates the options once, at registration. Keys this plugin does not own
 * are left alone: Fastify passes its own register options (`prefix`,
 * `logLevel`, ...) through the same object.
 */
export function resolveOptions (opts: unknown): ResolvedOptions {
  if (opts === undefined || opts === null) return DEFAULTS
  if (typeof opts !== 'object' || Array.isArray(opts)) {
    throw new InvalidOptionError('options', 'an object', describe(opts))
  }
  const record = opts as Record<string, unknown>
  return Object.freeze({
    abortOnError: booleanOption(record, 'abortOnError', DEFAULTS),
    abortOnResponse: booleanOption(record, 'abortOnResponse', DEFAULTS),
    disconnectLogLevel: logLevelOption(record),
    autoBind: autoBindOption(record),
    fatal: fatalOption(record)
  })
}
