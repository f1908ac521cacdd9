import { once } from 'node:events'
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { PATIENCE_MS } from './app.js'

/** What the upstream saw of one request. */
export interface UpstreamRecord {
  method: string
  url: string
  bodyBytes: number
  /** The connection or stream closed before the upstream finished its answer. */
  closedEarly: boolean
  startedAt: number
  closedAt: number
}

export interface Upstream {
  url: string
  records: UpstreamRecord[]
  /** Requests that reached the upstream so far (records are added when they close). */
  received (): number
  /** Resolves with the n-th record (1-based) once that request's response closed; rejects after `timeoutMs`. */
  closed (n: number, timeoutMs?: number): Promise<UpstreamRecord>
  close (): Promise<void>
}

export interface UpstreamOptions {
  /** ms of "work" before the answer; the timer is cleared if the client leaves. */
  delayMs?: number
  /** Stream this many chunks of 1 KiB, `chunkEveryMs` apart, after the delay. */
  chunks?: number
  chunkEveryMs?: number
  /** Serve HTTPS with this key and certificate (tlsMaterial() in util.ts); the URL is then https://. */
  tls?: { key: Buffer, cert: Buffer }
}

/**
 * A slow upstream on 127.0.0.1:0 that records what it saw: whether each
 * request's response closed before it was finished, and when.
 */
export async function startUpstream (opts: UpstreamOptions = {}): Promise<Upstream> {
  const delayMs = opts.delayMs ?? 1000
  const chunks = opts.chunks ?? 0
  const chunkEveryMs = opts.chunkEveryMs ?? 20
  const records: UpstreamRecord[] = []
  const waiters: Array<() => void> = []
  let received = 0
  const handler: http.RequestListener = (req, res) => {
    received++
    const record: UpstreamRecord = { method: req.method ?? '', url: req.url ?? '', bodyBytes: 0, closedEarly: false, startedAt: performance.now(), closedAt: 0 }
    req.on('data', (chunk: Buffer) => { record.bodyBytes += chunk.length })
    let timer: NodeJS.Timeout | undefined = setTimeout(() => {
      timer = undefined
      if (chunks === 0) {
        res.end('done')
        return
      }
      let sent = 0
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      const tick = (): void => {
        if (res.destroyed) return
        res.write(Buffer.alloc(1024, 120))
        if (++sent === chunks) res.end()
        else timer = setTimeout(tick, chunkEveryMs)
      }
      tick()
    }, delayMs)
    res.on('close', () => {
      if (timer !== undefined) clearTimeout(timer)
      record.closedEarly = !res.writableEnded
      record.closedAt = performance.now()
      records.push(record)
      for (const wake of waiters.splice(0)) wake()
    })
  }
  const server = opts.tls === undefined ? http.createServer(handler) : https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo

  async function closed (n: number, timeoutMs = PATIENCE_MS): Promise<UpstreamRecord> {
    const started = performance.now()
    while (records.length < n) {
      const left = timeoutMs - (performance.now() - started)
      if (left <= 0) throw new Error(`upstream saw ${records.length} closed requests, expected ${n} within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
    return records[n - 1] as UpstreamRecord
  }

  return {
    url: `${opts.tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`,
    records,
    received: () => received,
    closed,
    async close () {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    }
  }
}
