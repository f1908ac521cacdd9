'use strict'

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')

/** The versions every result records: Node, Fastify, undici and the plugin. */
function versions () {
  return {
    node: process.version,
    fastify: require('fastify/package.json').version,
    undici: require('undici/package.json').version,
    plugin: require('../package.json').version
  }
}

/** What the results JSON says about the machine. */
function machineInfo () {
  const cpus = os.cpus()
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    availableParallelism: os.availableParallelism?.() ?? cpus.length,
    totalMemoryMB: Math.round(os.totalmem() / 2 ** 20),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
    node: process.version,
    v8: process.versions.v8
  }
}

function cpuTimes () {
  let idle = 0
  let total = 0
  for (const c of os.cpus()) {
    for (const [k, v] of Object.entries(c.times)) {
      total += v
      if (k === 'idle') idle += v
    }
  }
  return { idle, total }
}

/**
 * Share of the machine's CPU that was idle over `ms` before the benchmark
 * starts. Anything else running (a test suite, a build) skews throughput
 * figures far more than the plugin does, so the scripts warn about it.
 */
async function idleShare (ms = 1000) {
  const a = cpuTimes()
  await new Promise((resolve) => setTimeout(resolve, ms))
  const b = cpuTimes()
  return b.total === a.total ? 1 : (b.idle - a.idle) / (b.total - a.total)
}

async function warnIfBusy () {
  const idle = await idleShare()
  if (idle < 0.9) {
    console.log(`warning: the machine was only ${(idle * 100).toFixed(0)}% idle before the start: other processes are running, expect noisy numbers`)
  }
  return Math.round(idle * 1000) / 1000
}

/**
 * CPU time (ms) used so far by every process on the machine except `ours`
 * (Linux /proc; an empty map elsewhere). Diffing two snapshots tells whether
 * another program (a test suite, a build) competed with the benchmark.
 */
function othersCpu (ours) {
  const out = new Map()
  let pids
  try {
    pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))
  } catch {
    return out
  }
  for (const pid of pids) {
    if (ours.has(Number(pid))) continue
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
      // Fields after the command name (which may contain spaces): utime and stime are 14 and 15.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(pid, (Number(fields[11]) + Number(fields[12])) * 10)
    } catch {}
  }
  return out
}

/** ms of CPU the other processes used between two `othersCpu` snapshots. */
function othersCpuDelta (before, after) {
  let ms = 0
  for (const [pid, t] of after) ms += t - (before.get(pid) ?? 0)
  return ms
}

/**
 * Waits, up to `maxWaitMs`, for a window of `windowMs` in which the other
 * processes used less than `threshold` of a core. Resolves with the ms waited
 * and whether the machine did go quiet.
 */
async function waitForQuiet (ours, { maxWaitMs = 20_000, windowMs = 500, threshold = 0.05 } = {}) {
  const start = Date.now()
  for (;;) {
    const before = othersCpu(ours)
    await new Promise((resolve) => setTimeout(resolve, windowMs))
    const quiet = othersCpuDelta(before, othersCpu(ours)) / windowMs < threshold
    const waited = Date.now() - start
    if (quiet || waited >= maxWaitMs) return { waited, quiet }
  }
}

/** Pins every thread of `pid` to `cpu` (-a: V8 and libuv threads too); throws without taskset. */
function pinTo (pid, cpu) {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' })
}

module.exports = { versions, machineInfo, warnIfBusy, othersCpu, othersCpuDelta, waitForQuiet, pinTo }
