import { expectAssignable, expectError, expectType } from 'tsd'
import {
  startCluster,
  CLOSING_MESSAGE_CMD,
  InvalidOptionError,
  type ClusterLogger,
  type ClusterStats,
  type ClusterSupervisor,
  type ExitCause,
  type StartClusterOptions
} from '../dist/cjs/cluster'

expectType<Promise<ClusterSupervisor | undefined>>(startCluster({ start: async () => {} }))
expectType<Promise<ClusterSupervisor | undefined>>(startCluster({
  workers: 2,
  start: () => 42,
  logger: { info () {}, warn () {}, error () {} },
  killTimeout: 15_000,
  backoff: { minUptime: 1000, initial: 100, max: 10_000 }
}))
expectError(startCluster({}))
expectError(startCluster({ start: () => {}, workers: '2' }))
expectError(startCluster({ start: () => {}, backoff: { initial: '100' } }))
expectError(startCluster({ start: () => {}, logger: { info () {} } }))

startCluster({ start: () => {} }).then((supervisor) => {
  if (supervisor === undefined) return // a worker
  expectType<ClusterStats>(supervisor.stats())
  expectType<number>(supervisor.stats().forks)
  expectType<number | null>(supervisor.stats().lastRestartMs)
  expectType<Promise<void>>(supervisor.stop())
  expectType<Promise<void>>(supervisor.stop('SIGINT'))
  expectError(supervisor.stop('SIGKILL'))
})

expectAssignable<ExitCause>('fatal')
expectAssignable<ExitCause>('kill-timeout')
expectType<'fastify-hangup:closing'>(CLOSING_MESSAGE_CMD)
expectAssignable<ClusterLogger>(console)
expectAssignable<StartClusterOptions>({ start: () => {} })
expectType<string>(new InvalidOptionError('workers', 'an integer', '0').code)
