// Deterministic state rules. Every peer applies the same events in whatever
// order they arrive and must end with identical rows, so each rule is a pure
// function of the set of events: per-field last-writer-wins by (hlc, writer),
// tombstones compared by clock, add-only sets keyed by event id, and conflicts
// defined on pairs of events rather than on arrival order.

import type { Database, Statement } from 'better-sqlite3'
import { RESOURCE_TYPES, type BroadcastEvent, type ResourceType } from '../events/types.ts'
import { movesVersion, STATE_FIELDS as FIELDS, STATE_TABLE as TABLE } from './resources.ts'

type Clock = [number, string] // [hlc, writer]
type Clocks = Record<string, Clock>

interface StateRow { clocks: string, created_hlc: number | null, last_write_hlc: number, [field: string]: unknown }

/** Rows per upsert statement (14 parameters each at most). */
const UPSERT_CHUNK = 64
/**
 * Columns of a state row that indexes hold (features: idx_features_track and
 * idx_features_created). An upsert that sets them rewrites their index entries
 * even to the same values, dirtying one leaf per index per row, so a row whose
 * stored values of these are unchanged is upserted without them.
 */
const INDEXED_COLUMNS: Record<ResourceType, readonly string[]> = { feature: ['track_id', 'created_hlc'], track: [], spike: [] }
/** State rows kept in memory between transactions (a few hundred bytes each). */
const ROW_CACHE_SIZE = 10_000

/**
 * Keys sorted: peers that learnt the fields in another order store the same
 * bytes. Written out by hand (about 5x faster than JSON.stringify of a sorted
 * copy; a third of a create's state upsert): the text is byte for byte what
 * JSON.stringify gives, since keys are field names and `$created`, clocks are
 * integers and writers are hex keys, none of which JSON escapes.
 */
export function canonicalJson (clocks: Clocks): string {
  const keys = Object.keys(clocks).sort()
  let out = '{'
  for (let i = 0; i < keys.length; i++) {
    const [hlc, writer] = clocks[keys[i]]
    out += `${i === 0 ? '' : ','}"${keys[i]}":[${hlc},"${writer}"]`
  }
  return out + '}'
}

export function newer (a: Clock, b: Clock | undefined): boolean {
  if (b === undefined) return true
  return a[0] !== b[0] ? a[0] > b[0] : a[1] > b[1]
}

/** The fields an event sets on its resource, with their stored (SQLite) values. */
export function fieldWrites (event: Pick<BroadcastEvent, 'event_type' | 'payload'>): Record<string, unknown> | null {
  const p = event.payload as unknown as Record<string, unknown>
  switch (event.event_type) {
    case 'feature_created':
    case 'feature_updated':
    case 'track_updated':
    case 'spike_updated': {
      const out: Record<string, unknown> = {}
      for (const k in p) out[k] = k === 'tags' ? JSON.stringify(p[k]) : p[k]
      return out
    }
    case 'status_changed':
      return { status: p.new_status }
    default:
      return null
  }
}

interface RowEntry {
  type: ResourceType
  row: Record<string, unknown>
  clocks: Clocks
  /** The INDEXED_COLUMNS values as stored, when the row is stored. */
  stored?: unknown[]
}

export class StateRules {
  private readonly select: Record<ResourceType, Statement>
  private readonly db: Database
  /** Each state table's upserted columns, id first. */
  private readonly columns: Record<ResourceType, string[]>
  /** The columns an upsert of a row that exists sets when its indexed columns keep their stored values. */
  private readonly unindexed: Record<ResourceType, string[]>
  /** Multi-row upserts by table and row count. */
  private readonly upserts = new Map<string, Statement>()
  private readonly tombstone: Statement
  private readonly insertLink: Statement
  private readonly insertComment: Statement
  private readonly siblings: Statement
  private readonly insertConflict: Statement
  /**
   * State rows as last written, most recently used last. The projector is the
   * only writer of these tables, so the cache stays exact: a row is read from
   * SQLite once, and a block of hundreds of events on a few features writes
   * each row once (at flush).
   */
  private readonly rows = new Map<string, RowEntry>()
  /** Rows touched by the open transaction: written at flush(), stored once it commits, dropped if it does not. */
  private readonly dirty = new Set<string>()

  constructor (db: Database) {
    this.db = db
    this.select = {} as Record<ResourceType, Statement>
    this.columns = {} as Record<ResourceType, string[]>
    this.unindexed = {} as Record<ResourceType, string[]>
    for (const type of ['feature', 'track', 'spike'] as const) {
      const all = [...FIELDS[type], 'created_at', 'created_by', 'created_hlc', 'updated_at', 'last_write_hlc', 'clocks', 'version']
      this.select[type] = db.prepare(`SELECT ${all.join(', ')} FROM ${TABLE[type]} WHERE id = ?`)
      this.columns[type] = ['id', ...all]
      this.unindexed[type] = all.filter(c => !INDEXED_COLUMNS[type].includes(c))
    }
    this.tombstone = db.prepare(
      `INSERT INTO features (id, deleted_hlc) VALUES (?, ?)
       ON CONFLICT(id) DO UPDATE SET deleted_hlc = max(coalesce(deleted_hlc, 0), excluded.deleted_hlc)`
    )
    this.insertLink = db.prepare('INSERT OR IGNORE INTO links (event_id, feature_id, linked_feature_id, link_type, agent_id, created_at, hlc) VALUES (?, ?, ?, ?, ?, ?, ?)')
    this.insertComment = db.prepare('INSERT OR IGNORE INTO comments (event_id, resource_id, resource_type, comment_text, author, agent_id, session_id, created_at, hlc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
    // Named: without statistics SQLite picks the resource_id index, and visits every event of the item (hundreds, growing) per event projected.
    this.siblings = db.prepare('SELECT event_id, event_type, payload, hlc, writer FROM broadcast_events INDEXED BY idx_broadcast_parent WHERE parent_key = ? AND resource_id = ? AND writer_key != ?')
    this.insertConflict = db.prepare('INSERT OR IGNORE INTO conflicts (resource_id, field, event_a, value_a, event_b, value_b, winner) VALUES (?, ?, ?, ?, ?, ?, ?)')
  }

  /**
   * `writerKey` and `parentKey`: the event's writer and parent as stored (bytes).
   * Events come in cursor order, so each one that moves its item's version names it.
   */
  apply (event: BroadcastEvent, writerKey: Uint8Array, parentKey: Uint8Array | null): void {
    const p = event.payload as unknown as Record<string, unknown>
    switch (event.event_type) {
      case 'feature_deleted':
        this.tombstone.run(event.resource_id, event.hlc)
        break
      case 'link_added':
        this.insertLink.run(event.event_id, event.resource_id, p.linked_feature_id, p.link_type, event.agent_id, event.timestamp, event.hlc)
        break
      case 'comment_added':
        this.insertComment.run(event.event_id, event.resource_id, event.resource_type, p.comment_text, p.author, event.agent_id, event.session_id, event.timestamp, event.hlc)
        break
      default: {
        const writes = fieldWrites(event)
        if (writes !== null) {
          this.writeFields(event, writes)
          if (parentKey !== null) this.detectConflicts(event, writes, writerKey, parentKey)
        }
      }
    }
    if (movesVersion(event.event_type)) {
      // A link to a feature not created here yet makes no row (an invisible one would read as deleted); its create, later in cursor order, names the version.
      const entry = event.event_type === 'link_added' ? this.loadStored(event.resource_type, event.resource_id) : this.load(event.resource_type, event.resource_id)
      if (entry !== null) entry.row.version = event.event_id
    }
  }

  /** The row of an item, as cached or stored; created (at flush) when there is none. */
  private load (type: ResourceType, id: string, stored?: StateRow): RowEntry {
    let entry = this.rows.get(id)
    if (entry !== undefined && !this.dirty.has(id)) {
      // Move to the most recently used end.
      this.rows.delete(id)
      this.rows.set(id, entry)
    }
    if (entry === undefined) {
      const existing = stored ?? this.select[type].get(id) as StateRow | undefined
      const row: Record<string, unknown> = existing === undefined
        ? { created_at: null, created_by: null, created_hlc: null, updated_at: null, last_write_hlc: 0, version: null }
        : { ...existing }
      for (const f of FIELDS[type]) if (!(f in row)) row[f] = null
      entry = { type, row, clocks: existing === undefined ? {} : JSON.parse(existing.clocks) }
      if (existing !== undefined) entry.stored = INDEXED_COLUMNS[type].map(c => existing[c])
      this.rows.set(id, entry)
    }
    this.dirty.add(id)
    return entry
  }

  /** The row of an item that has one (every cached row is written at flush), else null. */
  private loadStored (type: ResourceType, id: string): RowEntry | null {
    if (this.rows.has(id)) return this.load(type, id)
    const stored = this.select[type].get(id) as StateRow | undefined
    return stored === undefined ? null : this.load(type, id, stored)
  }

  /** Writes every row the transaction touched; call before it commits, then committed() or discard(). */
  flush (): void {
    const values: Record<ResourceType, unknown[]> = { feature: [], track: [], spike: [] }
    // Rows stored with the indexed values they still have: upserted without setting those.
    const unindexed: Record<ResourceType, unknown[]> = { feature: [], track: [], spike: [] }
    for (const id of this.dirty) {
      const entry = this.rows.get(id)!
      const { type, row, clocks } = entry
      const indexed = INDEXED_COLUMNS[type]
      const keep = entry.stored !== undefined && indexed.every((c, i) => row[c] === entry.stored![i])
      const out = keep && indexed.length > 0 ? unindexed[type] : values[type]
      for (const column of this.columns[type]) out.push(column === 'id' ? id : column === 'clocks' ? canonicalJson(clocks) : row[column])
      entry.stored = indexed.map(c => row[c])
    }
    for (const type of RESOURCE_TYPES) {
      this.upsertRows(type, values[type], this.columns[type].slice(1))
      this.upsertRows(type, unindexed[type], this.unindexed[type])
    }
  }

  /** One statement per UPSERT_CHUNK rows: a block of creates touches hundreds of rows. */
  private upsertRows (type: ResourceType, values: unknown[], updated: string[]): void {
    const width = this.columns[type].length
    const count = values.length / width
    for (let start = 0; start < count; start += UPSERT_CHUNK) {
      const n = Math.min(UPSERT_CHUNK, count - start)
      const key = `${type}:${n}:${updated.length}`
      let stmt = this.upserts.get(key)
      if (stmt === undefined) {
        const columns = this.columns[type]
        const one = `(${columns.map(() => '?').join(', ')})`
        stmt = this.db.prepare(`INSERT INTO ${TABLE[type]} (${columns.join(', ')}) VALUES ${new Array(n).fill(one).join(', ')}
          ON CONFLICT(id) DO UPDATE SET ${updated.map(c => `${c} = excluded.${c}`).join(', ')}`)
        this.upserts.set(key, stmt)
      }
      stmt.run(values.slice(start * width, (start + n) * width))
    }
  }

  /** The transaction rolled back: rows it touched are stale, read them again next time. */
  discard (): void {
    for (const id of this.dirty) this.rows.delete(id)
    this.dirty.clear()
  }

  /** The transaction that flushed the cached rows committed: they are what is stored. */
  committed (): void {
    this.dirty.clear()
    for (const id of this.rows.keys()) {
      if (this.rows.size <= ROW_CACHE_SIZE) break
      this.rows.delete(id)
    }
  }

  /** The tables were cleared (reindex). */
  reset (): void {
    this.rows.clear()
    this.dirty.clear()
  }

  private writeFields (event: BroadcastEvent, writes: Record<string, unknown>): void {
    const { row, clocks } = this.load(event.resource_type, event.resource_id)
    const clock: Clock = [event.hlc, event.writer]
    for (const field in writes) {
      if (newer(clock, clocks[field])) {
        clocks[field] = clock
        row[field] = writes[field]
      }
    }
    // A track or spike comes into being with its first upsert; a feature with its create.
    const creates = event.event_type !== 'feature_updated' && event.event_type !== 'status_changed'
    // The earliest create by (clock, writer) wins, so equal clocks on two writers name the same creator everywhere.
    if (creates && (clocks.$created === undefined || newer(clocks.$created, clock))) {
      clocks.$created = clock
      row.created_hlc = event.hlc
      row.created_at = event.timestamp
      row.created_by = event.agent_id
    }
    if (event.hlc > (row.last_write_hlc as number)) {
      row.last_write_hlc = event.hlc
      row.updated_at = event.timestamp
    }
  }

  /**
   * Two events from different writers with the same parent were written without
   * seeing each other. Where both set a field to different values, the pair is
   * recorded once, whichever arrived second finding the first.
   */
  private detectConflicts (event: BroadcastEvent, writes: Record<string, unknown>, writerKey: Uint8Array, parentKey: Uint8Array): void {
    const rows = this.siblings.all(parentKey, event.resource_id, writerKey) as Array<{ event_id: string, event_type: BroadcastEvent['event_type'], payload: string, hlc: number, writer: string }>
    for (const other of rows) {
      const otherWrites = fieldWrites({ event_type: other.event_type, payload: JSON.parse(other.payload) })
      if (otherWrites === null) continue
      for (const [field, value] of Object.entries(writes)) {
        if (!(field in otherWrites) || otherWrites[field] === value) continue
        const mine: [string, unknown, Clock] = [event.event_id, value, [event.hlc, event.writer]]
        const theirs: [string, unknown, Clock] = [other.event_id, otherWrites[field], [other.hlc, other.writer]]
        const [a, b] = mine[0] < theirs[0] ? [mine, theirs] : [theirs, mine]
        const winner = newer(a[2], b[2]) ? a[0] : b[0]
        this.insertConflict.run(event.resource_id, field, a[0], JSON.stringify(a[1]), b[0], JSON.stringify(b[1]), winner)
      }
    }
  }
}
