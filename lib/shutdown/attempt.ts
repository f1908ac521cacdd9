/**
 * Runs one step of the crash handling. A failing step is skipped, never
 * thrown: a throw from an `uncaughtException` listener ends the process with
 * exit code 7, before any request is answered.
 */
export function attempt (step: () => void): void {
  try {
    step()
  } catch {}
}
