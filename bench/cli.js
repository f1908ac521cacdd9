'use strict'

const { parseArgs } = require('node:util')

/**
 * Option errors of the bench scripts: each prints what was wrong and its
 * usage, and exits 2. `int` reads an integer option (the value given, else the
 * fallback) with a lower bound; `parse` reads the command line.
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

  /** The command line parsed with `options` (`--help` added: it prints the usage and exits 0). */
  function parse (options) {
    const { values } = parseArgs({ options: { ...options, help: { type: 'boolean' } } })
    if (values.help) {
      process.stdout.write(help)
      process.exit(0)
    }
    return values
  }

  return { fail, int, parse }
}

/** A comma-separated option as a list, blanks dropped. */
function list (raw) {
  return raw.split(',').map((item) => item.trim()).filter(Boolean)
}

module.exports = { cli, list }
