// The one path from a log block to SQLite and subscribers. Local and remote
// blocks both come through applyBlocks(), so what I wrote and what a peer wrote
// are stored and delivered identically.

import type { Database, Statement } from 'better-sqlite3'
import { decodeBlock, isNotUnderstood } from '../events/codec.ts'
import { eventIdAt } from '../events/ids.ts'
import { hlcToIso, isTooFarAhead, MAX_CLOCK_SKEW_MS } from '../events/hlc.ts'
import { EVENT_POSITION, eventIdParams, readEpoch, STORED_EVENT_COLUMNS, WHERE_EVENT_ID } from './schema.ts'
import { EVENT_COLUMNS, rowToEvent } from './queries.ts'
import { resourceTypeOf } from '../events/validate.ts'
import { EVENT_TYPES, type BroadcastEvent, type EventType, type WireEvent } from '../events/types.ts'
import { StateRules } from './rules.ts'
import type { Logger } from '../logger.ts'

/** Rows per insert statement (11 parameters each, far under SQLite's limit). */
const INSERT_CHUNK = 64
/** The stored event type: its wire code (schema.ts derives the text). */
const TYPE_CODES = Object.fromEntries(EVENT_TYPES.map((t, i) => [t, i])) as Record<EventType, number>

export interface BlockInput {
  seq: number
  block: Uint8Array
  /** Already-decoded events, when the caller is the writer that just encoded them (a cache hint: checked like any block). */
  decoded?: HintedBlock
}

/** A block's events as its writer encoded them. */
export interface HintedBlock {
  sessionId: string
  events: WireEvent[]
  ended?: boolean
  /** Each event's payload as the JSON text the writer encoded, so it is not serialized again for its row. */
  payloads?: string[]
}

/**
 * Why a writer's next block was not projected, for now. `clock`: stamped too far
 * ahead, retried as the wall clock advances. `upgrade`: not understood by this
 * version or configuration, retried when the node is opened again.
 */
export interface Hold { seq: number, reason: string, until: 'clock' | 'upgrade' }

export interface ApplyResult {
  /** Events stored by this call, in cursor order. */
  added: BroadcastEvent[]
  /** The writer's checkpoint after the call: blocks below it are projected or skipped. */
  indexed: number
  held: Hold | null
  /** Whether the last block projected by this call was its session's end marker (null: none was projected). */
  ended: boolean | null
}

/** One writer's consecutive blocks, as applyMany takes them. */
export interface WriterBlocks { writer: string, fork: number, blocks: BlockInput[] }

/** Per writer of an applyMany call: what applyBlocks would have returned, or why its blocks were not applied. */
export type ApplyOutcome = { ok: true, result: ApplyResult } | { ok: false, error: Error }

export interface WriterMeta { sessionId?: string | null, agentId?: string | null, local?: boolean }

export interface WriterCheckpoint { key: string, sessionId: string | null, agentId: string | null, local: boolean, indexed: number, fork: number, skipped: number, lastError: string | null }

export interface ProjectorOptions {
  logger: Logger
  maxPayloadBytes: number
  /** Called after each committed transaction with the events it added, in order. */
  onCommit: (events: BroadcastEvent[]) => void
  /** Called for every event projected, to keep the clock and parents current. */
  onObserve: (event: BroadcastEvent) => void
}

export class Projector {
  readonly db: Database
  private readonly rules: StateRules
  private readonly opts: ProjectorOptions
  /** Multi-row inserts by row count (one statement per count up to INSERT_CHUNK). */
  private readonly inserts = new Map<number, Statement>()
  private readonly cursorsIn: Statement
  private readonly checkpoint: Statement
  private readonly readCheckpoint: Statement
  private readonly skip: Statement
  private readonly upsertWriter: Statement
  private readonly setLastError: Statement
  private readonly selectAt: Statement
  private nextCursor: number
  private readonly writerKeys = new Map<string, Buffer>()
  /**
   * Every checkpoint read or written in this run: the projector is the only
   * writer of them (a rebuild clears them through reset()), and they are asked
   * for on every block, download and sweep. A few numbers per known writer.
   */
  private readonly checkpoints = new Map<string, { indexed: number, fork: number }>()
  /** Writers whose row is known to hold these labels, so opening their log again writes nothing. */
  private readonly registered = new Map<string, string>()
  /** The database's identity; cursors from another epoch mean nothing here. */
  epoch: string
  /** Rows in broadcast_events, kept current so status() never scans the table. */
  eventCount: number
  /** While false, nothing is handed to subscribers (reindex replays history silently). */
  publishing = true

  constructor (db: Database, opts: ProjectorOptions) {
    this.db = db
    this.opts = opts
    this.rules = new StateRules(db)
    this.cursorsIn = db.prepare('SELECT cursor FROM broadcast_events WHERE cursor BETWEEN ? AND ?').pluck()
    this.checkpoint = db.prepare('UPDATE writers SET indexed = ?, fork = ?, session_id = coalesce(session_id, ?) WHERE key = ?')
    this.readCheckpoint = db.prepare('SELECT indexed, fork FROM writers WHERE key = ?')
    this.setLastError = db.prepare('UPDATE writers SET last_error = ? WHERE key = ?')
    this.selectAt = db.prepare(`SELECT ${EVENT_COLUMNS} FROM broadcast_events WHERE ${WHERE_EVENT_ID}`)
    this.skip = db.prepare('UPDATE writers SET skipped = skipped + 1, last_error = ? WHERE key = ?')
    this.upsertWriter = db.prepare(`INSERT INTO writers (key, session_id, agent_id, local) VALUES (?, ?, ?, ?)
      ON CONFLICT(key) DO UPDATE SET session_id = coalesce(excluded.session_id, session_id), agent_id = coalesce(excluded.agent_id, agent_id), local = max(local, excluded.local)`)
    this.nextCursor = ((db.prepare('SELECT max(cursor) AS c FROM broadcast_events').get() as { c: number | null }).c ?? 0) + 1
    this.eventCount = (db.prepare('SELECT count(*) AS n FROM broadcast_events').get() as { n: number }).n
    this.epoch = readEpoch(db) ?? ''
  }

  /** The largest clock stored, so a reopened node's clock never runs behind what it already wrote or saw. */
  maxHlc (): number {
    return (this.db.prepare('SELECT max(hlc) AS h FROM broadcast_events').get() as { h: number | null }).h ?? 0
  }

  get lastCursor (): number {
    return this.nextCursor - 1
  }

  /**
   * Call after the projected tables were cleared (reindex), with the new epoch.
   * Cursors keep increasing within this process, but a client must go by the
   * epoch: after a rebuild every cursor is new.
   */
  reset (epoch: string): void {
    this.rules.reset()
    this.checkpoints.clear()
    this.eventCount = 0
    this.epoch = epoch
  }

  registerWriter (key: string, meta: WriterMeta): void {
    this.registerWriters([{ key, ...meta }])
  }

  /** Records writers with their labels, in one transaction; those already recorded so in this run are skipped. */
  registerWriters (writers: ReadonlyArray<WriterMeta & { key: string }>): void {
    const todo: Array<{ key: string, labels: string, params: [string, string | null, string | null, number] }> = []
    for (const w of writers) {
      const params: [string, string | null, string | null, number] = [w.key, w.sessionId ?? null, w.agentId ?? null, w.local === true ? 1 : 0]
      const labels = JSON.stringify(params)
      if (this.registered.get(w.key) !== labels) todo.push({ key: w.key, labels, params })
    }
    if (todo.length === 0) return
    this.db.transaction(() => { for (const w of todo) this.upsertWriter.run(...w.params) })()
    for (const w of todo) this.registered.set(w.key, w.labels)
  }

  indexedLength (key: string): number {
    return this.checkpointOf(key).indexed
  }

  /** How far one log is projected, and on which fork. */
  checkpointOf (key: string): { indexed: number, fork: number } {
    let cp = this.checkpoints.get(key)
    if (cp === undefined) {
      const row = this.readCheckpoint.get(key) as { indexed: number, fork: number } | undefined
      cp = { indexed: row?.indexed ?? 0, fork: row?.fork ?? 0 }
      this.checkpoints.set(key, cp)
    }
    return cp
  }

  writers (): WriterCheckpoint[] {
    return (this.db.prepare('SELECT key, session_id, agent_id, local, indexed, fork, skipped, last_error FROM writers ORDER BY key').all() as Array<Record<string, unknown>>)
      .map(r => ({ key: r.key as string, sessionId: r.session_id as string | null, agentId: r.agent_id as string | null, local: r.local === 1, indexed: r.indexed as number, fork: r.fork as number, skipped: r.skipped as number, lastError: r.last_error as string | null }))
  }

  /** The stored events of one block, in order (stops at the first index not stored). */
  eventsAt (writer: string, seq: number): BroadcastEvent[] {
    const prefix = writer.slice(0, 16)
    const events: BroadcastEvent[] = []
    for (let idx = 0; ; idx++) {
      const row = this.selectAt.get(...eventIdParams(eventIdAt(prefix, seq, idx))) as Record<string, unknown> | undefined
      if (row === undefined) return events
      events.push(rowToEvent(row))
    }
  }

  /** Records why a writer is no longer read (it forked, say) for status(); its projected events stay. */
  markWriterError (key: string, reason: string): void {
    this.setLastError.run(reason, key)
  }

  /**
   * Inserts rows in statements of up to INSERT_CHUNK rows (each chunk the
   * flattened columns of its rows): one bind-step-reset per chunk instead of
   * per row. Returns how many were stored.
   */
  private insertRows (chunks: unknown[][]): number {
    let stored = 0
    for (const params of chunks) {
      const n = params.length / STORED_EVENT_COLUMNS.length
      let stmt = this.inserts.get(n)
      if (stmt === undefined) {
        const one = `(${STORED_EVENT_COLUMNS.map(() => '?').join(', ')})`
        // Only a duplicate event id is ignored; any other constraint failing is an error.
        stmt = this.db.prepare(`INSERT INTO broadcast_events (${STORED_EVENT_COLUMNS.join(', ')}) VALUES ${new Array(n).fill(one).join(', ')} ON CONFLICT(${EVENT_POSITION}) DO NOTHING`)
        this.inserts.set(n, stmt)
      }
      stored += stmt.run(params).changes
    }
    return stored
  }

  /**
   * An event id already stored (two writers whose keys share their first 8
   * bytes): that row was ignored, as a duplicate is. Its cursor stays unused;
   * the event is neither applied nor delivered.
   */
  private dropIgnored (added: BroadcastEvent[], parents: Array<Buffer | null>, from: number): void {
    const first = added[from].cursor
    const stored = new Set(this.cursorsIn.all(first, added[added.length - 1].cursor) as number[])
    for (let i = added.length - 1; i >= from; i--) {
      if (stored.has(added[i].cursor)) continue
      added.splice(i, 1)
      parents.splice(i, 1)
    }
  }

  /**
   * Projects consecutive blocks of one writer in one transaction: events, state
   * and the writer's checkpoint (with the log's fork) commit together. Blocks
   * below the checkpoint are skipped, so applying a block twice changes
   * nothing. A block that can never decode is counted, reported and stepped
   * over: one bad block must not stop the rest of that writer, nor anyone else.
   * A block that is only not understood here (newer version, over our cap), or
   * stamped too far ahead, holds its writer at that block instead: skipping it
   * would lose it for good and leave this node's view different from its peers'.
   */
  applyBlocks (writer: string, fork: number, blocks: BlockInput[]): ApplyResult {
    const [outcome] = this.applyMany([{ writer, fork, blocks }])
    if (!outcome.ok) throw outcome.error
    return outcome.result
  }

  /**
   * applyBlocks for several writers in one transaction: a node catching up on
   * many logs commits once for all of them instead of once per log. Should it
   * fail, each writer is applied again in a transaction of its own, so one
   * writer's failure fails only that writer.
   */
  applyMany (groups: readonly WriterBlocks[]): ApplyOutcome[] {
    try {
      return this.commit(groups).map(result => ({ ok: true, result }))
    } catch (err) {
      if (groups.length === 1) return [{ ok: false, error: err as Error }]
      return groups.map((group): ApplyOutcome => {
        try {
          return { ok: true, result: this.commit([group])[0] }
        } catch (error) {
          return { ok: false, error: error as Error }
        }
      })
    }
  }

  /** One transaction: events, state and each writer's checkpoint (with its log's fork) commit together; subscribers hear of them after. */
  private commit (groups: readonly WriterBlocks[]): ApplyResult[] {
    const startCursor = this.nextCursor
    const results: ApplyResult[] = []
    try {
      this.db.transaction(() => {
        for (const group of groups) results.push(this.applyWriter(group))
        this.rules.flush()
      })()
      this.rules.committed()
    } catch (err) {
      this.rules.discard()
      this.nextCursor = startCursor
      for (const group of groups) this.checkpoints.delete(group.writer)
      throw err
    }
    const added = results.length === 1 ? results[0].added : results.flatMap(r => r.added)
    this.eventCount += added.length
    if (added.length > 0) {
      for (const event of added) this.opts.onObserve(event)
      if (this.publishing) this.opts.onCommit(added)
    }
    return results
  }

  /** Inside the caller's transaction: one writer's blocks from its checkpoint on. */
  private applyWriter ({ writer, fork, blocks }: WriterBlocks): ApplyResult {
    let writerKey = this.writerKeys.get(writer)
    if (writerKey === undefined) {
      writerKey = Buffer.from(writer, 'hex')
      this.writerKeys.set(writer, writerKey)
    }
    const added: BroadcastEvent[] = []
    const parents: Array<Buffer | null> = []
    let held: Hold | null = null
    let ended: boolean | null = null
    let indexed = this.indexedLength(writer)
    let sessionId: string | null = null
    for (const input of blocks) {
      if (input.seq < indexed) continue
      if (input.seq > indexed) throw new Error(`block ${input.seq} of writer ${writer.slice(0, 8)} arrived before block ${indexed}`)
      let decoded = input.decoded
      if (decoded === undefined) {
        try {
          decoded = decodeBlock(input.block, this.opts.maxPayloadBytes)
        } catch (err) {
          const reason = `block ${input.seq}: ${(err as Error).message}`
          if (isNotUnderstood(err)) {
            held = { seq: input.seq, reason, until: 'upgrade' }
            break
          }
          this.skip.run(reason, writer)
          this.opts.logger.warn({ writer, seq: input.seq, err: (err as Error).message }, 'skipped an invalid block from a writer')
          indexed = input.seq + 1
          ended = false
          continue
        }
      }
      // A clock far ahead would win every last-writer-wins comparison for good:
      // hold the block (and the rest of that log) until the wall clock catches up.
      const now = Date.now()
      if (decoded.events.some(e => isTooFarAhead(e.hlc, now))) {
        held = { seq: input.seq, reason: `block ${input.seq}: clock more than ${MAX_CLOCK_SKEW_MS / 60_000} minutes ahead; held until it is not`, until: 'clock' }
        break
      }
      sessionId = decoded.sessionId
      const events = decoded.events
      const payloads = decoded.payloads
      const blockStart = added.length
      // Parameters of each insert statement, INSERT_CHUNK rows each, built in place.
      const chunks: unknown[][] = []
      for (let idx = 0; idx < events.length; idx++) {
        const wire = events[idx]
        const event = wireToEvent(writer, input.seq, idx, decoded.sessionId, wire, this.nextCursor + idx)
        const parentKey = wire.parent === null ? null : Buffer.from(wire.parent, 'hex')
        if (idx % INSERT_CHUNK === 0) chunks.push([])
        chunks[chunks.length - 1].push(event.cursor, writerKey, input.seq, idx, TYPE_CODES[event.event_type], event.resource_id, event.agent_id, event.session_id, payloads === undefined ? JSON.stringify(event.payload) : payloads[idx], event.hlc, parentKey)
        added.push(event)
        parents.push(parentKey)
      }
      const inserted = this.insertRows(chunks)
      if (inserted < events.length) this.dropIgnored(added, parents, blockStart)
      this.nextCursor += events.length
      for (let i = blockStart; i < added.length; i++) this.rules.apply(added[i], writerKey, parents[i])
      indexed = input.seq + 1
      ended = decoded.ended === true
    }
    this.checkpoint.run(indexed, fork, sessionId, writer)
    this.checkpoints.set(writer, { indexed, fork })
    if (held !== null) this.setLastError.run((held as Hold).reason, writer)
    return { added, indexed, held, ended }
  }
}


/** A wire event as stored and delivered, at a given cursor. */
export function wireToEvent (writer: string, seq: number, idx: number, sessionId: string, wire: WireEvent, cursor: number): BroadcastEvent {
  return {
    event_id: eventIdAt(writer.slice(0, 16), seq, idx),
    event_type: wire.event_type,
    resource_id: wire.resource_id,
    resource_type: resourceTypeOf(wire.resource_id),
    agent_id: wire.agent_id,
    session_id: sessionId,
    payload: wire.payload,
    timestamp: hlcToIso(wire.hlc),
    hlc: wire.hlc,
    writer,
    seq,
    idx,
    parent: wire.parent,
    cursor
  }
}
