// Where a save's append goes, each row beside raw hypercore in the same process
// and run (runs interleaved, so the machine's load hits every row alike):
//   raw.append_ms      core.append(one block) on a bare corestore core, until the call returns
//   raw.durable_ms     the same appends until hypercore's 'append' event: its storage write holding
//                      the block is applied; the call returns one more write (of the same hints) later
//   log.append_ms      SessionLog.write of one event on a bare core, the feed replaced by a sink that
//                      projects nothing: the append path crosscast owns, until the save would resolve
//   save_ms            features' status save() on a node (swarm off), projection into SQLite included
//   *_64.*, *_1000.*   64 (1,000) callers each awaiting one append (or one one-event write/save) at a
//                      time: p50 latency per call and wall time per append call (per event for log/save);
//                      at 1,000 a tick's writes fill several 512-event blocks, appended in one call
//   *.cpu_ms           process CPU (all threads: RocksDB's workers too) per idle append or save
// Idle rows: one at a time, 2 ms apart. The three setups run in rotated order each run.
//   npx tsx bench/append.ts     (BENCH_RUNS=5 by default, BENCH_QUICK=1 for a smoke run)
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import Corestore from 'corestore'
import type Hypercore from 'hypercore'
import { Crosscast } from '../lib/index.ts'
import { SessionLog } from '../lib/log/session-log.ts'
import { encodeBlock } from '../lib/events/codec.ts'
import type { EventDraft, WireEvent } from '../lib/events/types.ts'
import { median, percentile, summarize } from './lib/stats.ts'
import { contextFromEnv, type BenchContext, type FigureSet } from './lib/contract.ts'
import { printFigures } from './lib/report.ts'

export const system = 'crosscast'

const CALLERS = 64
const MANY_CALLERS = 1000
const GAP_MS = 2
const DRAFT: EventDraft = { event_type: 'status_changed', resource_id: 'feat-0123abcd', payload: { old_status: 'todo', new_status: 'done' } } as EventDraft
const WIRE: WireEvent = { ...DRAFT, agent_id: 'bench', hlc: Date.now(), parent: null }
const BLOCK = encodeBlock('bench-1', [WIRE])

interface Sample { idle: number[], durable: number[], cpu: number[], latencies64: number[], perCall64: number, perCall1000: number }

function tempDir (): string {
  return mkdtempSync(join(tmpdir(), 'crosscast-append-'))
}

function ms (since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e6
}

function cpuMs (since: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since)
  return (u.user + u.system) / 1000
}

/** `call` idle (spaced GAP_MS), then from CALLERS callers at once. */
async function measure (samples: number, rounds: number, call: () => Promise<unknown>, durable?: () => Promise<void>): Promise<Sample> {
  for (let i = 0; i < 20; i++) await call() // warm
  const idle: number[] = []
  const durableMs: number[] = []
  const cpu: number[] = []
  for (let i = 0; i < samples; i++) {
    await sleep(GAP_MS)
    const c0 = process.cpuUsage()
    const t0 = process.hrtime.bigint()
    const seen = durable?.().then(() => durableMs.push(ms(t0)))
    await call()
    idle.push(ms(t0))
    cpu.push(cpuMs(c0))
    await seen
  }
  const latencies64: number[] = []
  const perCall64 = await concurrently(CALLERS, rounds, call, latencies64)
  const perCall1000 = await concurrently(MANY_CALLERS, 5, call, [])
  return { idle, durable: durableMs, cpu, latencies64, perCall64, perCall1000 }
}

/** Wall time per call with `callers` callers each making `rounds` calls one after another. */
async function concurrently (callers: number, rounds: number, call: () => Promise<unknown>, latencies: number[]): Promise<number> {
  const t0 = process.hrtime.bigint()
  await Promise.all(Array.from({ length: callers }, async () => {
    for (let i = 0; i < rounds; i++) {
      const s = process.hrtime.bigint()
      await call()
      latencies.push(ms(s))
    }
  }))
  return ms(t0) / (callers * rounds)
}

async function withCore<T> (fn: (core: Hypercore) => Promise<T>): Promise<T> {
  const dir = tempDir()
  const store = new Corestore(dir)
  try {
    const core = store.get({ name: 'bench' })
    await core.ready()
    return await fn(core)
  } finally {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

function raw (samples: number, rounds: number): Promise<Sample> {
  return withCore(core => measure(samples, rounds, () => core.append(BLOCK), () => new Promise(resolve => core.once('append', () => resolve()))))
}

function log (samples: number, rounds: number): Promise<Sample> {
  return withCore(core => {
    const sessionLog = new SessionLog(core, {
      sessionId: 'bench-1',
      agentId: 'bench',
      stamp: () => ({ hlc: Date.now(), parent: null }),
      sink: { hint () {}, forget () {}, projected: async () => [] }
    })
    return measure(samples, rounds, () => sessionLog.write([DRAFT]))
  })
}

async function save (samples: number, rounds: number): Promise<Sample> {
  const storage = tempDir()
  const cc = await Crosscast.open({ storage, room: 'bench', agent: 'bench', sessionId: 'bench-1', swarm: false, lan: false })
  try {
    const f = await cc.features.create('append bench').save()
    const statuses = ['in_progress', 'blocked', 'done', 'todo'] as const
    let i = 0
    return await measure(samples, rounds, () => cc.append([{ event_type: 'status_changed', resource_id: f.id, payload: { old_status: null, new_status: statuses[i++ % 4] } }]))
  } finally {
    await cc.close()
    rmSync(storage, { recursive: true, force: true })
  }
}

export async function run (ctx: BenchContext): Promise<FigureSet> {
  const samples = ctx.quick ? 40 : 200
  const rounds = ctx.quick ? 5 : 20
  const rows: Record<string, number[]> = {}
  const add = (id: string, v: number): void => { (rows[id] ??= []).push(v) }
  for (let r = 0; r < ctx.runs; r++) {
    ctx.log(`append: run ${r + 1}/${ctx.runs}`)
    // Rotated, so no row always runs first (cold) or last.
    const order = [raw, log, save].map((fn, i, all) => all[(i + r) % all.length])
    const results = new Map<unknown, Sample>()
    for (const fn of order) results.set(fn, await fn(samples, rounds))
    const a = results.get(raw)!
    const b = results.get(log)!
    const c = results.get(save)!
    add('raw.append_ms', median(a.idle))
    add('raw.durable_ms', median(a.durable))
    add('log.append_ms', median(b.idle))
    add('save_ms', median(c.idle))
    add('log.append_ratio', median(b.idle) / median(a.idle))
    add('save_ratio', median(c.idle) / median(a.idle))
    add('raw.cpu_ms', median(a.cpu))
    add('save.cpu_ms', median(c.cpu))
    add('raw_64.p50_ms', percentile(a.latencies64, 50))
    add('log_64.p50_ms', percentile(b.latencies64, 50))
    add('save_64.p50_ms', percentile(c.latencies64, 50))
    add('raw_64.ms_per_append', a.perCall64)
    add('log_64.ms_per_event', b.perCall64)
    add('save_64.ms_per_event', c.perCall64)
    add('raw_1000.ms_per_append', a.perCall1000)
    add('log_1000.ms_per_event', b.perCall1000)
    add('save_1000.ms_per_event', c.perCall1000)
  }
  const figures: FigureSet = {}
  for (const [id, values] of Object.entries(rows)) {
    const ratio = id.endsWith('_ratio')
    figures[id] = summarize(values, ratio ? 'x' : 'ms', true, ratio ? `÷ raw.append_ms of the same run${id === 'log.append_ratio' ? '; < 1: a save need not wait for hypercore\'s trailing hints write' : ''}` : undefined)
  }
  return figures
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const ctx = contextFromEnv()
  printFigures(system, await run(ctx))
}
