'use strict'

/**
 * The stop of a bench server process (forked by a bench script): closes the
 * app and exits 0, or 1 on an error or after `limitMs`; once, whether the
 * parent asked ('stop' over IPC) or went away ('disconnect').
 */
function stopper (app, limitMs = 5000) {
  let stopping = false
  return function stop () {
    if (stopping) return
    stopping = true
    setTimeout(() => process.exit(1), limitMs).unref()
    app.close().then(() => process.exit(0), (err) => {
      console.error(err)
      process.exit(1)
    })
  }
}

module.exports = { stopper }
