// The one path from a log block to SQLite and subscribers. Local and remote
// blocks both come through applyBlocks(), so what I wrote and what a peer wrote
// are stored and delivered identically.

import type { Database, Statement } from 'better-sqlite3'
import { decodeBlock } from '../events/codec.ts'
import { eventIdOf } from '../events/ids.ts'
import { hlcToIso } from '../events/hlc.ts'
import { resourceTypeOf } from '../events/validate.ts'
import type { BroadcastEvent, WireEvent } from '../events/types.ts'
import { StateRules } from './rules.ts'
import type { Logger } from '../logger.ts'

/** Blocks stamped further ahead than this are held back (see applyBlocks). */
export const MAX_FUTURE_CLOCK_MS = 5 * 60_000

export interface BlockInput {
  seq: number
  block: Uint8Array
  /** Already-decoded events, when the caller is the writer that just encoded them. */
  decoded?: { sessionId: string, events: WireEvent[] }
}

export interface WriterCheckpoint { key: string, sessionId: string | null, agentId: string | null, local: boolean, indexed: number, skipped: number, lastError: string | null }

export interface ProjectorOptions {
  logger: Logger
  maxPayloadBytes: number
  /** Called after each committed transaction with the events it added, in order. */
  onCommit: (events: BroadcastEvent[]) => void
  /** Called for every event projected from a remote writer, to keep the clock and parents current. */
  onObserve: (event: BroadcastEvent) => void
}

export class Projector {
  private readonly db: Database
  private readonly rules: StateRules
  private readonly opts: ProjectorOptions
  private readonly insertEvent: Statement
  private readonly checkpoint: Statement
  private readonly readCheckpoint: Statement
  private readonly skip: Statement
  private readonly upsertWriter: Statement
  private readonly setLastError: Statement
  private nextCursor: number
  private readonly writerKeys = new Map<string, Buffer>()
  /** Rows in broadcast_events, kept current so status() never scans the table. */
  eventCount: number
  /** While false, nothing is handed to subscribers (reindex replays history silently). */
  publishing = true

  constructor (db: Database, opts: ProjectorOptions) {
    this.db = db
    this.opts = opts
    this.rules = new StateRules(db)
    this.insertEvent = db.prepare(`INSERT OR IGNORE INTO broadcast_events
      (event_id, event_type, resource_id, resource_type, agent_id, session_id, payload, timestamp, hlc, writer, seq, idx, parent, cursor)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
    this.checkpoint = db.prepare('UPDATE writers SET indexed = ?, session_id = coalesce(session_id, ?) WHERE key = ?')
    this.readCheckpoint = db.prepare('SELECT indexed FROM writers WHERE key = ?')
    this.setLastError = db.prepare('UPDATE writers SET last_error = ? WHERE key = ?')
    this.skip = db.prepare('UPDATE writers SET skipped = skipped + 1, last_error = ? WHERE key = ?')
    this.upsertWriter = db.prepare(`INSERT INTO writers (key, session_id, agent_id, local) VALUES (?, ?, ?, ?)
      ON CONFLICT(key) DO UPDATE SET session_id = coalesce(excluded.session_id, session_id), agent_id = coalesce(excluded.agent_id, agent_id), local = max(local, excluded.local)`)
    this.nextCursor = ((db.prepare('SELECT max(cursor) AS c FROM broadcast_events').get() as { c: number | null }).c ?? 0) + 1
    this.eventCount = (db.prepare('SELECT count(*) AS n FROM broadcast_events').get() as { n: number }).n
  }

  get lastCursor (): number {
    return this.nextCursor - 1
  }

  /**
   * Call after the projected tables were cleared (reindex). Cursors keep
   * increasing: a client resuming from an old cursor then sees events again
   * rather than missing some.
   */
  reset (): void {
    this.rules.reset()
    this.eventCount = 0
  }

  registerWriter (key: string, meta: { sessionId?: string | null, agentId?: string | null, local?: boolean }): void {
    this.upsertWriter.run(key, meta.sessionId ?? null, meta.agentId ?? null, meta.local === true ? 1 : 0)
  }

  indexedLength (key: string): number {
    const row = this.readCheckpoint.get(key) as { indexed: number } | undefined
    return row === undefined ? 0 : row.indexed
  }

  writers (): WriterCheckpoint[] {
    return (this.db.prepare('SELECT key, session_id, agent_id, local, indexed, skipped, last_error FROM writers ORDER BY key').all() as Array<Record<string, unknown>>)
      .map(r => ({ key: r.key as string, sessionId: r.session_id as string | null, agentId: r.agent_id as string | null, local: r.local === 1, indexed: r.indexed as number, skipped: r.skipped as number, lastError: r.last_error as string | null }))
  }

  /** Records why a writer is no longer read (it forked, say) for status(); its projected events stay. */
  markWriterError (key: string, reason: string): void {
    this.setLastError.run(reason, key)
  }

  /**
   * Projects consecutive blocks of one writer in one transaction: events, state
   * and the writer's checkpoint commit together. Blocks at or below the
   * checkpoint are skipped, so applying a block twice changes nothing. A block
   * that does not decode is counted, reported and stepped over: one bad block
   * must not stop the rest of that writer, nor anyone else.
   */
  applyBlocks (writer: string, blocks: BlockInput[]): BroadcastEvent[] {
    if (blocks.length === 0) return []
    let writerKey = this.writerKeys.get(writer)
    if (writerKey === undefined) {
      writerKey = Buffer.from(writer, 'hex')
      this.writerKeys.set(writer, writerKey)
    }
    const added: BroadcastEvent[] = []
    const startCursor = this.nextCursor
    try {
      this.db.transaction(() => {
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
              this.skip.run(reason, writer)
              this.opts.logger.warn({ writer, seq: input.seq, err: (err as Error).message }, 'skipped an invalid block from a writer')
              indexed = input.seq + 1
              continue
            }
          }
          // A clock far ahead would win every last-writer-wins comparison for good:
          // hold the block (and the rest of that log) until the wall clock catches up.
          if (input.decoded === undefined && decoded.events.some(e => e.hlc > (Date.now() + MAX_FUTURE_CLOCK_MS) * 1000)) {
            const reason = `block ${input.seq}: clock more than ${MAX_FUTURE_CLOCK_MS / 60_000} minutes ahead; held until it is not`
            this.markWriterError(writer, reason)
            this.opts.logger.warn({ writer, seq: input.seq }, 'holding a block whose clock is far in the future')
            break
          }
          sessionId = decoded.sessionId
          for (let idx = 0; idx < decoded.events.length; idx++) {
            const event = this.toEvent(writerKey, writer, input.seq, idx, decoded.sessionId, decoded.events[idx])
            const payload = JSON.stringify(event.payload)
            const result = this.insertEvent.run(event.event_id, event.event_type, event.resource_id, event.resource_type, event.agent_id, event.session_id, payload, event.timestamp, event.hlc, writer, input.seq, idx, event.parent, event.cursor)
            if (result.changes === 0) continue
            this.nextCursor++
            this.rules.apply(event)
            added.push(event)
          }
          indexed = input.seq + 1
        }
        this.rules.flush()
        this.checkpoint.run(indexed, sessionId, writer)
      })()
    } catch (err) {
      this.rules.discard()
      this.nextCursor = startCursor
      throw err
    }
    this.eventCount += added.length
    if (added.length > 0) {
      for (const event of added) this.opts.onObserve(event)
      if (this.publishing) this.opts.onCommit(added)
    }
    return added
  }

  private toEvent (writerKey: Buffer, writer: string, seq: number, idx: number, sessionId: string, wire: WireEvent): BroadcastEvent {
    return {
      event_id: eventIdOf(writerKey, seq, idx),
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
      cursor: this.nextCursor
    }
  }
}
