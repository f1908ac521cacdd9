import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { AddressInfo } from 'node:net'
import type { TestContext } from 'node:test'
import hangup from '../../lib/index.js'
import type { FastifyHangupOptions } from '../../lib/options.js'
import { captureLogs, type LogLine } from './logs.js'

// One `within` for every suite: util.ts's (it also takes a cancel signal),
// re-exported beside PATIENCE_MS and until for the suites that import their waits from here.
export { within } from './util.js'

export interface TestApp {
  app: FastifyInstance
  logs: LogLine[]
  /** Log lines above `info` (warn, error, fatal). */
  loud (): LogLine[]
}

/** A Fastify app with the plugin and a captured logger, closed after the test. */
export async function buildApp (t: TestContext, options?: FastifyHangupOptions, fastifyOptions: FastifyServerOptions = {}): Promise<TestApp> {
  const { stream, lines, above } = captureLogs()
  const app = Fastify({ logger: { level: 'trace', stream }, ...fastifyOptions })
  t.after(() => app.close())
  await app.register(hangup, options ?? {})
  return { app, logs: lines, loud: () => above(30) }
}

/** Listens on 127.0.0.1:0 and returns the base URL. */
export async function listen (app: FastifyInstance): Promise<{ url: string, port: number }> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, port }
}

/**
 * How long a test waits for something that must happen before it calls it a
 * failure. Generous on purpose: on a loaded 2-core machine a process start, a
 * drain or an upstream's close can take seconds, and a wait that ends early
 * costs nothing. Where a test proves that something happens *soon* (not at a
 * keep-alive timeout, not at a grace deadline, not when an upstream would
 * have answered), what it rules out is set to take longer than this
 * (NEVER_MS), so the proof does not depend on the machine's speed.
 */
export const PATIENCE_MS = 30_000

/** Longer than any wait of a test: a timeout, deadline or upstream delay a test proves is *not* reached. */
export const NEVER_MS = 4 * PATIENCE_MS

/** Resolves when `check()` is true; rejects with `what` after `timeoutMs`. Polls every 5 ms. */
export async function until (check: () => boolean, what: string, timeoutMs = PATIENCE_MS): Promise<void> {
  const started = performance.now()
  while (!check()) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
