// The SQLite layout. broadcast_events offers the seed's columns and two
// indexes, then what peer-to-peer needs (clock, position, parent, cursor).
// The database is a cache of the logs: deleting the file is always safe.

import { randomBytes } from 'node:crypto'
import type { Database } from 'better-sqlite3'
import { EVENT_TYPES, ID_PREFIXES, RESOURCE_TYPES } from '../events/types.ts'
import { MOVES_VERSION_SQL, STATE_TABLE } from './resources.ts'

/** 4: each state row keeps its item's version; claim events are indexed by item. */
export const SCHEMA_VERSION = 4

/**
 * broadcast_events stores each event in its smallest form and derives the
 * seed's text columns from it (virtual columns, computed on read): the event id
 * is the writer key's first 8 bytes, seq and idx; the timestamp is the clock's
 * milliseconds; writer and parent are stored as bytes, the event type as its
 * wire code. The cursor is the rowid, so rows sit in delivery order and no
 * separate cursor index is kept. Every insert touches the table and four
 * indexes: the event id (unique, as the seed's primary key), the seed's timestamp and
 * resource_id, and parent (sibling lookups for conflicts).
 */
const BROADCAST_EVENTS = `CREATE TABLE IF NOT EXISTS broadcast_events (
    cursor INTEGER PRIMARY KEY,
    writer_key BLOB NOT NULL,
    seq INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    type_code INTEGER NOT NULL,
    resource_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    payload JSON,
    hlc INTEGER NOT NULL,
    parent_key BLOB,
    event_id TEXT NOT NULL GENERATED ALWAYS AS (lower(hex(substr(writer_key, 1, 8))) || printf('%012x%04x', seq, idx)) VIRTUAL,
    event_type TEXT NOT NULL GENERATED ALWAYS AS (CASE type_code ${EVENT_TYPES.map((t, i) => `WHEN ${i} THEN '${t}'`).join(' ')} END) VIRTUAL,
    resource_type TEXT NOT NULL GENERATED ALWAYS AS (CASE substr(resource_id, 1, instr(resource_id, '-') - 1) ${RESOURCE_TYPES.map(r => `WHEN '${ID_PREFIXES[r]}' THEN '${r}'`).join(' ')} END) VIRTUAL,
    timestamp TEXT NOT NULL GENERATED ALWAYS AS (strftime('%Y-%m-%dT%H:%M:%fZ', (hlc / 1000) / 1000.0, 'unixepoch')) VIRTUAL,
    writer TEXT NOT NULL GENERATED ALWAYS AS (lower(hex(writer_key))) VIRTUAL,
    parent TEXT GENERATED ALWAYS AS (CASE WHEN parent_key IS NULL THEN NULL ELSE lower(hex(parent_key)) END) VIRTUAL
  )`

/**
 * event_id is unique and indexed, as the seed's PRIMARY KEY promises: a user's
 * `WHERE event_id = ?` is a lookup, not a scan. (An index on the position
 * bytes alone is about 20 B per event smaller, but would leave that query
 * scanning the whole trail.)
 */
export const EVENT_POSITION = 'event_id'
export const WHERE_EVENT_ID = 'event_id = ?'

/** The parameters of WHERE_EVENT_ID for an event id. */
export function eventIdParams (eventId: string): [string] {
  return [eventId]
}

/** The stored columns of broadcast_events, in the projector's insert order. */
export const STORED_EVENT_COLUMNS = ['cursor', 'writer_key', 'seq', 'idx', 'type_code', 'resource_id', 'agent_id', 'session_id', 'payload', 'hlc', 'parent_key'] as const

/**
 * Secondary indexes that only readers use: the projector never looks anything
 * up through them while it inserts (it needs the event-id index for ON CONFLICT
 * and the parent index for sibling lookups), and no statement names them in
 * INDEXED BY. A full rebuild drops them, inserts, and builds them again over
 * the finished tables: one sort instead of a random-keyed B-tree insert per row.
 * A rebuild interrupted in between leaves them missing; the next open's
 * migrate() creates them (IF NOT EXISTS).
 */
const READER_INDEXES = [
  'CREATE INDEX IF NOT EXISTS idx_broadcast_timestamp ON broadcast_events(timestamp)',
  'CREATE INDEX IF NOT EXISTS idx_broadcast_resource ON broadcast_events(resource_id)',
  'CREATE INDEX IF NOT EXISTS idx_features_track ON features(track_id)',
  // features() lists oldest first and pages by (created_hlc, id).
  'CREATE INDEX IF NOT EXISTS idx_features_created ON features(created_hlc, id)',
  'CREATE INDEX IF NOT EXISTS idx_links_feature ON links(feature_id)',
  'CREATE INDEX IF NOT EXISTS idx_comments_resource ON comments(resource_id)'
]

function indexName (createIndex: string): string {
  return /INDEX IF NOT EXISTS (\w+)/.exec(createIndex)![1]
}

const STATEMENTS = [
  BROADCAST_EVENTS,
  `CREATE UNIQUE INDEX IF NOT EXISTS idx_broadcast_event_id ON broadcast_events(${EVENT_POSITION})`,
  // Concurrency detection looks up siblings: events that share a parent.
  'CREATE INDEX IF NOT EXISTS idx_broadcast_parent ON broadcast_events(parent_key) WHERE parent_key IS NOT NULL',
  // Which items may hold a live claim (recent claim_added events), without a scan of the trail.
  "CREATE INDEX IF NOT EXISTS idx_broadcast_claims ON broadcast_events(hlc) WHERE event_type = 'claim_added'",
  // One item's claim events (who holds it), without visiting its other events.
  "CREATE INDEX IF NOT EXISTS idx_broadcast_claim_events ON broadcast_events(resource_id) WHERE event_type IN ('claim_added', 'claim_released')",
  `CREATE TABLE IF NOT EXISTS features (
    id TEXT PRIMARY KEY,
    title TEXT,
    status TEXT,
    description TEXT,
    tags JSON,
    priority TEXT,
    track_id TEXT,
    created_at TEXT,
    created_by TEXT,
    created_hlc INTEGER,
    updated_at TEXT,
    last_write_hlc INTEGER NOT NULL DEFAULT 0,
    deleted_hlc INTEGER,
    clocks JSON NOT NULL DEFAULT '{}',
    version TEXT
  )`,
  `CREATE TABLE IF NOT EXISTS tracks (
    id TEXT PRIMARY KEY,
    title TEXT,
    description TEXT,
    created_at TEXT,
    created_by TEXT,
    created_hlc INTEGER,
    updated_at TEXT,
    last_write_hlc INTEGER NOT NULL DEFAULT 0,
    clocks JSON NOT NULL DEFAULT '{}',
    version TEXT
  )`,
  `CREATE TABLE IF NOT EXISTS spikes (
    id TEXT PRIMARY KEY,
    title TEXT,
    findings TEXT,
    created_at TEXT,
    created_by TEXT,
    created_hlc INTEGER,
    updated_at TEXT,
    last_write_hlc INTEGER NOT NULL DEFAULT 0,
    clocks JSON NOT NULL DEFAULT '{}',
    version TEXT
  )`,
  `CREATE TABLE IF NOT EXISTS links (
    event_id TEXT PRIMARY KEY,
    feature_id TEXT NOT NULL,
    linked_feature_id TEXT NOT NULL,
    link_type TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    hlc INTEGER NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS comments (
    event_id TEXT PRIMARY KEY,
    resource_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    comment_text TEXT NOT NULL,
    author TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    hlc INTEGER NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS conflicts (
    resource_id TEXT NOT NULL,
    field TEXT NOT NULL,
    event_a TEXT NOT NULL,
    value_a JSON,
    event_b TEXT NOT NULL,
    value_b JSON,
    winner TEXT NOT NULL,
    PRIMARY KEY (resource_id, field, event_a, event_b)
  )`,
  // Per-writer checkpoint: how many blocks of that log are projected, and on
  // which fork of it, so a log that went behind or forked is noticed on open.
  `CREATE TABLE IF NOT EXISTS writers (
    key TEXT PRIMARY KEY,
    session_id TEXT,
    agent_id TEXT,
    local INTEGER NOT NULL DEFAULT 0,
    indexed INTEGER NOT NULL DEFAULT 0,
    skipped INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    fork INTEGER NOT NULL DEFAULT 0
  )`,
  // The database's identity (epoch): cursors are only meaningful within one.
  'CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)',
  ...READER_INDEXES
]

/** Every index a database of this version has, by name. */
export const INDEX_NAMES = STATEMENTS.filter(sql => sql.includes(' INDEX ')).map(indexName)

/** Columns added since, for databases created before them; `fill` sets their value in existing rows. */
const UPGRADES: Array<{ table: string, column: string, sql: string, fill?: string }> = [
  { table: 'writers', column: 'fork', sql: 'ALTER TABLE writers ADD COLUMN fork INTEGER NOT NULL DEFAULT 0' },
  // Version 4: what the projector would have written, the item's last event in cursor order that moves it.
  ...Object.values(STATE_TABLE).map(table => ({
    table,
    column: 'version',
    sql: `ALTER TABLE ${table} ADD COLUMN version TEXT`,
    fill: `UPDATE ${table} SET version = (SELECT event_id FROM broadcast_events
      WHERE resource_id = ${table}.id AND ${MOVES_VERSION_SQL} ORDER BY cursor DESC LIMIT 1)`
  }))
]

/** The tables whose content every peer must agree on (cursor and checkpoints are local). */
export const REPLICATED_TABLES = ['broadcast_events', 'features', 'tracks', 'spikes', 'links', 'comments', 'conflicts'] as const

export function migrate (db: Database): void {
  const version = db.pragma('user_version', { simple: true }) as number
  if (version > SCHEMA_VERSION) {
    throw new Error(`crosscast.db has schema version ${version}, newer than this crosscast (${SCHEMA_VERSION}); delete the file to rebuild it from the logs`)
  }
  db.transaction(() => {
    // The projection is a cache of the logs: a layout that is not this version's
    // (version 2's wide rows, or an event type list that grew) is dropped and
    // rebuilt from the logs, as if the file had been deleted.
    if (storedEventsTable(db) !== null && storedEventsTable(db) !== BROADCAST_EVENTS.replace('IF NOT EXISTS ', '')) {
      for (const table of REPLICATED_TABLES) db.exec(`DROP TABLE IF EXISTS ${table}`)
      if (tableExists(db, 'writers')) db.exec('UPDATE writers SET indexed = 0, skipped = 0, last_error = NULL')
      if (tableExists(db, 'meta')) db.exec("DELETE FROM meta WHERE key = 'epoch'")
    }
    for (const sql of STATEMENTS) db.exec(sql)
    for (const up of UPGRADES) {
      const columns = db.prepare(`SELECT name FROM pragma_table_info('${up.table}')`).all() as Array<{ name: string }>
      if (columns.some(c => c.name === up.column)) continue
      db.exec(up.sql)
      if (up.fill !== undefined) db.exec(up.fill)
    }
    if (readEpoch(db) === null) newEpoch(db)
    db.pragma(`user_version = ${SCHEMA_VERSION}`)
  })()
}

function storedEventsTable (db: Database): string | null {
  const row = db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'broadcast_events'").get() as { sql: string } | undefined
  return row?.sql ?? null
}

function tableExists (db: Database, name: string): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined
}

export function readEpoch (db: Database): string | null {
  const row = db.prepare("SELECT value FROM meta WHERE key = 'epoch'").get() as { value: string } | undefined
  return row?.value ?? null
}

/** A fresh identity: every cursor handed out before it belongs to another epoch. */
export function newEpoch (db: Database): string {
  const epoch = randomBytes(8).toString('hex')
  db.prepare("INSERT INTO meta (key, value) VALUES ('epoch', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(epoch)
  return epoch
}

export function configure (db: Database): void {
  db.pragma('journal_mode = WAL')
  // NORMAL in WAL mode survives a process crash (what the crash test kills);
  // the logs are the source of truth, so an OS crash costs at most a reindex of the tail.
  db.pragma('synchronous = NORMAL')
  db.pragma('busy_timeout = 5000')
  db.pragma('cache_size = -16000')
}

/**
 * Clears everything projected so the logs can be replayed from the start
 * (reindex), and drops the readers' indexes until buildReaderIndexes(); returns
 * the new epoch.
 */
export function clearProjection (db: Database): string {
  return db.transaction(() => {
    for (const sql of READER_INDEXES) db.exec(`DROP INDEX IF EXISTS ${indexName(sql)}`)
    for (const table of REPLICATED_TABLES) db.exec(`DELETE FROM ${table}`)
    db.exec('UPDATE writers SET indexed = 0, skipped = 0, last_error = NULL, fork = 0')
    return newEpoch(db)
  })()
}

/** Builds the indexes clearProjection() dropped, over what was projected since (one transaction). */
export function buildReaderIndexes (db: Database): void {
  db.transaction(() => { for (const sql of READER_INDEXES) db.exec(sql) })()
}
