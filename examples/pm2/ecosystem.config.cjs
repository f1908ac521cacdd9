// pm2 recipe for an app with fastify-hangup (tested by check.sh, pm2 7).
//   pm2 start ecosystem.config.cjs     pm2 reload hangup-example     pm2 stop hangup-example
//   pm2-runtime ecosystem.config.cjs   (containers)
const path = require('node:path')

// fastify-hangup's fatal.gracePeriod, passed to the app (HANGUP_GRACE_MS).
// The plugin exits at the latest about 1.5 s after it (stragglers answered,
// onClose hooks, log flush).
const GRACE_MS = 10_000

module.exports = {
  apps: [{
    name: 'hangup-example',
    script: path.join(__dirname, 'app.mjs'),
    cwd: __dirname,

    // Cluster mode, at least 2 instances. pm2 restarts a crashed instance
    // only once it has exited, i.e. after its drain; the other instances
    // serve meanwhile. With 1 instance (or in fork mode) connections are
    // refused from the crash until the replacement listens.
    exec_mode: 'cluster',
    instances: 2,

    // pm2 stops an instance with one SIGINT, then SIGKILL after kill_timeout
    // (default 1600 ms: a drain longer than that is cut). Above GRACE_MS + 1.5 s.
    kill_timeout: GRACE_MS + 2000,

    // Reload: pm2 starts the new instance and stops the old one once the new
    // one is ready (the app sends 'ready' after listen) or after
    // listen_timeout (default 3000 ms), whichever comes first. Above the
    // slowest boot. Also makes `pm2 start` report online only once listening.
    wait_ready: true,
    listen_timeout: 15_000,

    // Exit code 1 (a crash) is restarted. Exit code 0 is only a graceful stop
    // (a signal, shutdown()): not restarted, even when the signal did not
    // come from pm2. Drop this if the app calls shutdown() to be recycled.
    stop_exit_codes: [0],
    // No exp_backoff_restart_delay: with it, pm2 7 shows an instance that
    // exited 0 as "waiting restart" forever (it is not restarted). pm2's
    // own crash-loop guard stays: 16 restarts each under min_uptime (1 s)
    // and the app is marked errored.

    env: {
      NODE_ENV: 'production',
      PORT: process.env.PORT ?? 3000,
      HANGUP_GRACE_MS: GRACE_MS
    }

    // Not here: shutdown_with_message (the app handles the 'shutdown'
    // message too, but a signal is what pm2 uses on Linux), treekill
    // (default true; the app has no children to stop).
  }]
}
