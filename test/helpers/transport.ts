import type http from 'node:http'
import type { Writable } from 'node:stream'
import Fastify, { type FastifyHttpOptions, type FastifyInstance } from 'fastify'
import { tlsMaterial } from './util.js'

/** How the test client reaches the Fastify app. */
export type Transport = 'h1' | 'h1-reuse' | 'https' | 'h2c' | 'h2-tls'

export const TRANSPORTS: readonly Transport[] = ['h1', 'h1-reuse', 'https', 'h2c', 'h2-tls']

export function isHttp2 (transport: Transport): boolean {
  return transport === 'h2c' || transport === 'h2-tls'
}

export function isTls (transport: Transport): boolean {
  return transport === 'https' || transport === 'h2-tls'
}

/**
 * A Fastify app (not yet with the plugin) serving `transport`, logging at info
 * to `logStream`. The transport is chosen at run time; the route code is the
 * same for all, hence the HTTP/1 typing.
 */
export function createApp (transport: Transport, logStream: Writable): FastifyInstance {
  const serverOptions: Record<string, unknown> = {
    logger: { level: 'info', stream: logStream }
  }
  if (isHttp2(transport)) serverOptions.http2 = true
  if (isTls(transport)) {
    const { key, cert } = tlsMaterial()
    serverOptions.https = { key, cert }
  }
  return Fastify(serverOptions as FastifyHttpOptions<http.Server>) as unknown as FastifyInstance
}
