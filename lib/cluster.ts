/**
 * fastify-hangup/cluster: restart without losing requests on one
 * machine. The primary keeps N workers; a worker that closes (the plugin's
 * graceful close after a fatal error or a signal) is replaced while it drains.
 */
import cluster from 'node:cluster'
import { defaultClusterLogger } from './cluster/log.js'
import { resolveClusterOptions, type StartClusterOptions } from './cluster/options.js'
import { runWorker } from './cluster/worker.js'
import { Supervisor, type ClusterSupervisor } from './cluster/supervisor.js'

export type { BackoffOptions, ClusterLogger, StartClusterOptions } from './cluster/options.js'
export type { ClusterStats, ClusterSupervisor, ExitCause, StopSignal } from './cluster/supervisor.js'
export { CLOSING_MESSAGE_CMD, STOP_ACCEPTING_CMD } from './cluster/protocol.js'
export { InvalidOptionError } from './errors.js'

/**
 * In the primary: forks the workers and supervises them; resolves with the
 * supervisor. In a worker (of this primary, or of pm2's cluster mode): runs
 * `start`; resolves with undefined once it has. Rejects with
 * `FST_HANGUP_INVALID_OPTION` naming the option that is wrong.
 */
export async function startCluster<T> (options: StartClusterOptions<T>): Promise<ClusterSupervisor | undefined> {
  const resolved = resolveClusterOptions(options)
  const log = resolved.logger ?? defaultClusterLogger
  if (!cluster.isPrimary) return runWorker(resolved, log)
  const supervisor = new Supervisor(resolved, log)
  supervisor.start()
  return supervisor
}
