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
}

/** Options after validation: every field present, read once at registration. */
export interface ResolvedOptions {
  readonly abortOnError: boolean
  readonly abortOnResponse: boolean
  readonly disconnectLogLevel: DisconnectLogLevel
}

export const DEFAULTS: ResolvedOptions = Object.freeze({
  abortOnError: true,
  abortOnResponse: true,
  disconnectLogLevel: 'info'
})

const LOG_LEVELS: ReadonlySet<string> = new Set(['trace', 'debug', 'info', 'silent'])

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object'
  return `${typeof value} ${String(value)}`
}

/** The caller's value, or the default when it is absent; an explicit null is a value (and wrong). */
function optionValue (opts: Record<string, unknown>, name: keyof ResolvedOptions): unknown {
  return opts[name] === undefined ? DEFAULTS[name] : opts[name]
}

function booleanOption (opts: Record<string, unknown>, name: keyof ResolvedOptions): boolean {
  const value = optionValue(opts, name)
  if (typeof value !== 'boolean') {
    throw new InvalidOptionError(name, 'a boolean', describe(value))
  }
  return value
}

function logLevelOption (opts: Record<string, unknown>): DisconnectLogLevel {
  const value = optionValue(opts, 'disconnectLogLevel')
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
    abortOnError: booleanOption(record, 'abortOnError'),
    abortOnResponse: booleanOption(record, 'abortOnResponse'),
    disconnectLogLevel: logLevelOption(record)
  })
}
