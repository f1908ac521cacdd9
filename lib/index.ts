import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { bindGlobalDispatcher } from './upstream/auto-bind.js'
import { bindHttpClients } from './upstream/http-client.js'
import { loadUndici } from './upstream/load-undici.js'
import { AlreadyRegisteredError } from './errors.js'
import { requestInternalsOf } from './internals/lookup.js'
import { missingInternals, warnDegraded } from './internals/check.js'
import { FatalApp } from './shutdown/fatal-app.js'
import { GracefulClose } from './shutdown/graceful-close.js'
import { createHooks } from './request/hooks.js'
import { kLifecycle, type Runtime } from './request/lifecycle.js'
import { FATAL_DEFAULTS, resolveOptions, type FastifyHangupOptions } from './options.js'
import { processGuard } from './shutdown/process-guard.js'
import { createSignalGetter } from './request/signal.js'
import { wantsContext } from './request/context.js'
import { Counters, type HangupStats } from './stats.js'
import { publishFatal } from './events/channels.js'

/** `fastify.hangup`: the plugin's state for this app. */
export interface HangupDecorator {
  /** A snapshot of the counters: requests in flight, hang-ups by phase, fatal errors. */
  stats (): HangupStats
  /** True once a graceful close started (for readiness probes). */
  readonly closing: boolean
  /**
   * Starts the graceful close by hand; resolves when the app is closed (with
   * `fatal.exit`, the process then exits). With an error, the close is a
   * fatal one: the error is logged at `fatal` and the exit code is 1.
   */
  shutdown (error?: unknown): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    hangup: HangupDecorator
  }
  // Fastify declares `request.signal` itself from 5.8 on, exactly so (the two
  // declarations merge); before 5.8 only this says the property exists. The
  // plugin defines it on every 5.x (the getter below).
  interface FastifyRequest {
    readonly signal: AbortSignal
  }
}

async function fastifyHangupPlugin (fastify: FastifyInstance, opts: FastifyHangupOptions): Promise<void> {
  if (fastify.hasDecorator('hangup')) throw new AlreadyRegisteredError()
  const options = resolveOptions(opts)
  const fatal = options.fatal
  const counters = new Counters()
  const graceful = new GracefulClose(fastify, (fatal ?? FATAL_DEFAULTS).gracePeriod)
  const runtime: Runtime = {
    counters,
    abortOnResponse: options.abortOnResponse,
    logLevel: options.disconnectLogLevel,
    log: fastify.log,
    close: graceful
  }
  const guard = processGuard()
  const fatalApp = fatal === null ? null : new FatalApp(fatal, graceful, counters, fastify.log)
  // Learnt now, so a Fastify or pino that moved one says so at boot (lib/internals/table.ts).
  const internals = requestInternalsOf(fastify)
  warnDegraded(fastify.log, missingInternals(fastify, internals))
  // The bound calls find their request through the same context as a crash.
  const autoBind = options.autoBind
  const asyncContext = wantsContext(fatal?.asyncContext, autoBind.undici || autoBind.http)
  const hooks = createHooks(runtime, internals, {
    abortOnError: options.abortOnError,
    asyncContext,
    isFatal: fatal?.isFatal ?? null,
    guard: fatal === null ? null : guard
  })

  /** Through the process guard when the process exits after the close: every app there closes cleanly. */
  function shutdown (error?: unknown): Promise<void> {
    if (fatalApp !== null && fatalApp.exit && guard.has(fatalApp)) {
      if (error === undefined) return guard.shutdown()
      guard.fatal(error, 'shutdown', null, false)
    } else if (error !== undefined) {
      counters.fatal++
      fastify.log.fatal({ err: error }, 'shutdown with an error: closing gracefully')
      publishFatal(error, null)
    }
    return graceful.close(error === undefined ? 'shutdown' : 'fatal')
  }

  fastify.decorateRequest(kLifecycle, null)
  fastify.decorateRequest('signal', { getter: createSignalGetter(internals) })
  fastify.decorate('hangup', {
    stats: () => counters.snapshot(),
    get closing () {
      return graceful.closing
    },
    shutdown
  } satisfies HangupDecorator)
  fastify.addHook('onRequest', hooks.onRequest)
  fastify.addHook('onError', hooks.onError)
  // A `fastify.close()` from another handler of the same crash or signal
  // (close-with-grace, a hand-rolled one) joins the graceful close: it
  // returns once the drain is over (docs/coexistence.md).
  fastify.addHook('preClose', () => graceful.drainOver())
  if (asyncContext) fastify.addHook('preValidation', hooks.preValidation)
  if (autoBind.undici || autoBind.http) {
    // undici is loaded now, so a missing undici rejects register; bound from
    // ready to close, like the process listeners, so an app that never boots
    // leaves the global dispatcher and Node's channels alone.
    const undici = autoBind.undici ? await loadUndici(typeof opts.autoBind === 'object' ? 'autoBind.undici' : 'autoBind') : null
    const releases: Array<() => void> = []
    fastify.addHook('onReady', (done) => {
      if (undici !== null) releases.push(bindGlobalDispatcher(undici))
      if (autoBind.http) releases.push(bindHttpClients())
      done()
    })
    fastify.addHook('onClose', (_instance, done) => {
      for (const release of releases.splice(0)) release()
      done()
    })
  }
  if (fatal?.isFatal != null) fastify.addHook('onSend', hooks.onSend)
  // Process listeners exist while an app is ready and not closed. With
  // `fatal: false` the app only watches: its own cancellations must not
  // crash the process, every other error keeps Node's handling.
  fastify.addHook('onReady', (done) => {
    if (fatalApp === null) guard.watch(runtime)
    else guard.add(fatalApp)
    done()
  })
  fastify.addHook('onClose', (_instance, done) => {
    if (fatalApp === null) guard.unwatch(runtime)
    else guard.remove(fatalApp)
    done()
  })
}

/** The plugin. Register it before the routes whose requests it should follow. */
export const fastifyHangup: FastifyPluginAsync<FastifyHangupOptions> = fp(fastifyHangupPlugin, {
  fastify: '5.x',
  name: 'fastify-hangup'
})

export default fastifyHangup

export { interceptor, detach } from './upstream/interceptor.js'
export type { HangupInterceptor, DispatchHandler, DispatchController, DispatchFunction } from './upstream/interceptor.js'
export type { CancelReason, UpstreamClient, ClientCounts } from './stats.js'
export { ClientDisconnectedError, ResponseSentError, ResponseDestroyedError, ServerClosingError, InvalidOptionError, AlreadyRegisteredError } from './errors.js'
export type { DisconnectPhase } from './errors.js'
export type { FastifyHangupOptions, FatalOptions, AutoBindOptions, DisconnectLogLevel } from './options.js'
export type { HangupStats } from './stats.js'
export { channels } from './events/channels.js'
export type { HangupEvent, CancelEvent, FatalEvent, ClosingEvent, CancelClient } from './events/channels.js'
export type { CloseCause } from './shutdown/graceful-close.js'
