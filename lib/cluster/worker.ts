import type { FastifyBaseLogger } from 'fastify'
import type { ClusterLogger, ResolvedClusterOptions } from './options.js'
import { flushLog, processGuard } from '../shutdown/process-guard.js'

/**
 * `startCluster()` in a worker: runs `start`. A worker that cannot start
 * exits 1 at once (the primary's backoff then spaces the retries); a
 * half-started app must not linger as a worker that never listens.
 */
export async function runWorker (options: ResolvedClusterOptions, log: ClusterLogger): Promise<undefined> {
  // Ctrl-C and systemd's KillMode=control-group signal the workers directly
  // as well as the primary, which forwards the signal: the plugin must take
  // the second one as the same stop, not as an order to exit now.
  processGuard().primaryEscalates = true
  try {
    await options.start()
  } catch (error) {
    process.exitCode = 1
    log.error({ err: error, pid: process.pid }, 'worker start failed: exiting')
    await flushLog(log as unknown as FastifyBaseLogger)
    process.exit(1)
  }
  return undefined
}
