import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { CloseCause, GracefulClose } from './graceful-close.js'
import type { GuardedApp } from './process-guard.js'
import type { RequestLifecycle } from '../request/lifecycle.js'
import type { ResolvedFatalOptions } from '../options.js'
import { answerGenerically } from './respond.js'
import type { Counters } from '../stats.js'

/** One registered app, as the process guard sees it. */
export class FatalApp implements GuardedApp {
  readonly exit: boolean
  readonly signals: readonly NodeJS.Signals[]
  readonly gracePeriod: number

  constructor (
    private readonly options: ResolvedFatalOptions,
    private readonly graceful: GracefulClose,
    private readonly counters: Counters,
    readonly log: FastifyBaseLogger
  ) {
    this.exit = options.exit
    this.signals = options.signals
    this.gracePeriod = options.gracePeriod
  }

  owns (lifecycle: RequestLifecycle): boolean {
    return lifecycle.runtime.close === this.graceful
  }

  /**
   * The request that raised the error: its signal aborts with the error (its
   * upstream calls stop) and it gets the generic 500 with `Connection:
   * close`, or its connection is cut if its headers are out. `answer` is
   * false for `isFatal`, where Fastify's error path is already answering and
   * the `onSend` hook swaps in the generic body.
   */
  fault (error: unknown, lifecycle: RequestLifecycle | null, answer: boolean): void {
    this.counters.fatal++
    if (lifecycle === null) return
    lifecycle.markFatal(error)
    if (answer) answerGenerically(lifecycle.reply, 500, lifecycle.endsConnection())
  }

  report (error: unknown, lifecycle: RequestLifecycle | null): void {
    const onFatal = this.options.onFatal
    if (onFatal === null) return
    const request: FastifyRequest | null = lifecycle === null ? null : lifecycle.reply.request
    const logFailure = (failure: unknown): void => {
      this.log.error({ err: failure }, 'fatal.onFatal failed')
    }
    try {
      this.graceful.waitFor(Promise.resolve(onFatal(error, request)).catch(logFailure))
    } catch (failure) {
      logFailure(failure)
    }
  }

  close (cause: CloseCause, stopAccepting: Promise<void> | null = null): Promise<void> {
    return this.graceful.close(cause, stopAccepting)
  }
}
