'use strict'

/**
 * Option errors of the bench scripts: each prints what was wrong and its
 * usage, and exits 2. `int` reads an integer option (the value given, else the
 * fallback) with a lower bound.
 */
function cli (script, help) {
  function fail (message) {
    console.error(`${script}: ${message}\n`)
    process.stderr.write(help)
    process.exit(2)
  }

  function int (label, raw, fallback, min) {
    const n = Number(raw ?? fallback)
    if (!Number.isInteger(n) || n < min) fail(`${label} must be an integer >= ${min}, got ${raw}`)
    return n
  }

  return { fail, int }
}

module.exports = { cli }
