import cluster from 'node:cluster'
import { createServer } from 'node:net'
import { attempt } from '../shutdown/attempt.js'
import type { CloseCause } from '../shutdown/graceful-close.js'

/**
 * The messages between a cluster worker's plugin and the primary of
 * `startCluster()`.
 *
 * worker → primary, as its close starts: `{ cmd: CLOSING_MESSAGE_CMD, cause, pid, reqId?, gracePeriod }`,
 * so the primary forks the replacement during the drain (any primary can use
 * it). `reqId`: the request whose error was fatal, when it is known;
 * `gracePeriod`: the longest of the worker's apps.
 *
 * primary → worker: `{ cmd: STOP_ACCEPTING_CMD }` once another worker listens.
 * In Node's round-robin cluster the primary closes the shared listening
 * socket when its last worker stops listening (RoundRobinHandle.remove in
 * Node's lib/internal/cluster/round_robin_handle.js), and new connections are
 * then refused until a replacement listens (0.3 s on a quiet machine, 25 s
 * seen on a busy one), on another port if it listens on port 0. A worker of
 * `startCluster()` therefore keeps accepting (each new connection served with
 * `Connection: close`) until the primary says another worker is there, or
 * that killTimeout is near (lib/cluster/supervisor.ts).
 */
export const CLOSING_MESSAGE_CMD = 'fastify-hangup:closing'
export const STOP_ACCEPTING_CMD = 'fastify-hangup:stop-accepting'

/** The closing message, as the worker sends it and the primary reads it. */
export interface ClosingMessage {
  cmd: typeof CLOSING_MESSAGE_CMD
  cause: CloseCause
  pid: number
  /** The request whose error was fatal, when the worker knows it. */
  reqId?: string
  /** The worker's `fatal.gracePeriod` (absent from a worker of an older version). */
  gracePeriod?: number
}

export function isClosingMessage (message: unknown): message is ClosingMessage {
  return isCommand(message, CLOSING_MESSAGE_CMD)
}

/** Set by `startCluster()`'s primary in its workers' environment: it answers the closing message. */
export const PRIMARY_ENV = 'FASTIFY_HANGUP_PRIMARY'

/**
 * worker → primary, drained, before its exit: `{ cmd: DRAINED_MESSAGE_CMD }`;
 * primary → worker: `{ cmd: EXIT_CMD }`. Node's primary hands a connection
 * to a worker with an IPC message and keeps its own copy open until the
 * worker answers; a worker that exits with such a message unread leaves that
 * connection open and unanswered for good (a client hangs until its
 * timeout). The primary reads the worker's listener close before the drained
 * message, and the worker reads every connection handed to it before the
 * answer (refusing them, so the primary passes them on): then it can exit.
 */
export const DRAINED_MESSAGE_CMD = 'fastify-hangup:drained'
export const EXIT_CMD = 'fastify-hangup:exit'

/** The longest wait for the primary's answer to the drained message. */
const EXIT_HANDSHAKE_MAX_MS = 1000

export function isCommand (message: unknown, cmd: string): boolean {
  return typeof message === 'object' && message !== null && (message as { cmd?: unknown }).cmd === cmd
}

function underStartCluster (): boolean {
  return cluster.isWorker && process.connected && process.env[PRIMARY_ENV] === '1'
}

/** Resolves when the primary sends `cmd`, when the channel closes, or after `timeoutMs` (if given). */
function primaryCommand (cmd: string, timeoutMs?: number): Promise<void> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined
    const done = (): void => {
      clearTimeout(timer)
      process.removeListener('message', onMessage)
      process.removeListener('disconnect', done)
      resolve()
    }
    const onMessage = (message: unknown): void => { if (isCommand(message, cmd)) done() }
    process.on('message', onMessage)
    process.once('disconnect', done)
    if (timeoutMs !== undefined) timer = setTimeout(done, timeoutMs)
  })
}

/**
 * Before the exit of a drained cluster worker: see DRAINED_MESSAGE_CMD.
 * Other primaries (pm2's cluster mode, an application's own) do not answer
 * that message; the one request of Node's cluster protocol that any primary
 * answers is a listen, so a throwaway listen on 127.0.0.1:0 is the round
 * trip there (pm2: 2 connections left hanging per 12 reloads under load
 * without it, 0 in 45 with it).
 */
export function exitHandshake (): Promise<void> {
  if (!cluster.isWorker || !process.connected) return Promise.resolve()
  if (!underStartCluster()) return listenRoundTrip()
  const answered = primaryCommand(EXIT_CMD, EXIT_HANDSHAKE_MAX_MS)
  attempt(() => process.send?.({ cmd: DRAINED_MESSAGE_CMD }, undefined, undefined, () => {}))
  return answered
}

function listenRoundTrip (): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      resolve()
    }
    const timer = setTimeout(done, EXIT_HANDSHAKE_MAX_MS)
    const probe = createServer()
    probe.once('error', done)
    // Closed a tick later, so the primary also reads its 'listening'
    // before its close, as for any server.
    probe.listen(0, '127.0.0.1', () => setImmediate(() => probe.close(done)))
  })
}

/**
 * Tells a cluster primary that this worker is closing, before the drain, so
 * it forks the replacement at once. Returns when to stop
 * accepting: null for now; a promise under a `startCluster()` primary. A
 * closed channel is not an error here: the primary is gone or already knows.
 */
export function notifyPrimary (cause: CloseCause, reqId: string | undefined, gracePeriod: number): Promise<void> | null {
  if (!cluster.isWorker || !process.connected) return null
  const hold = underStartCluster() ? primaryCommand(STOP_ACCEPTING_CMD) : null
  // The callback takes a late channel error, which would otherwise be an
  // 'error' event on process with no listener.
  const message: ClosingMessage = { cmd: CLOSING_MESSAGE_CMD, cause, pid: process.pid, reqId, gracePeriod }
  attempt(() => process.send?.(message, undefined, undefined, () => {}))
  return hold
}

export function disconnectFromPrimary (): void {
  if (!cluster.isWorker || !process.connected) return
  // Not `cluster.worker.disconnect()`: that marks the exit as voluntary
  // (`exitedAfterDisconnect`), and primaries commonly replace only
  // involuntary exits.
  attempt(() => process.disconnect())
}
