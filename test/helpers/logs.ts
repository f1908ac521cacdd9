import { Writable } from 'node:stream'

export interface LogLine {
  level: number
  msg: string
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

export const INFO = 30
