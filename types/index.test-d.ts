import Fastify from 'fastify'
import { Agent, Pool, Client, getGlobalDispatcher, type Dispatcher } from 'undici'
import { expectAssignable, expectError, expectType } from 'tsd'
import hangup, {
  fastifyHangup,
  ClientDisconnectedError,
  ResponseSentError,
  ServerClosingError,
  ResponseDestroyedError,
  interceptor,
  detach,
  type HangupInterceptor,
  type CancelReason,
  type AutoBindOptions,
  type UpstreamClient,
  type ClientCounts,
  type DisconnectPhase,
  type FatalOptions,
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

// fatal
app.register(hangup, { fatal: false })
app.register(hangup, { fatal: true })
app.register(hangup, { fatal: { asyncContext: 'auto' } })
expectError(app.register(hangup, { fatal: { asyncContext: 'on' } }))
app.register(hangup, {
  fatal: {
    gracePeriod: 5_000,
    signals: ['SIGTERM'],
    exit: false,
    asyncContext: false,
    isFatal: (error, request) => (error as Error & { code?: string }).code === 'EPOOL' && request.url !== '/',
    onFatal: async (error, request) => { expectType<unknown>(error); expectType<string | undefined>(request?.id) }
  }
})
expectAssignable<FatalOptions>({ onFatal: () => {} })
expectError(app.register(hangup, { fatal: { gracePeriod: '10s' } }))
expectError(app.register(hangup, { fatal: { signals: ['SIGNOPE'] } }))
expectError(app.register(hangup, { fatal: { exit: 'no' } }))
expectError(app.register(hangup, { fatal: 'on' }))

expectType<boolean>(app.hangup.closing)
expectType<Promise<void>>(app.hangup.shutdown())
expectType<Promise<void>>(app.hangup.shutdown(new Error('reload failed')))
expectType<number>(app.hangup.stats().fatal)
expectType<number>(app.hangup.stats().unhandledCancellations)
expectError(app.hangup.closing = true)
expectType<'FST_HANGUP_SERVER_CLOSING'>(ServerClosingError.create().code)
expectType<'FST_HANGUP_RESPONSE_DESTROYED'>(ResponseDestroyedError.create().code)

// autoBind and the interceptor
app.register(hangup, { autoBind: true })
expectError(app.register(hangup, { autoBind: 'yes' }))
app.register(hangup, { autoBind: { undici: true, http: false } })
app.register(hangup, { autoBind: { http: true } })
expectError(app.register(hangup, { autoBind: { fetch: true } }))
expectError(app.register(hangup, { autoBind: { http: 'yes' } }))
expectAssignable<AutoBindOptions>({ undici: false })
expectType<HangupInterceptor>(interceptor())
expectAssignable<Dispatcher.DispatcherComposeInterceptor>(interceptor())
expectAssignable<Dispatcher>(new Agent().compose(interceptor()))
expectAssignable<Dispatcher>(new Pool('http://127.0.0.1:1').compose(interceptor()))
expectAssignable<Dispatcher>(new Client('http://127.0.0.1:1').compose(interceptor()))
expectAssignable<Dispatcher>(getGlobalDispatcher().compose(interceptor()))
expectType<Promise<number>>(detach(async () => 1))
expectType<string>(detach(() => 'sync'))
expectType<number>(app.hangup.stats().upstream.bound)
expectType<Record<CancelReason, number>>(app.hangup.stats().upstream.cancelled)
expectType<number>(app.hangup.stats().upstream.cancelled.clientDisconnected)
expectError(app.hangup.stats().upstream.cancelled.nope)
expectType<Record<UpstreamClient, ClientCounts>>(app.hangup.stats().upstream.byClient)
expectType<number>(app.hangup.stats().upstream.byClient.http.cancelled)
expectType<number>(app.hangup.stats().upstream.byClient.undici.bound)
expectError(app.hangup.stats().upstream.byClient.fetch)
