import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { bindGlobalDispatcher, type UndiciGlobals } from './upstream/auto-bind.js'
import { AlreadyRegisteredError, InvalidOptionError } from './errors.js'
import { FastifySignalInternals } from './internals/lookup.js'
import { FatalApp } from './shutdown/fatal-app.js'
import { GracefulClose } from './shutdown/graceful-close.js'
import { createHooks } from './request/hooks.js'
import { kLifecycle, type Runtime } from './request/lifecycle.js'
import { FATAL_DEFAULTS, resolveOptions, type FastifyHangupOptions } from './options.js'
import { processGuard } from './shutdown/process-guard.js'
import { createSignalGetter } from './request/signal.js'
import { Counters, type HangupStats } from './stats.js'

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
  const internals = new FastifySignalInternals()
  // The interceptor finds the request through the same context as a crash.
  const asyncContext = fatal?.asyncContext === true || options.autoBind
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
  if (options.autoBind) {
    // Loaded now, so a missing undici rejects register; bound from ready to
    // close, like the process listeners, so an app that never boots leaves
    // the global dispatcher alone.
    const undici = await loadUndici()
    let release = noop
    fastify.addHook('onReady', (done) => {
      release = bindGlobalDispatcher(undici)
      done()
    })
    fastify.addHook('onClose', (_instance, done) => {
      release()
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

function noop (): void {}

/** The user's undici (a peer dependency): the copy whose global dispatcher their calls use. */
async function loadUndici (): Promise<UndiciGlobals> {
  try {
    return await import('undici') as unknown as UndiciGlobals
  } catch {
    throw new InvalidOptionError('autoBind', 'false when undici cannot be loaded (install it: npm install undici)', 'true')
  }
}

/** The plugin. Register it before the routes whose requests it should follow. */
export const fastifyHangup: FastifyPluginAsync<FastifyHangupOptions> = fp(fastifyHangupPlugin, {
  fastify: '5.x',
  name: 'fastify-hangup'
})

export default fastifyHangup

export { interceptor, detach } from './upstream/interceptor.js'
export type { HangupInterceptor, DispatchHandler, DispatchController, DispatchFunction } from './upstream/interceptor.js'
export type { CancelReason } from './stats.js'
export { ClientDisconnectedError, ResponseSentError, ResponseDestroyedError, ServerClosingError, InvalidOptionError, AlreadyRegisteredError } from './errors.js'
export type { DisconnectPhase } from './errors.js'
export type { FastifyHangupOptions, FatalOptions, DisconnectLogLevel } from './options.js'
export type { HangupStats } from './stats.js'
