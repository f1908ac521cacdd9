import { EventEmitter, once } from 'node:events'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { TestContext } from 'node:test'
import type { Random } from './random.js'
import { PATIENCE_MS } from '../../helpers/app.js'
import { until } from '../../helpers/util.js'

/** How long any single wait of the fault suite may take before the case fails. */
/** Every wait of the fault suite: generous, since a loaded machine is slow (see PATIENCE_MS). */
export const WAIT_MS = PATIENCE_MS

/**
 * What the upstream does once it has read a request's body:
 * - ok: answers 200 'ok';
 * - stall: never answers;
 * - reset: resets the connection (RST);
 * - garbage: writes seeded random bytes that are not HTTP, then closes;
 * - midbody: answers 200 with Content-Length 64 KiB, sends 4 KiB, then closes;
 * - partial: answers 200 (chunked) with 8 KiB, 1 KiB every 5 ms (so a client
 *   reading it leaves while it flows), then stalls.
 * With `?hold` in the URL, the fault itself (for midbody: the close after the
 * partial body) waits for `release()`.
 */
export type Fault = 'ok' | 'stall' | 'reset' | 'garbage' | 'midbody' | 'partial'

export const PARTIAL_BYTES = 8 * 1024

/** How one request ended at the upstream. */
export type UpstreamEnd =
  | 'open'
  /** The upstream finished its answer. */
  | 'answered'
  /** The upstream broke the connection itself (reset, garbage, midbody). */
  | 'faulted'
  /** The caller (the app's undici) closed it first: the upstream call was cancelled. */
  | 'cancelled'

export interface FaultRecord {
  fault: Fault
  url: string
  bodyBytes: number
  bodyEnded: boolean
  end: UpstreamEnd
  /** `release()` was called while this request was open: its held fault runs (now, or when it is due). */
  released: boolean
}

export interface FaultUpstream {
  url: string
  records: FaultRecord[]
  /** Emits 'change' on every update of a record. */
  events: EventEmitter
  waitFor (check: (records: FaultRecord[]) => boolean, what: string, ms?: number): Promise<void>
  /** Carries out the held faults (`?hold`) of the requests open now, those due and those still to come. */
  release (): void
  close (): Promise<void>
}

/** An upstream on 127.0.0.1:0 that fails the way each request's path asks (`/reset`, `/garbage?hold`). */
export async function startFaultUpstream (t: TestContext, random: Random): Promise<FaultUpstream> {
  const records: FaultRecord[] = []
  const events = new EventEmitter()
  events.setMaxListeners(0)
  const changed = (): void => { events.emit('change') }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://upstream')
    const fault = url.pathname.slice(1) as Fault
    const record: FaultRecord = { fault, url: req.url ?? '', bodyBytes: 0, bodyEnded: false, end: 'open', released: false }
    records.push(record)
    const held = url.searchParams.has('hold')
    req.on('data', (chunk: Buffer) => { record.bodyBytes += chunk.length; changed() })
    req.on('error', () => {})
    req.on('end', () => {
      record.bodyEnded = true
      changed()
      answer(fault, record, req, res, held)
    })
    res.on('close', () => {
      if (record.end === 'open') record.end = 'cancelled'
      changed()
    })
    changed()
  })

  function whenReleased (record: FaultRecord, action: () => void): void {
    if (record.released) action()
    else events.once(`release:${records.indexOf(record)}`, action)
  }

  function breakWith (record: FaultRecord, socket: Socket, action: () => void): void {
    if (socket.destroyed) return
    record.end = 'faulted'
    action()
  }

  function trickle (res: http.ServerResponse, chunks: number): void {
    if (chunks === 0 || res.destroyed) return
    res.write(Buffer.alloc(1024, 112))
    setTimeout(trickle, 5, res, chunks - 1)
  }

  function answer (fault: Fault, record: FaultRecord, req: http.IncomingMessage, res: http.ServerResponse, held: boolean): void {
    const socket = req.socket
    const act = (action: () => void): void => { if (held) whenReleased(record, action); else action() }
    switch (fault) {
      case 'ok':
        record.end = 'answered'
        res.end('ok')
        return
      case 'reset':
        act(() => breakWith(record, socket, () => socket.resetAndDestroy()))
        return
      case 'garbage':
        // Not HTTP: a NUL first, then seeded random bytes (undici's parser fails on the first byte).
        act(() => breakWith(record, socket, () => socket.end(Buffer.concat([Buffer.from([0]), random.bytes(random.int(16, 256))]))))
        return
      case 'midbody':
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 64 * 1024 })
        res.write(Buffer.alloc(4096, 109), () => act(() => breakWith(record, socket, () => socket.destroy())))
        return
      case 'partial':
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        trickle(res, PARTIAL_BYTES / 1024)
        return
      case 'stall':
        return
      default:
        res.writeHead(404).end()
    }
  }

  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  const upstream: FaultUpstream = {
    url: `http://127.0.0.1:${port}`,
    records,
    events,
    waitFor: (check, what, ms = WAIT_MS) => until(events, 'change', () => check(records), ms, `the upstream: ${what}`),
    release () {
      for (const [i, record] of records.entries()) {
        if (record.end !== 'open' || record.released) continue
        record.released = true
        events.emit(`release:${i}`)
      }
    },
    async close () {
      server.closeAllConnections()
      server.close()
      await once(server, 'close')
    }
  }
  t.after(() => upstream.close())
  return upstream
}
