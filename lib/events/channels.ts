import diagnosticsChannel from 'node:diagnostics_channel'
import type { FastifyRequest } from 'fastify'
import type { DisconnectPhase } from '../errors.js'
import type { CloseCause } from '../shutdown/cause.js'
import { cancelReason, type CancelReason, type UpstreamClient } from '../stats.js'

/**
 * The plugin's `diagnostics_channel` names (docs/events.md). Channels are
 * process-global by name: a subscriber by name hears every copy of the
 * package (CJS and ESM, two versions), and one that subscribes after the app
 * started hears what follows.
 */
export const channels = {
  hangup: 'fastify-hangup:hangup',
  cancel: 'fastify-hangup:cancel',
  fatal: 'fastify-hangup:fatal',
  closing: 'fastify-hangup:closing'
} as const

/** Which client a cancelled upstream call was made with. */
/** The client of a cancelled call: the same kinds `stats().upstream.byClient` counts. */
export type CancelClient = UpstreamClient

/** `fastify-hangup:hangup`: a client hung up; once per hang-up. */
export interface HangupEvent {
  readonly request: FastifyRequest
  readonly phase: DisconnectPhase
}

/** `fastify-hangup:cancel`: one upstream call bound to `request` was cancelled. */
export interface CancelEvent {
  readonly request: FastifyRequest
  /** The kind of the request's abort reason: the key `stats().upstream.cancelled` counts it under. */
  readonly reason: CancelReason
  readonly client: CancelClient
}

/** `fastify-hangup:fatal`: a fatal error; `request` is the request that raised it, null outside any request. */
export interface FatalEvent {
  readonly error: unknown
  readonly request: FastifyRequest | null
}

/** `fastify-hangup:closing`: an app's graceful close started. */
export interface ClosingEvent {
  readonly cause: CloseCause
}

// Created once per copy of this module; `channel(name)` returns the one
// object Node keeps for that name, so every copy publishes to the same
// subscribers. Held here for the life of the process: `hasSubscribers` is then
// one property read, and a held channel is never collected and created anew
// under a name someone subscribes to (the race of nodejs/node#59910).
const hangupChannel = diagnosticsChannel.channel(channels.hangup)
const cancelChannel = diagnosticsChannel.channel(channels.cancel)
const fatalChannel = diagnosticsChannel.channel(channels.fatal)
const closingChannel = diagnosticsChannel.channel(channels.closing)

// Each publish function checks `hasSubscribers` first and builds its message
// only then: with no subscriber an event costs one property read. The
// message is a fresh object handed to the subscribers and kept nowhere, so
// it keeps no request alive once they return.

export function publishHangup (request: FastifyRequest, phase: DisconnectPhase): void {
  if (!hangupChannel.hasSubscribers) return
  hangupChannel.publish({ request, phase } satisfies HangupEvent)
}

/** `reason`: the request's abort reason, published as its kind. */
export function publishCancel (request: FastifyRequest, reason: unknown, client: CancelClient): void {
  if (!cancelChannel.hasSubscribers) return
  cancelChannel.publish({ request, reason: cancelReason(reason), client } satisfies CancelEvent)
}

/**
 * True from a `fatal` publish to the next tick. Node reports a subscriber's
 * throw as an uncaught exception on the next tick (the `publish` of
 * lib/diagnostics_channel.js); the process guard takes that for a new fatal
 * error, and publishing it again would loop for as long as the subscriber
 * throws, in ticks that starve the event loop and the close. Node's ticks
 * were queued during `publish`, so they run before the one that clears this.
 */
let fatalPublished = false

function fatalTickOver (): void {
  fatalPublished = false
}

/** Not published again for an error raised right after a `fatal` publish (a throwing subscriber's own). */
export function publishFatal (error: unknown, request: FastifyRequest | null): void {
  if (!fatalChannel.hasSubscribers || fatalPublished) return
  fatalChannel.publish({ error, request } satisfies FatalEvent)
  fatalPublished = true
  process.nextTick(fatalTickOver)
}

export function publishClosing (cause: CloseCause): void {
  if (!closingChannel.hasSubscribers) return
  closingChannel.publish({ cause } satisfies ClosingEvent)
}
