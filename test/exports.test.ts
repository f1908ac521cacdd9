import { test, type TestContext } from 'node:test'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as api from '../lib/index.js'
import * as cluster from '../lib/cluster.js'

const root = join(__dirname, '..', '..', '..')

test('the source entry exports the plugin as default and fastifyHangup, and the error classes', (t: TestContext) => {
  t.plan(9)
  t.assert.strictEqual(new api.InvalidOptionError('x', 'y', 'z').code, 'FST_HANGUP_INVALID_OPTION')
  t.assert.strictEqual(new api.AlreadyRegisteredError().code, 'FST_HANGUP_ALREADY_REGISTERED')
  t.assert.strictEqual(typeof api.default, 'function')
  t.assert.strictEqual(api.default, api.fastifyHangup)
  t.assert.strictEqual((api.default as unknown as Record<symbol, unknown>)[Symbol.for('fastify.display-name')], 'fastify-hangup')
  const reason = api.ClientDisconnectedError.create('upload')
  t.assert.deepStrictEqual([reason.name, reason.code, reason.phase, reason.statusCode], ['AbortError', 'FST_HANGUP_CLIENT_DISCONNECTED', 'upload', 499])
  t.assert.deepStrictEqual([api.ResponseSentError.create().name, api.ResponseSentError.create().code], ['AbortError', 'FST_HANGUP_RESPONSE_SENT'])
  const destroyed = api.ResponseDestroyedError.create()
  t.assert.deepStrictEqual([destroyed.name, destroyed.code, destroyed.statusCode, String(destroyed.stack).includes('\n    at ')], ['AbortError', 'FST_HANGUP_RESPONSE_DESTROYED', 500, false])
  const closing = api.ServerClosingError.create()
  t.assert.deepStrictEqual([closing.name, closing.code, closing.statusCode, String(closing.stack).includes('\n    at ')], ['AbortError', 'FST_HANGUP_SERVER_CLOSING', 503, false])
})

// The built package, resolved by name through its `exports` map (npm test builds first).
function run (args: string[]): string {
  return execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' }).trim()
}

test('require("fastify-hangup") is the plugin, with .default and .fastifyHangup', (t: TestContext) => {
  t.plan(1)
  const out = run(['-e', `
    const h = require('fastify-hangup')
    console.log([typeof h, h.default === h, h.fastifyHangup === h, typeof h.ClientDisconnectedError].join(' '))
  `])
  t.assert.strictEqual(out, 'function true true function')
})

// `import x = require('fastify-hangup')` is typed by dist/cjs/index.d.ts
// (scripts/post-build.js): each property require() returns must be there.
test('the CommonJS types declare every property require("fastify-hangup") has', (t: TestContext) => {
  const keys = run(['-e', "console.log(Object.keys(require('fastify-hangup')).sort().join(' '))"]).split(' ')
  const types = readFileSync(join(root, 'dist', 'cjs', 'index.d.ts'), 'utf8')
  t.assert.match(types, /^export = fastifyHangup$/m)
  t.assert.ok(keys.includes('interceptor') && keys.includes('ClientDisconnectedError'), keys.join(' '))
  for (const key of keys) {
    t.assert.match(types, key === 'default' ? /export \{ fastifyHangup as default \}/ : new RegExp(`export (import|const) ${key}\\b`), key)
  }
})

test('import from "fastify-hangup" gives the plugin as default and named export', (t: TestContext) => {
  t.plan(1)
  const out = run(['--input-type=module', '-e', `
    import hangup, { fastifyHangup, ClientDisconnectedError } from 'fastify-hangup'
    console.log([typeof hangup, hangup === fastifyHangup, typeof ClientDisconnectedError].join(' '))
  `])
  t.assert.strictEqual(out, 'function true function')
})

test('fastify-hangup/cluster: startCluster, the protocol\'s commands and the option error, from require and import', (t: TestContext) => {
  t.assert.deepStrictEqual(
    [typeof cluster.startCluster, cluster.CLOSING_MESSAGE_CMD, cluster.STOP_ACCEPTING_CMD, new cluster.InvalidOptionError('a', 'b', 'c').code],
    ['function', 'fastify-hangup:closing', 'fastify-hangup:stop-accepting', 'FST_HANGUP_INVALID_OPTION']
  )
  const line = "[typeof c.startCluster, c.CLOSING_MESSAGE_CMD, c.InvalidOptionError === h.InvalidOptionError].join(' ')"
  t.assert.strictEqual(run(['-e', `const c = require('fastify-hangup/cluster'); const h = require('fastify-hangup'); console.log(${line})`]), 'function fastify-hangup:closing true')
  t.assert.strictEqual(run(['--input-type=module', '-e', `import * as c from 'fastify-hangup/cluster'; import * as h from 'fastify-hangup'; console.log(${line})`]), 'function fastify-hangup:closing true')
})

// The package ships CJS and ESM; an app that ends up with both copies (a
// dependency requires it, the app imports it) must still have one process
// handler, so a crash is handled once.
test('the CJS and the ESM copy share one set of process listeners and one request context', (t: TestContext) => {
  t.plan(1)
  const out = run(['--input-type=module', '-e', `
    import { createRequire } from 'node:module'
    import Fastify from 'fastify'
    import esm from 'fastify-hangup'
    const cjs = createRequire(process.cwd() + '/')('fastify-hangup')
    const before = process.listenerCount('uncaughtException') + ',' + process.listenerCount('SIGTERM')
    const a = Fastify()
    const b = Fastify()
    await a.register(esm)
    await b.register(cjs)
    await Promise.all([a.ready(), b.ready()])
    const during = process.listenerCount('uncaughtException') + ',' + process.listenerCount('SIGTERM')
    await Promise.all([a.close(), b.close()])
    const after = process.listenerCount('uncaughtException') + ',' + process.listenerCount('SIGTERM')
    console.log([esm === cjs, before, during, after].join(' '))
  `])
  t.assert.strictEqual(out, 'false 0,0 1,1 0,0')
})

test('channels: the diagnostics_channel names, the same from the source, require and import', (t: TestContext) => {
  const names = { hangup: 'fastify-hangup:hangup', cancel: 'fastify-hangup:cancel', fatal: 'fastify-hangup:fatal', closing: 'fastify-hangup:closing' }
  t.assert.deepStrictEqual({ ...api.channels }, names)
  const line = 'console.log(JSON.stringify(h.channels))'
  t.assert.deepStrictEqual(JSON.parse(run(['-e', `const h = require('fastify-hangup'); ${line}`])), names)
  t.assert.deepStrictEqual(JSON.parse(run(['--input-type=module', '-e', `import * as h from 'fastify-hangup'; ${line}`])), names)
})

// Channels are process-global by name: a subscriber hears both copies.
test('the CJS and the ESM copy publish to the same subscribers', (t: TestContext) => {
  t.plan(1)
  const out = run(['--input-type=module', '-e', `
    import { subscribe } from 'node:diagnostics_channel'
    import { createRequire } from 'node:module'
    import Fastify from 'fastify'
    import esm, { channels } from 'fastify-hangup'
    const cjs = createRequire(process.cwd() + '/')('fastify-hangup')
    const causes = []
    subscribe(channels.closing, ({ cause }) => causes.push(cause))
    const a = Fastify()
    const b = Fastify()
    await a.register(esm, { fatal: false })
    await b.register(cjs, { fatal: false })
    await Promise.all([a.ready(), b.ready()])
    await a.hangup.shutdown()
    await b.hangup.shutdown()
    console.log(causes.join(' '))
  `])
  t.assert.strictEqual(out, 'shutdown shutdown')
})
