import { createHash } from 'node:crypto'
import type { Database } from 'better-sqlite3'
import { REPLICATED_TABLES } from './schema.ts'

// Columns that are this node's own business: the local delivery order, and
// each item's version (its last event in that order).
const LOCAL_COLUMNS = new Set(['cursor', 'version'])

/**
 * A hash of everything peers must agree on: every replicated table, rows in a
 * canonical order, local columns left out. Two converged peers, or a database
 * and its reindex, hash the same.
 */
export function contentHash (db: Database): string {
  const hash = createHash('sha256')
  for (const table of REPLICATED_TABLES) {
    // table_xinfo lists generated columns too (the seed's derived text columns of broadcast_events).
    const columns = (db.prepare(`PRAGMA table_xinfo(${table})`).all() as Array<{ name: string, hidden: number }>)
      .filter(c => c.hidden !== 1)
      .map(c => c.name)
      .filter(c => !LOCAL_COLUMNS.has(c))
    hash.update(`\u0000${table}\u0000`)
    const stmt = db.prepare(`SELECT ${columns.join(', ')} FROM ${table} ORDER BY ${columns.join(', ')}`).raw(true)
    for (const row of stmt.iterate() as Iterable<unknown[]>) hash.update(JSON.stringify(row) + '\n')
  }
  return hash.digest('hex')
}
