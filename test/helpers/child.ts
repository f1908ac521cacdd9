import { spawn, type ChildProcess } from 'node:child_process'
import { Client } from 'undici'
import { once } from 'node:events'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { TestContext } from 'node:test'
import type { FixtureConfig } from '../fixtures/fatal-app.js'
import { PATIENCE_MS } from './app.js'
import type { LogLine } from './logs.js'

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
  /** performance.now() when the child exited. */
  at: number
}

export interface FixtureProcess extends LoggedProcess {
  /** The port of each app, in start order. */
  ports: number[]
  url: string
}

export const FIXTURE = join(__dirname, '..', 'fixtures', 'fatal-app.js')

/**
 * Starts test/fixtures/fatal-app.js in a child process and waits until all
 * its apps listen. The child is killed (SIGKILL) when the test ends, if it
 * is still running; every wait is bounded.
 */
export async function startFixture (t: TestContext, config: FixtureConfig, apps = config.secondApp === true ? 2 : 1, env: Record<string, string> = {}): Promise<FixtureProcess> {
  const child = spawnLogged(t, FIXTURE, { ...env, HANGUP_FIXTURE: JSON.stringify(config) })
  const ports: number[] = []
  for (let i = 0; i < apps; i++) {
    const line = await child.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('Server listening at') && !ports.includes(portOf(l)))
    ports.push(portOf(line))
  }
  return { ...child, ports, url: `http://127.0.0.1:${ports[0]}` }
}

/**
 * SIGKILL for `child` (its whole process group when `group`: a cluster's
 * workers) when the test ends, if it is still running.
 */
export function killAfter (t: TestContext, child: ChildProcess, group: boolean): void {
  t.after(() => {
    if (child.exitCode !== null || child.signalCode !== null) return
    if (group) {
      try {
        process.kill(-(child.pid as number), 'SIGKILL')
      } catch {}
    } else {
      child.kill('SIGKILL')
    }
  })
}

/** A keep-alive client that outlives any pause of a test, destroyed when the test ends. */
export function connect (t: TestContext, url: string): Client {
  const client = new Client(url, { keepAliveTimeout: 30_000, keepAliveMaxTimeout: 30_000 })
  t.after(() => client.destroy())
  return client
}

/** A child process whose stdout is pino lines; see `startFixture`. */
export interface LoggedProcess {
  pid: number
  logs: LogLine[]
  exited: Promise<Exit>
  /** Resolves with the first line (already seen or to come) that matches; rejects after `timeoutMs`. */
  waitForLog (match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>
  kill (signal: NodeJS.Signals): void
  stderr (): string
}

/**
 * Runs `file` with this Node, parses its stdout as JSON lines, and kills it
 * (SIGKILL; its whole process group when `detached`) when the test ends, if
 * it is still running.
 */
export function spawnLogged (t: TestContext, file: string, env: Record<string, string>, detached = false): LoggedProcess {
  const child = spawn(process.execPath, [file], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached
  })
  const logs: LogLine[] = []
  const waiters = new Set<() => void>()
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  createInterface({ input: child.stdout }).on('line', (text) => {
    try {
      logs.push(JSON.parse(text) as LogLine)
    } catch {
      // Not pino's (a stack trace, a warning): kept below every level, for the failure messages.
      logs.push({ level: 0, msg: text })
    }
    for (const wake of waiters) wake()
  })
  const exited = once(child, 'exit').then(([code, signal]) => ({ code, signal, at: performance.now() }) as Exit)
  let running = true
  exited.then(() => {
    running = false
    for (const wake of waiters) wake()
  }, () => {})
  killAfter(t, child, detached)

  function waitForLog (match: (line: LogLine) => boolean, timeoutMs = PATIENCE_MS): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const line = logs.find(match)
        if (line === undefined) return false
        cleanup()
        resolve(line)
        return true
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`no matching log line within ${timeoutMs} ms; child ${running ? 'running' : 'exited'}; stderr: ${stderr}\nlogs:\n${logs.map((l) => JSON.stringify(l)).join('\n')}`))
      }, timeoutMs)
      const wake = (): void => { if (!check() && !running) { cleanup(); reject(new Error(`child exited; stderr: ${stderr}`)) } }
      const cleanup = (): void => { clearTimeout(timer); waiters.delete(wake) }
      waiters.add(wake)
      check()
    })
  }

  return {
    pid: child.pid as number,
    logs,
    exited,
    waitForLog,
    kill: (signal) => child.kill(signal),
    stderr: () => stderr
  }
}

function portOf (line: LogLine): number {
  return Number(/:(\d+)$/.exec(line.msg as string)?.[1])
}

/** A generic body as the plugin writes it. */
export function genericBody (statusCode: 500 | 503): { statusCode: number, error: string, message: string } {
  const error = statusCode === 500 ? 'Internal Server Error' : 'Service Unavailable'
  return { statusCode, error, message: error }
}
