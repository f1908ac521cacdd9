import { subscribe } from 'node:diagnostics_channel'
import type { FastifyRequest } from 'fastify'
import { expectAssignable, expectError, expectType } from 'tsd'
import {
  channels,
  type CancelClient,
  type CancelEvent,
  type CancelReason,
  type CloseCause,
  type ClosingEvent,
  type DisconnectPhase,
  type FatalEvent,
  type HangupEvent
} from '..'

// The channel names are literal types, usable with node:diagnostics_channel.
expectType<'fastify-hangup:hangup'>(channels.hangup)
expectType<'fastify-hangup:cancel'>(channels.cancel)
expectType<'fastify-hangup:fatal'>(channels.fatal)
expectType<'fastify-hangup:closing'>(channels.closing)
expectError(channels.nope)

subscribe(channels.hangup, (message) => {
  const { request, phase } = message as HangupEvent
  expectType<FastifyRequest>(request)
  expectType<DisconnectPhase>(phase)
})
subscribe(channels.cancel, (message) => {
  const { request, reason, client } = message as CancelEvent
  expectType<FastifyRequest>(request)
  expectType<CancelReason>(reason)
  expectType<CancelClient>(client)
  expectAssignable<'undici' | 'http'>(client)
})
subscribe(channels.fatal, (message) => {
  const { error, request } = message as FatalEvent
  expectType<unknown>(error)
  expectType<FastifyRequest | null>(request)
})
subscribe(channels.closing, (message) => {
  expectType<CloseCause>((message as ClosingEvent).cause)
  expectAssignable<'fatal' | 'signal' | 'shutdown'>((message as ClosingEvent).cause)
})

// The messages are read-only: a subscriber cannot rewrite what the next one sees.
declare const hangupEvent: HangupEvent
expectError(hangupEvent.phase = 'upload')
