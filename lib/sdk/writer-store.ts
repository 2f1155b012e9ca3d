// The writers this node knows, kept beside the logs in their own small SQLite
// file (not in crosscast.db: that database is a cache that may be deleted, and
// a rebuild needs to know which logs to replay). Upserts, one transaction per
// batch: learning a thousand writers costs one small write, not a thousand
// rewrites of a list, and a failed write affects only its own batch.

import { readFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import BetterSqlite3, { type Database, type Statement } from 'better-sqlite3'
import type { Logger } from '../logger.ts'

export interface KnownWriter { key: string, sessionId: string, agentId: string, local: boolean }

/** A writer that forked or truncated its log: only its first `length` blocks (of the fork we held) are trusted. */
export interface Distrust { reason: string, length: number }

/**
 * Where a log stood when this node last closed it, idle and fully projected:
 * `held` blocks of fork `fork`. Null while the log is open (or was open when the
 * process stopped): such a log is opened on the next start and checked.
 * `ended`: its last block is its session's end marker.
 */
export interface ClosedAt { held: number, fork: number, ended: boolean }

export interface StoredWriter extends KnownWriter { distrust: Distrust | null, closed: ClosedAt | null }

const FILE = 'writers.db'
const LEGACY_FILE = 'writers.json'

function isKey (key: unknown): key is string {
  return typeof key === 'string' && /^[0-9a-f]{64}$/.test(key)
}

export class WriterStore {
  private readonly db: Database
  private readonly upsert: Statement
  private readonly distrustStmt: Statement
  private readonly openStmt: Statement
  private readonly closeStmt: Statement

  private constructor (db: Database) {
    this.db = db
    this.openStmt = db.prepare('UPDATE writers SET held = NULL WHERE key = ? AND held IS NOT NULL')
    this.closeStmt = db.prepare('UPDATE writers SET held = ?, fork = ?, ended = ? WHERE key = ?')
    this.upsert = db.prepare(`INSERT INTO writers (key, session_id, agent_id, local, held) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT(key) DO UPDATE SET local = max(local, excluded.local)`)
    this.distrustStmt = db.prepare('UPDATE writers SET distrust_reason = ?, distrust_length = ? WHERE key = ?')
  }

  /** Opens the store, importing a writers.json left by an older crosscast (then renamed, so it is imported once). */
  static async open (storage: string, logger: Logger): Promise<WriterStore> {
    const db = new BetterSqlite3(join(storage, FILE))
    db.pragma('journal_mode = WAL')
    db.pragma('busy_timeout = 5000')
    db.exec(`CREATE TABLE IF NOT EXISTS writers (
      key TEXT PRIMARY KEY,
      session_id TEXT NOT NULL,
      agent_id TEXT NOT NULL,
      local INTEGER NOT NULL DEFAULT 0,
      distrust_reason TEXT,
      distrust_length INTEGER,
      added INTEGER NOT NULL DEFAULT (unixepoch())
    )`)
    // Added by the writer lifecycle; a store made before it gets the columns (every log then counts as open once).
    const columns = new Set((db.prepare('PRAGMA table_info(writers)').all() as Array<{ name: string }>).map(col => col.name))
    if (!columns.has('held')) db.exec('ALTER TABLE writers ADD COLUMN held INTEGER')
    if (!columns.has('fork')) db.exec('ALTER TABLE writers ADD COLUMN fork INTEGER NOT NULL DEFAULT 0')
    if (!columns.has('ended')) db.exec('ALTER TABLE writers ADD COLUMN ended INTEGER NOT NULL DEFAULT 0')
    const store = new WriterStore(db)
    try {
      await store.importLegacy(storage, logger)
    } catch (err) {
      db.close()
      throw err
    }
    return store
  }

  private async importLegacy (storage: string, logger: Logger): Promise<void> {
    const path = join(storage, LEGACY_FILE)
    let parsed: unknown
    try {
      parsed = JSON.parse(await readFile(path, 'utf8'))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      logger.warn({ err: (err as Error).message, path }, 'could not read the old writers.json; its writers are learnt again from peers')
      return
    }
    const list = Array.isArray(parsed) ? parsed.filter((w): w is KnownWriter => isKey(w?.key) && typeof w.sessionId === 'string' && typeof w.agentId === 'string') : []
    this.add(list)
    await rename(path, path + '.imported')
    logger.info({ writers: list.length }, 'imported writers.json into writers.db')
  }

  list (): StoredWriter[] {
    return (this.db.prepare('SELECT key, session_id, agent_id, local, distrust_reason, distrust_length, held, fork, ended FROM writers ORDER BY local DESC, added, key').all() as Array<Record<string, unknown>>)
      .map(r => ({
        key: r.key as string,
        sessionId: r.session_id as string,
        agentId: r.agent_id as string,
        local: r.local === 1,
        distrust: r.distrust_reason === null ? null : { reason: r.distrust_reason as string, length: r.distrust_length as number },
        closed: r.held === null ? null : { held: r.held as number, fork: r.fork as number, ended: r.ended === 1 }
      }))
  }

  /** Upserts a batch in one transaction; a new writer listed in `closedAtZero` is stored as closed with nothing held (not opened on start). */
  add (writers: readonly KnownWriter[], closedAtZero: readonly string[] = []): void {
    if (writers.length === 0) return
    const closed = new Set(closedAtZero)
    this.db.transaction(() => {
      for (const w of writers) this.upsert.run(w.key, w.sessionId, w.agentId, w.local ? 1 : 0, closed.has(w.key) ? 0 : null)
    })()
  }

  /** These logs are open now: until they are closed again, a restart opens and checks them. */
  opened (keys: readonly string[]): void {
    if (keys.length === 0) return
    this.db.transaction(() => {
      for (const key of keys) this.openStmt.run(key)
    })()
  }

  /** These logs were closed, idle and projected up to where they stood. */
  closed (entries: ReadonlyArray<{ key: string, closed: ClosedAt }>): void {
    if (entries.length === 0) return
    this.db.transaction(() => {
      for (const { key, closed } of entries) this.closeStmt.run(closed.held, closed.fork, closed.ended ? 1 : 0, key)
    })()
  }

  distrust (key: string, distrust: Distrust): void {
    this.distrustStmt.run(distrust.reason, distrust.length, key)
  }

  close (): void {
    if (this.db.open) this.db.close()
  }
}

/** For read-only tools (the CLI): the writers of a storage directory without opening a node. */
export async function readKnownWriters (storage: string, logger: Logger): Promise<StoredWriter[]> {
  const store = await WriterStore.open(storage, logger)
  try {
    return store.list()
  } finally {
    store.close()
  }
}
