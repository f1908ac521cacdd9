import Fastify from 'fastify'
import { expectAssignable, expectError, expectType } from 'tsd'
import hangup, {
  fastifyHangup,
  ClientDisconnectedError,
  ResponseSentError,
  type DisconnectPhase,
  type FastifyHangupOptions,
  type HangupStats
} from '..'

const app = Fastify()

expectType<typeof hangup>(fastifyHangup)
app.register(hangup)
app.register(hangup, {})
app.register(hangup, { abortOnError: false, abortOnResponse: false, disconnectLogLevel: 'debug' })
expectAssignable<FastifyHangupOptions>({ disconnectLogLevel: 'silent' })

expectError(app.register(hangup, { abortOnError: 'yes' }))
expectError(app.register(hangup, { disconnectLogLevel: 'warn' }))
expectError(app.register(hangup, { abortOnResponse: 1 }))

expectType<HangupStats>(app.hangup.stats())
expectType<number>(app.hangup.stats().inflight)
expectType<number>(app.hangup.stats().disconnects.upload)

app.get('/', async (request) => {
  expectType<AbortSignal>(request.signal)
  const reason: unknown = request.signal.reason
  if (reason instanceof ClientDisconnectedError) {
    expectType<DisconnectPhase>(reason.phase)
    expectType<string>(reason.code)
  }
  return 'ok'
})

expectType<'AbortError' | string>(ResponseSentError.create().name)
expectType<ClientDisconnectedError>(ClientDisconnectedError.create('response'))
expectError(ClientDisconnectedError.create('elsewhere'))
