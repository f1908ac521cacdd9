'use strict'

/** Counts pino's JSON lines by level and by level + message (+ error code). */
function logCounter () {
  const byLevel = {}
  const byMessage = {}
  const samples = {}
  let lines = 0
  return {
    stream: {
      write (line) {
        lines++
        let entry
        try {
          entry = JSON.parse(line)
        } catch {
          entry = { level: 0, msg: `unparsable log line: ${String(line).slice(0, 200)}` }
        }
        byLevel[entry.level] = (byLevel[entry.level] ?? 0) + 1
        if (entry.level >= 40) {
          const code = entry.err?.code ?? entry.err?.type ?? ''
          const key = `${entry.level} ${entry.msg}${code ? ` (${code})` : ''}`
          byMessage[key] = (byMessage[key] ?? 0) + 1
          if (!samples[key]) samples[key] = []
          if (samples[key].length < 2) {
            const shown = { ...entry }
            if (shown.err?.stack) shown.err = { ...shown.err, stack: String(shown.err.stack).split('\n').slice(0, 4).join('\n') }
            samples[key].push(JSON.stringify(shown).slice(0, 1500))
          }
        } else {
          const key = `${entry.level} ${entry.msg}`
          byMessage[key] = (byMessage[key] ?? 0) + 1
        }
      }
    },
    snapshot () {
      return { lines, byLevel: { ...byLevel }, byMessage: { ...byMessage }, samples: JSON.parse(JSON.stringify(samples)) }
    }
  }
}

module.exports = { logCounter }
