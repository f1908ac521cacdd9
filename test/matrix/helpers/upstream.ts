import { EventEmitter, once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { until } from '../../helpers/util.js'

/** What the upstream saw of one request (created on arrival, updated as it goes). */
export interface MatrixUpstreamRecord {
  method: string
  url: string
  bodyBytes: number
  /** The request body was received to its end. */
  bodyEnded: boolean
  /** 1 KiB chunks of the answer written so far. */
  chunksSent: number
  /** The response closed before the upstream finished it; null while open. */
  closedEarly: boolean | null
  startedAt: number
  closedAt: number
}

export interface MatrixUpstreamOptions {
  /** ms of "work" after the request body ended, before the answer starts. */
  delayMs?: number
  /** Answer with this many 1 KiB chunks, `chunkEveryMs` apart (0: a small 'done' body). */
  chunks?: number
  chunkEveryMs?: number
}

export interface MatrixUpstream {
  url: string
  /** In arrival order. */
  records: MatrixUpstreamRecord[]
  /** Emits 'change' whenever a record changes. */
  events: EventEmitter
  /** Waits until `check(records)` holds; fails after `ms` with `what`. */
  waitFor (check: (records: MatrixUpstreamRecord[]) => boolean, ms: number, what: string, cancel?: AbortSignal): Promise<void>
  /** The n-th arrived request (1-based) once its response closed. */
  closed (n: number, ms: number): Promise<MatrixUpstreamRecord>
  /** Connections the upstream accepted. */
  connections (): number
  close (): Promise<void>
}

/**
 * Like test/helpers/upstream.ts, with events for the moments a test has to
 * wait for: a request arrived, part of its body arrived, its body ended, the
 * first chunk of the answer went out. The "work" timer starts once the
 * request body ended, so an upload cut half-way never gets an answer.
 */
export async function startMatrixUpstream (opts: MatrixUpstreamOptions = {}): Promise<MatrixUpstream> {
  const delayMs = opts.delayMs ?? 0
  const chunks = opts.chunks ?? 0
  const chunkEveryMs = opts.chunkEveryMs ?? 20
  const records: MatrixUpstreamRecord[] = []
  const events = new EventEmitter()
  events.setMaxListeners(0)
  let connections = 0
  const changed = (): void => { events.emit('change') }

  const server = http.createServer((req, res) => {
    const record: MatrixUpstreamRecord = {
      method: req.method ?? '',
      url: req.url ?? '',
      bodyBytes: 0,
      bodyEnded: false,
      chunksSent: 0,
      closedEarly: null,
      startedAt: performance.now(),
      closedAt: 0
    }
    records.push(record)
    let timer: NodeJS.Timeout | undefined
    req.on('data', (chunk: Buffer) => {
      record.bodyBytes += chunk.length
      changed()
    })
    req.on('error', () => {})
    req.on('end', () => {
      record.bodyEnded = true
      timer = setTimeout(answer, delayMs)
      changed()
    })
    function answer (): void {
      timer = undefined
      if (chunks === 0) {
        res.end('done')
        return
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      const tick = (): void => {
        timer = undefined
        if (res.destroyed) return
        res.write(Buffer.alloc(1024, 120))
        record.chunksSent++
        if (record.chunksSent === chunks) res.end()
        else timer = setTimeout(tick, chunkEveryMs)
        changed()
      }
      tick()
    }
    res.on('close', () => {
      if (timer !== undefined) clearTimeout(timer)
      record.closedEarly = !res.writableEnded
      record.closedAt = performance.now()
      changed()
    })
  })
  server.on('connection', () => { connections++ })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo

  async function waitFor (check: (records: MatrixUpstreamRecord[]) => boolean, ms: number, what: string, cancel?: AbortSignal): Promise<void> {
    await until(events, 'change', () => check(records), ms, `the upstream: ${what}`, cancel)
  }

  return {
    url: `http://127.0.0.1:${port}`,
    records,
    events,
    waitFor,
    async closed (n: number, ms: number): Promise<MatrixUpstreamRecord> {
      await waitFor((r) => r.length >= n && r[n - 1]?.closedEarly !== null, ms, `request #${n} to close (its answer takes ${delayMs} ms + ${chunks} chunks: was it cancelled?)`)
      return records[n - 1] as MatrixUpstreamRecord
    },
    connections: () => connections,
    async close () {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    }
  }
}
