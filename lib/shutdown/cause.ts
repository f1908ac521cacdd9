/**
 * What started a graceful close: a fatal error, a stop signal, or
 * `fastify.hangup.shutdown()`. Its own module: the close publishes it on
 * `fastify-hangup:closing` (lib/events/channels.ts), whose message type names
 * it, and neither module may import the other.
 */
export type CloseCause = 'fatal' | 'signal' | 'shutdown'
