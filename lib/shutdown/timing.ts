/**
 * The fixed steps of a graceful close after its grace period, shared by the
 * worker's close (lib/shutdown/graceful-close.ts, lib/shutdown/process-guard.ts) and the
 * primary that must not kill it before they are over (lib/cluster/supervisor.ts).
 */

/**
 * At the grace deadline the stragglers' signals abort first; a handler that
 * follows its signal then answers through its own error path. What is still
 * open this long after gets the plugin's 503 (or a cut, headers sent).
 */
export const STRAGGLER_SETTLE_MS = 100

/**
 * After the stragglers were answered: the longest wait for those answers to
 * flush and for `fastify.close()` (`onClose` hooks) before giving up. Keeps
 * the exit within `gracePeriod` + about half a second, inside pm2's default
 * 1.6 s kill timeout for a short grace period.
 */
export const FINAL_FLUSH_MS = 400

/** The longest wait for the loggers to flush (and a cluster worker's exit round trip, run alongside) before the exit. */
export const LOG_FLUSH_MS = 1000

/**
 * The least a request that a closing `startCluster()` worker accepted while
 * it held its listener (lib/cluster/protocol.ts) gets once the primary
 * releases it, when that is later than the grace period's end (or close to
 * it); at most the grace period itself. The primary releases a holding
 * worker this long, and CLOSE_OVERHEAD_MS, before its killTimeout.
 */
export const LATE_DRAIN_MS = 1000

/** The most a close takes past its grace period. */
export const CLOSE_OVERHEAD_MS = STRAGGLER_SETTLE_MS + FINAL_FLUSH_MS + LOG_FLUSH_MS
