import { Writable } from 'node:stream'

/**
 * One pino log line, parsed: from an app in this process (captureLogs) or
 * from a child's stdout (spawnLogged in child.ts). Pino writes `level` on
 * every line; `msg` only when one was given.
 */
export interface LogLine {
  level: number
  msg?: string
  reqId?: string
  /** The child fixtures' app name (fatal-app's `first`/`second`). */
  app?: string
  err?: { message?: string, type?: string }
  [key: string]: unknown
}

/** A pino destination that keeps every line, for asserting what was logged and at which level. */
export function captureLogs (): { stream: Writable, lines: LogLine[], above (level: number): LogLine[] } {
  const lines: LogLine[] = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) {
        if (line !== '') lines.push(JSON.parse(line) as LogLine)
      }
      cb()
    }
  })
  return { stream, lines, above: (level: number) => lines.filter((l) => l.level > level) }
}

/** Pino's levels, as numbers in its lines. */
export const INFO = 30
export const WARN = 40
export const ERROR = 50
export const FATAL = 60
