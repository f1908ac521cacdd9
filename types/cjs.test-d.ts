// The CommonJS view: `require('fastify-hangup')` is the plugin itself, with
// every named export on it, and its types say so (`import x = require()`).
import Fastify from 'fastify'
import { expectAssignable, expectError, expectType } from 'tsd'
import hangup = require('fastify-hangup')
import cluster = require('fastify-hangup/cluster')

const app = Fastify()
app.register(hangup)
app.register(hangup, { abortOnResponse: false, fatal: { exit: false } })
app.register(hangup.default)
app.register(hangup.fastifyHangup, { autoBind: true })
expectError(app.register(hangup, { abortOnError: 'yes' }))
expectType<typeof hangup.fastifyHangup>(hangup.default)

app.get('/', async (request) => {
  expectType<AbortSignal>(request.signal)
  if (request.signal.reason instanceof hangup.ClientDisconnectedError) {
    expectType<hangup.DisconnectPhase>(request.signal.reason.phase)
  }
  return 'ok'
})
expectType<number>(app.hangup.stats().inflight)
expectAssignable<hangup.FastifyHangupOptions>({ fatal: { gracePeriod: 1000 } })
expectType<hangup.HangupInterceptor>(hangup.interceptor())
expectType<number>(hangup.detach(() => 1))
expectType<string>(new hangup.InvalidOptionError('a', 'b', 'c').code)

expectType<Promise<cluster.ClusterSupervisor | undefined>>(cluster.startCluster({ start: () => {} }))
expectType<'fastify-hangup:closing'>(cluster.CLOSING_MESSAGE_CMD)
