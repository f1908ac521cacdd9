'use strict'

module.exports = require('neostandard')({
  ignores: [...require('neostandard').resolveIgnoresFromGitignore(), 'types/**/*.test-d.ts'],
  ts: true
})
