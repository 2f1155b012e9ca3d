// The projector alone, without logs or network: encoded blocks of one writer
// applied straight to a fresh database, beside the raw better-sqlite3 insert
// rate of the same rows in the same process (bench/local.ts, bench/history.ts,
// and profiling with `node --cpu-prof --import tsx bench/lib/projector-load.ts`).

import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import BetterSqlite3, { type Database } from 'better-sqlite3'
import { encodeBlock } from '../../lib/events/codec.ts'
import { eventIdOf } from '../../lib/events/ids.ts'
import { EVENT_TYPES, type WireEvent } from '../../lib/events/types.ts'
import { configure, migrate, STORED_EVENT_COLUMNS } from '../../lib/projection/schema.ts'
import { Projector } from '../../lib/projection/projector.ts'
import { silentLogger } from '../../lib/logger.ts'

const STATUSES = ['todo', 'in_progress', 'blocked', 'done'] as const

/**
 * Per wall second and per CPU second of this process. With other work on the
 * machine the wall rate swings several-fold between runs; the CPU rate (the
 * work is synchronous: JavaScript, SQLite, page-cache writes) much less, so a
 * ratio of CPU rates is the steadier comparison.
 */
export interface Rate { wall: number, cpu: number, bytesPerEvent?: number }

function startClock (): { rate: (n: number) => Rate } {
  const wall = process.hrtime.bigint()
  const cpu = process.cpuUsage()
  return {
    rate (n) {
      const used = process.cpuUsage(cpu)
      return { wall: n / (Number(process.hrtime.bigint() - wall) / 1e9), cpu: n / ((used.user + used.system) / 1e6) }
    }
  }
}

export interface History {
  writer: Buffer
  blocks: Buffer[]
  events: number
}

/**
 * One writer's log: `items` features created, then status changes round-robin
 * over them, `perBlock` events per block, each event's parent the previous
 * event on its feature (as a live writer stamps them).
 */
export function makeHistory (total: number, items: number, perBlock: number, startHlc = Date.now() * 1000 - total * 10): History {
  const writer = randomBytes(32)
  const last = new Map<string, string>()
  const blocks: Buffer[] = []
  let hlc = startHlc
  let n = 0
  for (let seq = 0; n < total; seq++) {
    const events: WireEvent[] = []
    for (let idx = 0; idx < perBlock && n < total; idx++, n++) {
      const resource = `feat-${(n % items).toString(16).padStart(8, '0')}`
      const parent = last.get(resource) ?? null
      last.set(resource, eventIdOf(writer, seq, idx))
      hlc += 10
      events.push(n < items
        ? { event_type: 'feature_created', resource_id: resource, agent_id: 'bench', hlc, parent, payload: { title: `feature ${n}`, status: 'todo' } }
        : { event_type: 'status_changed', resource_id: resource, agent_id: 'bench', hlc, parent, payload: { old_status: null, new_status: STATUSES[n % 4] } })
    }
    blocks.push(encodeBlock('bench-1', events))
  }
  return { writer, blocks, events: n }
}

export function openDatabase (file: string): Database {
  const db = new BetterSqlite3(file)
  configure(db)
  migrate(db)
  return db
}

export function newProjector (db: Database): Projector {
  return new Projector(db, { logger: silentLogger, maxPayloadBytes: 64 * 1024, onCommit: () => {}, onObserve: () => {} })
}

/** Applies a history `blocksPerTx` blocks per transaction, as a feed catching up does; returns events/s. */
export function project (projector: Projector, history: History, blocksPerTx: number): Rate {
  const key = history.writer.toString('hex')
  projector.registerWriter(key, { sessionId: 'bench-1', agentId: 'bench' })
  const clock = startClock()
  for (let seq = 0; seq < history.blocks.length; seq += blocksPerTx) {
    const inputs = history.blocks.slice(seq, seq + blocksPerTx).map((block, i) => ({ seq: seq + i, block }))
    projector.applyBlocks(key, 0, inputs)
  }
  return clock.rate(history.events)
}

/**
 * The same broadcast_events rows (status changes with a parent), inserted by
 * one plain prepared statement into the same table and indexes, in
 * transactions of `perTx` rows: what better-sqlite3 alone does for this job.
 */
export function rawInsertRate (db: Database, total: number, perTx: number, items = 64): Rate {
  const insert = db.prepare(`INSERT INTO broadcast_events (${STORED_EVENT_COLUMNS.join(', ')}) VALUES (${STORED_EVENT_COLUMNS.map(() => '?').join(', ')})`)
  const writer = randomBytes(32)
  const statusChanged = EVENT_TYPES.indexOf('status_changed')
  const payload = JSON.stringify({ old_status: null, new_status: 'done' })
  const hlc = Date.now() * 1000 - total * 10
  const batch = db.transaction((from: number) => {
    for (let i = from; i < from + perTx && i < total; i++) {
      const before = Math.max(0, i - items)
      const parent = Buffer.from(eventIdOf(writer, Math.floor(before / perTx), before % perTx), 'hex')
      insert.run(i + 1, writer, Math.floor(i / perTx), i % perTx, statusChanged, `feat-${(i % items).toString(16).padStart(8, '0')}`, 'bench', 'bench-1', payload, hlc + i * 10, parent)
    }
  })
  const clock = startClock()
  for (let from = 0; from < total; from += perTx) batch(from)
  return clock.rate(total)
}

/** Projector and raw inserts on fresh databases in one temp dir, same sizes. */
export function projectorVsRaw (total: number, items: number, perBlock: number, blocksPerTx: number): { projector: Rate, raw: Rate } {
  const dir = mkdtempSync(join(tmpdir(), 'crosscast-bench-'))
  try {
    const history = makeHistory(total, items, perBlock)
    const a = openDatabase(join(dir, 'projector.db'))
    const projector = project(newProjector(a), history, blocksPerTx)
    a.pragma('wal_checkpoint(TRUNCATE)')
    projector.bytesPerEvent = statSync(join(dir, 'projector.db')).size / history.events
    a.close()
    if (process.env.SKIP_RAW === '1') return { projector, raw: { wall: NaN, cpu: NaN } }
    const b = openDatabase(join(dir, 'raw.db'))
    const raw = rawInsertRate(b, total, perBlock * blocksPerTx, items)
    b.close()
    return { projector, raw }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const total = Number(process.env.EVENTS ?? 200_000)
  const perBlock = Number(process.env.PER_BLOCK ?? 512)
  const blocksPerTx = Number(process.env.BLOCKS_PER_TX ?? 1)
  for (let i = 0; i < Number(process.env.RUNS ?? 3); i++) {
    const r = projectorVsRaw(total, Number(process.env.ITEMS ?? 64), perBlock, blocksPerTx)
    console.log(`projector ${Math.round(r.projector.wall)} events/s (${Math.round(r.projector.cpu)} per CPU s), raw ${Math.round(r.raw.wall)} rows/s (${Math.round(r.raw.cpu)} per CPU s), ratio ${(r.projector.wall / r.raw.wall).toFixed(3)} wall, ${(r.projector.cpu / r.raw.cpu).toFixed(3)} CPU, ${Math.round(r.projector.bytesPerEvent ?? 0)} B/event`)
  }
}
