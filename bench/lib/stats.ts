// Statistics, formatting and memory helpers shared by every benchmark.
// Child-process helpers live in proc.ts and are re-exported here so a bench
// module needs one import.
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export { spawnPeer, killAllPeers, type Peer } from './proc.ts'

/** One figure: the median of `runs` samples, with their spread. */
export interface Figure {
  median: number
  min: number
  max: number
  runs: number[]
  unit: string
  /** true when a smaller number is better (latency, bytes, memory). */
  lowerIsBetter: boolean
  note?: string
}

export function median (values: number[]): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Nearest-rank percentile: always a value that was actually observed. */
export function percentile (values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]
}

export function summarize (samples: number[], unit: string, lowerIsBetter: boolean, note?: string): Figure {
  const finite = samples.filter((v) => Number.isFinite(v))
  return {
    median: median(finite),
    min: finite.length ? Math.min(...finite) : Number.NaN,
    max: finite.length ? Math.max(...finite) : Number.NaN,
    runs: samples,
    unit,
    lowerIsBetter,
    ...(note ? { note } : {})
  }
}

export interface Repeated { median: number, min: number, max: number, runs: number[] }

/** Runs `fn` n times in sequence (never concurrently: runs must not share CPU). */
export async function repeat (n: number, fn: (run: number) => Promise<number>): Promise<Repeated> {
  const runs: number[] = []
  for (let i = 0; i < n; i++) runs.push(await fn(i))
  const finite = runs.filter((v) => Number.isFinite(v))
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), runs }
}

export interface Metric { unit: string, lowerIsBetter: boolean, note?: string }

/**
 * Runs `fn` n times where one run yields several numbers (e.g. events/s and
 * blocks/s of the same transfer) and summarizes each key into a Figure.
 */
export async function repeatMany<K extends string> (
  n: number,
  metrics: Record<K, Metric>,
  fn: (run: number) => Promise<Record<K, number>>
): Promise<Record<K, Figure>> {
  const samples = {} as Record<K, number[]>
  for (const key of Object.keys(metrics) as K[]) samples[key] = []
  for (let i = 0; i < n; i++) {
    const result = await fn(i)
    for (const key of Object.keys(metrics) as K[]) samples[key].push(result[key] ?? Number.NaN)
  }
  const out = {} as Record<K, Figure>
  for (const key of Object.keys(metrics) as K[]) {
    const m = metrics[key]
    out[key] = summarize(samples[key], m.unit, m.lowerIsBetter, m.note)
  }
  return out
}

/** Monotonic nanoseconds; CLOCK_MONOTONIC is system-wide, so values compare across processes on one machine. */
export function nowNs (): bigint {
  return process.hrtime.bigint()
}

export function msSince (startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e6
}

export function nsToMs (ns: bigint): number {
  return Number(ns) / 1e6
}

export function fmt (value: number, unit = ''): string {
  if (!Number.isFinite(value)) return 'n/a'
  const abs = Math.abs(value)
  let text: string
  if (abs >= 1000) text = Math.round(value).toLocaleString('en-US')
  else if (abs >= 100) text = value.toFixed(0)
  else if (abs >= 10) text = value.toFixed(1)
  else if (abs >= 1) text = value.toFixed(2)
  else text = value.toPrecision(2)
  return unit ? `${text} ${unit}` : text
}

export function fmtFigure (f: Figure): string {
  return `${fmt(f.median, f.unit)} (${fmt(f.min)}..${fmt(f.max)}, n=${f.runs.length})`
}

export function fmtRatio (r: number): string {
  if (!Number.isFinite(r)) return 'n/a'
  return r >= 10 ? `${r.toFixed(0)}x` : `${r.toFixed(2)}x`
}

/** Resident set size of any process on this machine, from /proc (Linux). */
export function rssOfPid (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const line = status.split('\n').find((l) => l.startsWith('VmRSS:'))
  if (!line) return Number.NaN
  return Number(line.replace(/[^0-9]/g, '')) * 1024
}

export function rssSelf (): number {
  return process.memoryUsage().rss
}

/**
 * Collects garbage when the process runs with --expose-gc, then lets the
 * allocator settle, so RSS deltas measure live memory rather than garbage.
 */
export async function settleMemory (): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc
  for (let i = 0; i < 3; i++) {
    if (gc) gc()
    await sleep(50)
  }
}

/** Rejects after `ms` so no wait in a benchmark can hang forever. */
export async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Polls `check` until true, bounded in time. */
export async function waitFor (check: () => boolean | Promise<boolean>, ms: number, what: string, everyMs = 5): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(everyMs)
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`)
}

/** ~`size` bytes of JSON shaped like a seed event, so every system moves the same bytes. */
export function sampleEvent (seq: number, writer: string, size = 100): string {
  const base = { t: 'status_changed', r: `feat-${(seq % 4096).toString(16).padStart(8, '0')}`, w: writer, s: seq, p: '' }
  const pad = Math.max(0, size - JSON.stringify(base).length)
  base.p = 'x'.repeat(pad)
  return JSON.stringify(base)
}

/** Bytes of every file under a directory (what a store takes on disk). */
export function duBytes (path: string): number {
  let total = 0
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const full = join(path, entry.name)
    total += entry.isDirectory() ? duBytes(full) : statSync(full).size
  }
  return total
}
