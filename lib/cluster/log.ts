import { hostname } from 'node:os'
import type { ClusterLogger } from './options.js'

const LEVELS = { info: 30, warn: 40, error: 50 } as const

/** An error as pino's serializer writes it: an Error's fields are not enumerable, so JSON would drop them. */
function serializable (value: unknown): unknown {
  if (!(value instanceof Error)) return value
  return { type: value.name, message: value.message, stack: value.stack, code: (value as NodeJS.ErrnoException).code }
}

function line (level: keyof typeof LEVELS, object: object, message: string): void {
  const fields: Record<string, unknown> = { level: LEVELS[level], time: Date.now(), pid: process.pid, hostname: hostname() }
  for (const [key, value] of Object.entries(object)) fields[key] = serializable(value)
  fields.msg = message
  // Synchronous, like pino's default destination: the primary's last line
  // is written before its `process.exit()`.
  process.stdout.write(JSON.stringify(fields) + '\n')
}

/**
 * The primary's logger when none is given: pino-style JSON lines on stdout,
 * so one log pipeline reads the primary and the workers' Fastify loggers.
 * Not pino itself: it is not a dependency of the plugin, and the primary logs
 * a handful of lines.
 */
export const defaultClusterLogger: ClusterLogger = Object.freeze({
  info: (object: object, message: string) => line('info', object, message),
  warn: (object: object, message: string) => line('warn', object, message),
  error: (object: object, message: string) => line('error', object, message)
})
