import { FOREIGN, type ForeignInternal } from './table.js'
import { isNetServer, isPino, NO_CONTROLLER, NO_ON_ABORT, pinoStream, requestClassOf, serverBindings, type RequestInternals } from './lookup.js'

/** The parts of a Fastify app the register-time check reads. */
export interface CheckedApp {
  readonly server: unknown
  readonly log: object
  readonly initialConfig: { readonly http2?: boolean }
}

/**
 * The entries of lib/internals/table.ts an app lacks: what the plugin looked
 * for and did not find. `request` is what was learnt from the app's request
 * class (`requestInternalsOf`). Not a miss: no `request.signal` getter (a
 * Fastify before it has no controller to adopt), a logger that is not pino
 * (nothing to flush but what its own `flush()` does), an HTTP/2 server (its
 * own `close()` is the one the graceful close uses).
 */
export function missingInternals (app: CheckedApp, request: RequestInternals): ForeignInternal[] {
  const missing: ForeignInternal[] = []
  if (requestClassOf(app) === undefined) {
    missing.push(FOREIGN.requestClass)
  } else if (request.getter !== undefined) {
    if (request.controller === NO_CONTROLLER) missing.push(FOREIGN.requestController)
    if (request.onAbort === NO_ON_ABORT) missing.push(FOREIGN.requestOnAbort)
  }
  if (serverBindings(app) === undefined) missing.push(FOREIGN.serverBindings)
  if (isPino(app.log) && pinoStream(app.log) === undefined) missing.push(FOREIGN.pinoStream)
  if (app.initialConfig.http2 !== true && !isNetServer(app.server)) missing.push(FOREIGN.netServerClose)
  return missing
}

/** The logger part the warning uses. */
interface WarnLog {
  warn (fields: object, message: string): void
}

/**
 * Says once, at `warn`, what an app loses because a lookup failed: once per
 * registration, on the app's own logger, where its operator reads (another
 * app of the process may log elsewhere, or run another Fastify). A Fastify or
 * pino upgrade that renames a symbol is then seen at the first boot, not
 * as a request that misbehaves.
 */
export function warnDegraded (log: WarnLog, missing: readonly ForeignInternal[]): void {
  if (missing.length === 0) return
  const lost = missing.map((entry) => `${entry.owner}'s ${entry.name} not found: ${entry.without}`)
  log.warn({ internals: missing.map((entry) => entry.name) }, `fastify-hangup degraded: ${lost.join('; ')}`)
}
