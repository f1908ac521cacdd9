import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { AlreadyRegisteredError } from './errors.js'
import { FastifySignalInternals } from './fastify-internals.js'
import { createHooks } from './hooks.js'
import { kLifecycle, type Runtime } from './lifecycle.js'
import { resolveOptions, type FastifyHangupOptions } from './options.js'
import { createSignalGetter } from './signal.js'
import { Counters, type HangupStats } from './stats.js'

/** `fastify.hangup`: the plugin's state for this app. */
export interface HangupDecorator {
  /** A snapshot of the counters: requests in flight, hang-ups by phase. */
  stats (): HangupStats
}

declare module 'fastify' {
  interface FastifyInstance {
    hangup: HangupDecorator
  }
}

async function fastifyHangupPlugin (fastify: FastifyInstance, opts: FastifyHangupOptions): Promise<void> {
  if (fastify.hasDecorator('hangup')) throw new AlreadyRegisteredError()
  const options = resolveOptions(opts)
  const counters = new Counters()
  const runtime: Runtime = {
    counters,
    abortOnResponse: options.abortOnResponse,
    logLevel: options.disconnectLogLevel
  }
  const internals = new FastifySignalInternals()
  const signalGetter = createSignalGetter(internals)
  const hooks = createHooks(runtime, internals, options.abortOnError)

  fastify.decorateRequest(kLifecycle, null)
  fastify.decorateRequest('signal', { getter: signalGetter })
  fastify.decorate('hangup', {
    stats: () => counters.snapshot()
  } satisfies HangupDecorator)
  fastify.addHook('onRequest', hooks.onRequest)
  fastify.addHook('onError', hooks.onError)
}

/** The plugin. Register it before the routes whose requests it should follow. */
export const fastifyHangup: FastifyPluginAsync<FastifyHangupOptions> = fp(fastifyHangupPlugin, {
  fastify: '5.x',
  name: 'fastify-hangup'
})

export default fastifyHangup

export { ClientDisconnectedError, ResponseSentError, InvalidOptionError, AlreadyRegisteredError } from './errors.js'
export type { DisconnectPhase } from './errors.js'
export type { FastifyHangupOptions, DisconnectLogLevel } from './options.js'
export type { HangupStats } from './stats.js'
