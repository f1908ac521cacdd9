import type { TestContext } from 'node:test'

/**
 * The fault suite's randomness: every byte at which a
 * client hangs up, every FIN-or-RST, every garbage answer is drawn from one
 * seeded PRNG, so a run is reproducible and a failure says how to replay it.
 */

/**
 * The seed of every random choice of the suite: `FAULT_SEED` in the
 * environment, else a fixed one, so that CI runs are reproducible and a
 * failure names the seed (and the offsets) to replay it with.
 */
export function faultSeed (): number {
  const text = process.env.FAULT_SEED
  if (text === undefined || text === '') return 0x5eed
  const seed = Number(text)
  if (!Number.isSafeInteger(seed)) throw new Error(`FAULT_SEED must be an integer, got ${text}`)
  return seed
}

export interface Random {
  readonly seed: number
  /** An integer in [min, max). */
  int (min: number, max: number): number
  pick<T> (list: readonly T[]): T
  bytes (n: number): Buffer
}

/** mulberry32: small, fast and deterministic; plenty for choosing offsets. */
export function seededRandom (seed: number): Random {
  let state = seed >>> 0
  function next (): number {
    state = (state + 0x6d2b79f5) >>> 0
    let x = state
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  function int (min: number, max: number): number {
    if (!(max > min)) throw new Error(`empty range [${min}, ${max})`)
    return min + Math.floor(next() * (max - min))
  }
  return {
    seed,
    int,
    pick: (list) => list[int(0, list.length)] as (typeof list)[number],
    bytes: (n) => Buffer.from(Array.from({ length: n }, () => int(0, 256)))
  }
}

/**
 * Runs one fault case; a failure names the case and the seed that replays
 * it (`FAULT_SEED=… npm run build:test && node --test …`).
 */
export async function faultCase (t: TestContext, random: Random, label: string, run: () => Promise<void>): Promise<void> {
  try {
    await run()
  } catch (err) {
    const message = `fault case "${label}" failed (replay with FAULT_SEED=${random.seed})`
    t.diagnostic(message)
    throw new Error(`${message}: ${(err as Error).message}`, { cause: err })
  }
}
