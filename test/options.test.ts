import { test, type TestContext } from 'node:test'
import Fastify from 'fastify'
import hangup from '../lib/index.js'
import { DEFAULTS, FATAL_DEFAULTS, resolveOptions } from '../lib/options.js'

const invalid: Array<[string, unknown, RegExp]> = [
  ['abortOnError', 'yes', /option "abortOnError" must be a boolean, received "yes"/],
  ['abortOnResponse', 1, /option "abortOnResponse" must be a boolean, received number 1/],
  ['abortOnError', null, /option "abortOnError" must be a boolean, received null/],
  ['abortOnResponse', {}, /option "abortOnResponse" must be a boolean, received an object/],
  ['abortOnResponse', [], /option "abortOnResponse" must be a boolean, received an array/],
  ['disconnectLogLevel', 'warn', /option "disconnectLogLevel" must be one of 'trace', 'debug', 'info', 'silent', received "warn"/],
  ['disconnectLogLevel', 3, /option "disconnectLogLevel" must be one of .*, received number 3/],
  ['autoBind', 'yes', /option "autoBind" must be a boolean or an object such as \{ undici: true, http: false \}, received "yes"/],
  ['autoBind', null, /option "autoBind" must be a boolean or an object .*, received null/],
  ['autoBind', [], /option "autoBind" must be a boolean or an object .*, received an array/],
  ['autoBind', { http: 'yes' }, /option "autoBind.http" must be a boolean, received "yes"/],
  ['autoBind', { undici: null }, /option "autoBind.undici" must be a boolean, received null/],
  ['autoBind', { fetch: false }, /option "autoBind.fetch" must be absent: autoBind takes undici and http, received boolean false/],
  ['autoBind', { toString: true }, /option "autoBind.toString" must be absent: autoBind takes undici and http, received boolean true/],
  ['fatal', 'on', /option "fatal" must be a boolean or an object, received "on"/],
  ['fatal', null, /option "fatal" must be a boolean or an object, received null/],
  ['fatal', [], /option "fatal" must be a boolean or an object, received an array/],
  ['fatal', { gracePeriod: -1 }, /option "fatal.gracePeriod" must be an integer number of milliseconds from 0 to 2147483647, received number -1/],
  ['fatal', { gracePeriod: 1.5 }, /option "fatal.gracePeriod" must be .*, received number 1.5/],
  ['fatal', { gracePeriod: 2 ** 31 }, /option "fatal.gracePeriod" must be .*, received number 2147483648/],
  ['fatal', { gracePeriod: '10s' }, /option "fatal.gracePeriod" must be .*, received "10s"/],
  ['fatal', { signals: 'SIGTERM' }, /option "fatal.signals" must be an array of signal names that can be caught, .*received "SIGTERM"/],
  ['fatal', { signals: ['SIGKILL'] }, /option "fatal.signals" must be an array .*, received an array/],
  ['fatal', { signals: ['SIGNOPE'] }, /option "fatal.signals" must be an array .*, received an array/],
  ['fatal', { exit: 'no' }, /option "fatal.exit" must be a boolean, received "no"/],
  ['fatal', { asyncContext: 0 }, /option "fatal.asyncContext" must be a boolean or 'auto', received number 0/],
  ['fatal', { asyncContext: 'on' }, /option "fatal.asyncContext" must be a boolean or 'auto', received "on"/],
  ['fatal', { isFatal: true }, /option "fatal.isFatal" must be a function, received boolean true/],
  ['fatal', { onFatal: 'report' }, /option "fatal.onFatal" must be a function, received "report"/]
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
  t.assert.deepStrictEqual(resolveOptions(undefined), { abortOnError: true, abortOnResponse: true, disconnectLogLevel: 'info', autoBind: { undici: false, http: false }, fatal: FATAL_DEFAULTS })
  t.assert.strictEqual(resolveOptions(null), DEFAULTS)
  t.assert.ok(Object.isFrozen(DEFAULTS))
  t.assert.deepStrictEqual(resolveOptions({ prefix: '/x', abortOnError: false, disconnectLogLevel: 'silent' }), { abortOnError: false, abortOnResponse: true, disconnectLogLevel: 'silent', autoBind: { undici: false, http: false }, fatal: FATAL_DEFAULTS })
})

test('autoBind: true binds every client, false none, an object the ones it does not turn off', (t: TestContext) => {
  t.plan(6)
  t.assert.deepStrictEqual(resolveOptions({ autoBind: true }).autoBind, { undici: true, http: true })
  t.assert.deepStrictEqual(resolveOptions({ autoBind: false }).autoBind, { undici: false, http: false })
  t.assert.deepStrictEqual(resolveOptions({ autoBind: {} }).autoBind, { undici: true, http: true })
  t.assert.deepStrictEqual(resolveOptions({ autoBind: { http: false } }).autoBind, { undici: true, http: false })
  t.assert.deepStrictEqual(resolveOptions({ autoBind: { undici: false, http: true } }).autoBind, { undici: false, http: true })
  t.assert.ok(Object.isFrozen(resolveOptions({ autoBind: { http: false } }).autoBind))
})

test('fatal: true is the defaults, false is off, an object is completed with the defaults', (t: TestContext) => {
  t.plan(5)
  t.assert.strictEqual(resolveOptions({ fatal: true }).fatal, FATAL_DEFAULTS)
  t.assert.strictEqual(FATAL_DEFAULTS.asyncContext, 'auto')
  t.assert.strictEqual(resolveOptions({ fatal: false }).fatal, null)
  const onFatal = (): void => {}
  t.assert.deepStrictEqual(resolveOptions({ fatal: { gracePeriod: 0, signals: ['SIGTERM', 'SIGTERM', 'SIGUSR2'], onFatal } }).fatal,
    { gracePeriod: 0, signals: ['SIGTERM', 'SIGUSR2'], exit: true, asyncContext: 'auto', isFatal: null, onFatal })
  t.assert.deepStrictEqual(resolveOptions({ fatal: { signals: [], exit: false, asyncContext: true } }).fatal,
    { ...FATAL_DEFAULTS, signals: [], exit: false, asyncContext: true })
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
