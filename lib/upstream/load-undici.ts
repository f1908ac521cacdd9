import { InvalidOptionError } from '../errors.js'
import type { UndiciGlobals } from './auto-bind.js'

/**
 * The user's undici (a peer dependency): the copy whose global dispatcher
 * their calls use. `option`: the option that asked for it (`autoBind`, or
 * `autoBind.undici` in the object form).
 */
export async function loadUndici (option = 'autoBind', parts: readonly string[] = UNDICI_PARTS): Promise<UndiciGlobals> {
  try {
    return await loadDispatcherParts(parts) ?? await import('undici') as unknown as UndiciGlobals
  } catch (cause) {
    throw undiciLoadError(cause, process.versions.node, option)
  }
}

/**
 * The modules of undici that hold what `autoBind` uses, the same files its
 * index loads (undici 7 and 8; undici has no `exports` map). Not the index:
 * it also loads undici's fetch, and a server with that module loaded spends
 * several times longer in Node's `process.nextTick` (docs/benchmarks.md#what-loading-undici-costs).
 * An app that uses undici's fetch has that cost anyway; one that calls
 * `undici.request`-style APIs loads the index itself.
 */
export const UNDICI_PARTS = ['undici/lib/global.js', 'undici/lib/dispatcher/dispatcher.js', 'undici/lib/dispatcher/agent.js'] as const

/** Those parts, or null where they cannot be loaded or are not what they were (a future layout): then the index. */
export async function loadDispatcherParts (parts: readonly string[] = UNDICI_PARTS): Promise<UndiciGlobals | null> {
  try {
    const [global, dispatcher, agent] = await Promise.all(parts.map(async (part) => (await import(part) as { default: unknown }).default))
    const { getGlobalDispatcher, setGlobalDispatcher } = Object(global) as Partial<UndiciGlobals>
    if (typeof getGlobalDispatcher !== 'function' || typeof setGlobalDispatcher !== 'function') return null
    if (typeof dispatcher !== 'function' || typeof agent !== 'function' || !(agent.prototype instanceof dispatcher)) return null
    return { getGlobalDispatcher, setGlobalDispatcher, Dispatcher: dispatcher as UndiciGlobals['Dispatcher'], Agent: agent as UndiciGlobals['Agent'] }
  } catch {
    return null
  }
}

/** The oldest Node undici 8 loads on (its `engines`); undici 7 loads on every Node this package supports. */
const UNDICI_8_MIN_NODE = '22.19'

/**
 * Why undici could not be loaded, with the error as `cause`: it is missing,
 * or it is installed and threw on load. The usual case of the second:
 * `npm install undici` on Node 20 installs undici 8, which needs Node 22.19
 * and fails with a TypeError from its own code that says nothing of versions
 * ("Cannot read properties of undefined (reading 'bind')", undici 8.14 on
 * Node 20.20).
 */
export function undiciLoadError (cause: unknown, nodeVersion: string = process.versions.node, option = 'autoBind'): InstanceType<typeof InvalidOptionError> {
  const why = isNotFound(cause)
    ? 'it is not installed (npm install undici)'
    : `it threw ${describe(cause)}${olderThan(nodeVersion, UNDICI_8_MIN_NODE) ? `; undici 8 requires Node >= ${UNDICI_8_MIN_NODE}, this is Node ${nodeVersion}: npm install undici@7` : ''}`
  const error = new InvalidOptionError(option, `false when undici cannot be loaded: ${why}`, 'true')
  error.cause = cause
  return error
}

function isNotFound (cause: unknown): boolean {
  return (cause as { code?: unknown } | null)?.code === 'ERR_MODULE_NOT_FOUND'
}

function describe (cause: unknown): string {
  return cause instanceof Error ? `(${cause.name}: ${cause.message})` : `(${String(cause)})`
}

/** `version` (Node's "20.20.2") before `minimum` ("22.19"), by major then minor. */
function olderThan (version: string, minimum: string): boolean {
  const [major, minor] = version.split('.').map(Number)
  const [minMajor, minMinor] = minimum.split('.').map(Number)
  return major !== minMajor ? major < minMajor : minor < minMinor
}
