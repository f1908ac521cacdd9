'use strict'

const { join } = require('node:path')

/**
 * The compiled plugin, as a user gets it from `require('fastify-hangup')`.
 * The benchmarks measure dist/, not the TypeScript source: build it first.
 */
function loadPlugin () {
  try {
    return require('../dist/cjs/index.js')
  } catch (err) {
    if (err.code === 'MODULE_NOT_FOUND' && String(err.message).includes('dist')) {
      const where = join(__dirname, '..', 'dist', 'cjs', 'index.js')
      console.error(`fastify-hangup bench: ${where} is missing. Build the plugin first: npm run build`)
      process.exit(1)
    }
    throw err
  }
}

module.exports = { loadPlugin }
