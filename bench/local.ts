// Single-process figures of the core (issue 2), each beside a raw baseline run
// in the same process on the same machine:
//   - save → own subscriber latency, p50 and p99
//   - sustained events/s from many concurrent callers, vs raw batched hypercore
//     appends and raw better-sqlite3 inserts
//   - bytes per status_changed event: encoded, log on disk, SQLite on disk
//
//   npx tsx bench/local.ts            (BENCH_RUNS=5 by default, BENCH_QUICK=1 for a smoke run)

import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Corestore from 'corestore'
import { Crosscast } from '../lib/index.ts'
import { encodeBlock } from '../lib/events/codec.ts'
import { openDatabase, projectorVsRaw, rawInsertRate, type Rate } from './lib/projector-load.ts'
import { duBytes, summarize, percentile, fmt, fmtFigure, type Figure } from './lib/stats.ts'
import { contextFromEnv, type BenchContext, type FigureSet } from './lib/contract.ts'

export const system = 'crosscast'

function tempDir (): string {
  return mkdtempSync(join(tmpdir(), 'crosscast-bench-'))
}

async function openNode (storage: string): Promise<Crosscast> {
  return await Crosscast.open({ storage, room: 'bench', agent: 'bench', sessionId: 'bench-1', swarm: false, lan: false })
}

/** Idle latency: one status change at a time, from save() to the subscriber's callback. */
async function saveToSubscriber (samples: number): Promise<{ p50: number, p99: number }> {
  const storage = tempDir()
  const cc = await openNode(storage)
  try {
    const f = await cc.features.create('latency').save()
    let started = 0n
    const latencies: number[] = []
    let resolveSeen: () => void = () => {}
    cc.subscribe({ eventTypes: ['status_changed'] }, () => {
      latencies.push(Number(process.hrtime.bigint() - started) / 1e6)
      resolveSeen()
    })
    const statuses = ['in_progress', 'blocked', 'done', 'todo'] as const
    for (let i = 0; i < samples; i++) {
      const seen = new Promise<void>(resolve => { resolveSeen = resolve })
      f.status = statuses[i % statuses.length]
      started = process.hrtime.bigint()
      await f.save()
      await seen
    }
    return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) }
  } finally {
    await cc.close()
    rmSync(storage, { recursive: true, force: true })
  }
}

/** Many concurrent callers saving status changes as fast as they can. */
async function sustained (callers: number, total: number): Promise<{ eventsPerSecond: number, encoded: number, logBytes: number, sqliteBytes: number }> {
  const storage = tempDir()
  const cc = await openNode(storage)
  try {
    const features = await Promise.all(Array.from({ length: callers }, (_, i) => cc.features.create(`caller ${i}`).save()))
    const before = (cc.db.prepare('SELECT count(*) AS n FROM broadcast_events').get() as { n: number }).n
    const perCaller = Math.ceil(total / callers)
    const statuses = ['in_progress', 'blocked', 'done', 'todo'] as const
    const started = process.hrtime.bigint()
    await Promise.all(features.map(async (f) => {
      for (let i = 0; i < perCaller; i++) {
        await cc.append([{ event_type: 'status_changed', resource_id: f.id, payload: { old_status: null, new_status: statuses[i % 4] } }])
      }
    }))
    const seconds = Number(process.hrtime.bigint() - started) / 1e9
    const after = (cc.db.prepare('SELECT count(*) AS n FROM broadcast_events').get() as { n: number }).n
    const events = after - before
    const sample = cc.listEvents({ type: 'status_changed', limit: 1 }).events[0]
    const encoded = encodeBlock('bench-1', [{ event_type: 'status_changed', resource_id: sample.resource_id, agent_id: sample.agent_id, hlc: sample.hlc, parent: sample.parent, payload: sample.payload }]).byteLength
    cc.db.pragma('wal_checkpoint(TRUNCATE)')
    await cc.close()
    return {
      eventsPerSecond: events / seconds,
      encoded,
      logBytes: duBytes(join(storage, 'cores')) / after,
      sqliteBytes: (statSync(join(storage, 'crosscast.db')).size) / after
    }
  } finally {
    await cc.close()
    rmSync(storage, { recursive: true, force: true })
  }
}

/** The stack's own limit: blocks of `perBlock` ~100-byte events appended back to back to one hypercore. */
async function rawHypercore (total: number, perBlock: number): Promise<number> {
  const dir = tempDir()
  const store = new Corestore(dir)
  try {
    const core = store.get({ name: 'raw' })
    await core.ready()
    const event = Buffer.alloc(100, 1)
    const block = Buffer.concat(Array.from({ length: perBlock }, () => event))
    const blocks = Math.ceil(total / perBlock)
    const started = process.hrtime.bigint()
    for (let i = 0; i < blocks; i++) await core.append(block)
    return (blocks * perBlock) / (Number(process.hrtime.bigint() - started) / 1e9)
  } finally {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The database's own limit: the same broadcast_events rows, inserted in transactions of `perTx`. */
function rawSqlite (total: number, perTx: number): Rate {
  const dir = tempDir()
  const db = openDatabase(join(dir, 'raw.db'))
  try {
    return rawInsertRate(db, total, perTx)
  } finally {
    db.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * `callers` concurrent callers each creating features with features.create().save()
 * until `total` are saved: creates per wall second, and CPU microseconds of the
 * process (all its threads) per create, steadier while other work shares the machine.
 */
async function creates (callers: number, total: number): Promise<{ perSecond: number, cpuUs: number }> {
  const storage = tempDir()
  const cc = await openNode(storage)
  try {
    let next = 0
    const started = process.hrtime.bigint()
    const cpu = process.cpuUsage()
    await Promise.all(Array.from({ length: callers }, async () => {
      while (next < total) {
        next++
        await cc.features.create('created under load').save()
      }
    }))
    const used = process.cpuUsage(cpu)
    return { perSecond: total / (Number(process.hrtime.bigint() - started) / 1e9), cpuUs: (used.user + used.system) / total }
  } finally {
    await cc.close()
    rmSync(storage, { recursive: true, force: true })
  }
}

export async function run (ctx: BenchContext): Promise<FigureSet> {
  const runs = ctx.runs
  const latencySamples = ctx.quick ? 200 : 1000
  const total = ctx.quick ? 10_000 : 50_000
  const callers = 64
  const p50: number[] = []
  const p99: number[] = []
  const rate: number[] = []
  const rawCore: number[] = []
  const rawDb: number[] = []
  const encoded: number[] = []
  const logBytes: number[] = []
  const sqliteBytes: number[] = []
  const projector: number[] = []
  const projectorRaw: number[] = []
  const projectorCpuRatio: number[] = []
  const createRates: Record<number, number[]> = { 64: [], 1000: [] }
  const createCpu: Record<number, number[]> = { 64: [], 1000: [] }
  const createRaw: number[] = []
  const createRawCpu: number[] = []
  const createTotal = ctx.quick ? 10_000 : 40_000
  for (let i = 0; i < runs; i++) {
    ctx.log(`local: run ${i + 1}/${runs}`)
    const lat = await saveToSubscriber(latencySamples)
    p50.push(lat.p50)
    p99.push(lat.p99)
    const s = await sustained(callers, total)
    rate.push(s.eventsPerSecond)
    encoded.push(s.encoded)
    logBytes.push(s.logBytes)
    sqliteBytes.push(s.sqliteBytes)
    rawCore.push(await rawHypercore(total, 512))
    rawDb.push(rawSqlite(total, 512).wall)
    // The projector alone: one writer's 512-event blocks, one block per transaction, beside raw inserts of the same rows.
    const alone = projectorVsRaw(total * 2, 64, 512, 1)
    projector.push(alone.projector.wall)
    projectorRaw.push(alone.raw.wall)
    projectorCpuRatio.push(alone.projector.cpu / alone.raw.cpu)
    for (const callers of [64, 1000]) {
      const c = await creates(callers, createTotal)
      createRates[callers].push(c.perSecond)
      createCpu[callers].push(c.cpuUs)
    }
    const raw = rawSqlite(createTotal, 512)
    createRaw.push(raw.wall)
    createRawCpu.push(1e6 / raw.cpu)
  }
  const ratio = (a: number[], b: number[]): number[] => a.map((v, i) => v / b[i])
  return {
    'local.save_to_subscriber_p50_ms': summarize(p50, 'ms', true, `idle, ${latencySamples} sequential saves per run; target <= 2 ms`),
    'local.save_to_subscriber_p99_ms': summarize(p99, 'ms', true, 'target <= 10 ms'),
    'local.sustained_events_per_s': summarize(rate, 'events/s', false, `${callers} concurrent callers, ${total} status changes; target >= 20,000/s`),
    'local.raw_hypercore_events_per_s': summarize(rawCore, 'events/s', false, 'raw baseline: 512 x 100 B per block, appends awaited back to back'),
    'local.raw_sqlite_inserts_per_s': summarize(rawDb, 'rows/s', false, 'raw baseline: the same broadcast_events rows, 512 per transaction'),
    'local.ratio_vs_raw_hypercore': summarize(ratio(rate, rawCore), 'x', false, 'crosscast events/s ÷ raw hypercore events/s, same run'),
    'local.ratio_vs_raw_sqlite': summarize(ratio(rate, rawDb), 'x', false, 'crosscast events/s ÷ raw SQLite rows/s, same run'),
    'local.projector_events_per_s': summarize(projector, 'events/s', false, `the projector alone: ${total * 2} status changes of one writer, 512 per block, one block per transaction`),
    'local.projector_raw_sqlite_rows_per_s': summarize(projectorRaw, 'rows/s', false, 'raw baseline: the same rows, plain inserts, 512 per transaction, same run'),
    'local.projector_ratio_vs_raw_sqlite': summarize(ratio(projector, projectorRaw), 'x', false, 'projector ÷ raw, wall time, same run; target >= 0.4'),
    'local.projector_cpu_ratio_vs_raw_sqlite': summarize(projectorCpuRatio, 'x', false, 'the same ratio per CPU second of the process (steadier on a loaded machine)'),
    'local.create_64_callers_per_s': summarize(createRates[64], 'features/s', false, `features.create().save(), 64 concurrent callers, ${createTotal} features; target >= 20,000/s`),
    'local.create_1000_callers_per_s': summarize(createRates[1000], 'features/s', false, `the same with 1,000 concurrent callers; target >= 40,000/s`),
    'local.create_raw_sqlite_rows_per_s': summarize(createRaw, 'rows/s', false, `raw baseline: ${createTotal} broadcast_events rows, plain inserts, 512 per transaction, same run`),
    'local.create_64_ratio_vs_raw_sqlite': summarize(ratio(createRates[64], createRaw), 'x', false, 'creates/s at 64 callers ÷ raw rows/s, same run'),
    'local.create_1000_ratio_vs_raw_sqlite': summarize(ratio(createRates[1000], createRaw), 'x', false, 'creates/s at 1,000 callers ÷ raw rows/s, same run'),
    'local.create_64_cpu_us': summarize(createCpu[64], 'µs', true, 'CPU of the process (all threads) per create at 64 callers; at most 50 µs would allow 20,000/s on one core'),
    'local.create_1000_cpu_us': summarize(createCpu[1000], 'µs', true, 'the same at 1,000 callers; at most 25 µs would allow 40,000/s on one core'),
    'local.create_raw_sqlite_cpu_us': summarize(createRawCpu, 'µs', true, 'raw baseline: CPU per inserted row, same run'),
    'local.encoded_bytes_per_status_changed': summarize(encoded, 'B', true, 'one status_changed alone in a block'),
    'local.log_bytes_per_event': summarize(logBytes, 'B', true, 'corestore directory on disk / events, after the sustained run; target <= 200 B'),
    'local.sqlite_bytes_per_event': summarize(sqliteBytes, 'B', true, 'crosscast.db after a WAL checkpoint / events; target <= 300 B')
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const ctx = contextFromEnv()
  const figures = await run(ctx)
  for (const [id, figure] of Object.entries(figures) as Array<[string, Figure]>) {
    console.log(`${id.padEnd(40)} ${fmtFigure(figure)}${figure.note === undefined ? '' : '  — ' + figure.note}`)
  }
  console.log(`\nmedian ratio vs raw hypercore appends: ${fmt((figures['local.ratio_vs_raw_hypercore'] as Figure).median)}x; vs raw SQLite inserts: ${fmt((figures['local.ratio_vs_raw_sqlite'] as Figure).median)}x`)
}
