import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { AddressInfo } from 'node:net'
import type { TestContext } from 'node:test'
import hangup from '../../lib/index.js'
import type { FastifyHangupOptions } from '../../lib/options.js'
import { captureLogs, type LogLine } from './logs.js'

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

/** Resolves when `check()` is true; rejects with `what` after `timeoutMs`. Polls every 5 ms. */
export async function until (check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const started = performance.now()
  while (!check()) {
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** Rejects after `ms` with a message naming what was awaited. */
export function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
