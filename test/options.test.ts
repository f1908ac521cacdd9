import { test, type TestContext } from 'node:test'
import Fastify from 'fastify'
import hangup from '../lib/index.js'
import { DEFAULTS, resolveOptions } from '../lib/options.js'

const invalid: Array<[string, unknown, RegExp]> = [
  ['abortOnError', 'yes', /option "abortOnError" must be a boolean, received "yes"/],
  ['abortOnResponse', 1, /option "abortOnResponse" must be a boolean, received number 1/],
  ['abortOnError', null, /option "abortOnError" must be a boolean, received null/],
  ['abortOnResponse', {}, /option "abortOnResponse" must be a boolean, received an object/],
  ['abortOnResponse', [], /option "abortOnResponse" must be a boolean, received an array/],
  ['disconnectLogLevel', 'warn', /option "disconnectLogLevel" must be one of 'trace', 'debug', 'info', 'silent', received "warn"/],
  ['disconnectLogLevel', 3, /option "disconnectLogLevel" must be one of .*, received number 3/]
]

for (const [name, value, message] of invalid) {
  test(`register rejects ${name}: ${JSON.stringify(value)} with a coded error naming the option`, async (t: TestContext) => {
    t.plan(3)
    const app = Fastify()
    t.after(() => app.close())
    // null is how a caller says "use the default" elsewhere; here an explicit null is still a wrong type
    const opts = { [name]: value }
    const err = await app.register(hangup, opts as never).then(() => null, (e: unknown) => e as Error & { code: string })
    t.assert.ok(err instanceof TypeError)
    t.assert.strictEqual(err?.code, 'FST_HANGUP_INVALID_OPTION')
    t.assert.match(err?.message ?? '', message)
  })
}

test('options that are not an object are rejected', (t: TestContext) => {
  t.plan(2)
  t.assert.throws(() => resolveOptions('fast'), { code: 'FST_HANGUP_INVALID_OPTION', message: /option "options" must be an object, received "fast"/ })
  t.assert.throws(() => resolveOptions([]), { code: 'FST_HANGUP_INVALID_OPTION', message: /received an array/ })
})

test('missing options give the documented defaults, unknown keys are left to Fastify', (t: TestContext) => {
  t.plan(4)
  t.assert.deepStrictEqual(resolveOptions(undefined), { abortOnError: true, abortOnResponse: true, disconnectLogLevel: 'info' })
  t.assert.strictEqual(resolveOptions(null), DEFAULTS)
  t.assert.ok(Object.isFrozen(DEFAULTS))
  t.assert.deepStrictEqual(resolveOptions({ prefix: '/x', abortOnError: false, disconnectLogLevel: 'silent' }), { abortOnError: false, abortOnResponse: true, disconnectLogLevel: 'silent' })
})

test('registering twice is a coded error, not a crash', async (t: TestContext) => {
  t.plan(2)
  const app = Fastify()
  t.after(() => app.close())
  await app.register(hangup)
  const err = await app.register(async (child) => { await child.register(hangup) }).then(() => null, (e: unknown) => e as Error & { code: string })
  t.assert.strictEqual(err?.code, 'FST_HANGUP_ALREADY_REGISTERED')
  t.assert.match(err?.message ?? '', /already registered/)
})
