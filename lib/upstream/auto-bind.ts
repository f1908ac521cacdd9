import { bindingInterceptor, type interceptor } from './interceptor.js'
import { PROCESS_SINGLETONS } from '../internals/table.js'
import { acquireShared } from '../internals/lookup.js'

/** The parts of undici `autoBind` uses: the user's copy (a peer dependency), so theirs is what gets bound. */
export interface UndiciGlobals {
  getGlobalDispatcher (): ComposableDispatcher
  setGlobalDispatcher (dispatcher: ComposableDispatcher): void
  Dispatcher: abstract new (...args: never[]) => unknown
  Agent: new () => ComposableDispatcher
}

interface ComposableDispatcher {
  compose (...interceptors: Array<ReturnType<typeof interceptor>>): ComposableDispatcher
}

/**
 * The dispatcher to compose onto. The global slot is shared by every copy of
 * undici in the process, Node's bundled one included, and Node 22 fills it
 * with its own Agent when something touches its lazy `node:http` getters. A
 * dispatcher of another copy may speak another handler API (Node 22 bundles
 * undici 6, which rejects the handler this interceptor passes on): the
 * interceptor goes onto an Agent of the user's undici instead.
 */
function baseOf (undici: UndiciGlobals, current: ComposableDispatcher): ComposableDispatcher {
  return current instanceof undici.Dispatcher ? current : new undici.Agent()
}

/**
 * `autoBind: true`: composes the interceptor into undici's global dispatcher
 * (which `undici.request`, `undici.fetch` and Node's own global `fetch` all
 * read), outermost, so it sees each call once in the caller's context.
 * Returns the release: when the last app that asked closes, the previous
 * dispatcher comes back, unless someone replaced ours meanwhile. One binding
 * per process (lib/internals/table.ts): two apps with `autoBind`, or both
 * copies of the package, compose the interceptor once, so each call is
 * bound once.
 */
export function bindGlobalDispatcher (undici: UndiciGlobals): () => void {
  return acquireShared(PROCESS_SINGLETONS.autoBind.key, () => install(undici), (binding) => uninstall(undici, binding))
}

interface Binding {
  readonly previous: ComposableDispatcher
  readonly bound: ComposableDispatcher
}

function install (undici: UndiciGlobals): Binding {
  const previous = undici.getGlobalDispatcher()
  const bound = baseOf(undici, previous).compose(bindingInterceptor())
  undici.setGlobalDispatcher(bound)
  return { previous, bound }
}

/** The previous dispatcher comes back, unless someone replaced ours meanwhile. */
function uninstall (undici: UndiciGlobals, { previous, bound }: Binding): void {
  if (undici.getGlobalDispatcher() === bound) undici.setGlobalDispatcher(previous)
}
