// The SQLite layout. broadcast_events keeps exactly the seed's columns and two
// indexes first, then what peer-to-peer needs (clock, position, parent, cursor).
// The database is a cache of the logs: deleting the file is always safe.

import { randomBytes } from 'node:crypto'
import type { Database } from 'better-sqlite3'

export const SCHEMA_VERSION = 2

const STATEMENTS = [
  `CREATE TABLE IF NOT EXISTS broadcast_events (
    event_id TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    payload JSON,
    timestamp TEXT NOT NULL,
    hlc INTEGER NOT NULL,
    writer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    parent TEXT,
    cursor INTEGER NOT NULL UNIQUE
  )`,
  'CREATE INDEX IF NOT EXISTS idx_broadcast_timestamp ON broadcast_events(timestamp)',
  'CREATE INDEX IF NOT EXISTS idx_broadcast_resource ON broadcast_events(resource_id)',
  // Concurrency detection looks up siblings: events that share a parent.
  'CREATE INDEX IF NOT EXISTS idx_broadcast_parent ON broadcast_events(parent) WHERE parent IS NOT NULL',
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
    clocks JSON NOT NULL DEFAULT '{}'
  )`,
  'CREATE INDEX IF NOT EXISTS idx_features_track ON features(track_id)',
  `CREATE TABLE IF NOT EXISTS tracks (
    id TEXT PRIMARY KEY,
    title TEXT,
    description TEXT,
    created_at TEXT,
    created_by TEXT,
    created_hlc INTEGER,
    updated_at TEXT,
    last_write_hlc INTEGER NOT NULL DEFAULT 0,
    clocks JSON NOT NULL DEFAULT '{}'
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
    clocks JSON NOT NULL DEFAULT '{}'
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
  'CREATE INDEX IF NOT EXISTS idx_links_feature ON links(feature_id)',
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
  'CREATE INDEX IF NOT EXISTS idx_comments_resource ON comments(resource_id)',
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
  'CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)'
]

/** Columns added after version 1, for databases created by it. */
const UPGRADES: Array<{ table: string, column: string, sql: string }> = [
  { table: 'writers', column: 'fork', sql: 'ALTER TABLE writers ADD COLUMN fork INTEGER NOT NULL DEFAULT 0' }
]

/** The tables whose content every peer must agree on (cursor and checkpoints are local). */
export const REPLICATED_TABLES = ['broadcast_events', 'features', 'tracks', 'spikes', 'links', 'comments', 'conflicts'] as const

export function migrate (db: Database): void {
  const version = db.pragma('user_version', { simple: true }) as number
  if (version > SCHEMA_VERSION) {
    throw new Error(`crosscast.db has schema version ${version}, newer than this crosscast (${SCHEMA_VERSION}); delete the file to rebuild it from the logs`)
  }
  db.transaction(() => {
    for (const sql of STATEMENTS) db.exec(sql)
    for (const up of UPGRADES) {
      const columns = db.prepare(`SELECT name FROM pragma_table_info('${up.table}')`).all() as Array<{ name: string }>
      if (!columns.some(c => c.name === up.column)) db.exec(up.sql)
    }
    if (readEpoch(db) === null) newEpoch(db)
    db.pragma(`user_version = ${SCHEMA_VERSION}`)
  })()
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

/** Clears everything projected so the logs can be replayed from the start (reindex); returns the new epoch. */
export function clearProjection (db: Database): string {
  return db.transaction(() => {
    for (const table of REPLICATED_TABLES) db.exec(`DELETE FROM ${table}`)
    db.exec('UPDATE writers SET indexed = 0, skipped = 0, last_error = NULL, fork = 0')
    return newEpoch(db)
  })()
}
