// The two ways a subcommand opens a storage directory: as a node without
// network (it must hold the storage), or its database alone, read-only
// (works beside a running `crosscast serve`).

import BetterSqlite3 from 'better-sqlite3'
import { Option } from 'commander'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Crosscast } from '../index.ts'
import { CrosscastError } from '../errors.ts'
import type { BroadcastEvent, EventType } from '../events/types.ts'
import { EventReader } from '../projection/queries.ts'
import { readKnownWriters } from '../sdk/writer-store.ts'
import { silentLogger } from '../logger.ts'

/** Every subcommand's --storage: optional, the same default as `crosscast serve`. */
export function storageOption (): Option {
  return new Option('--storage <dir>', 'storage directory').default('.crosscast')
}

/**
 * Opens a storage directory offline: these commands read and rebuild, they do
 * not sync. It reuses a session that already lives there, so inspecting a
 * storage does not add a log to it.
 */
export async function openOffline (storage: string): Promise<Crosscast> {
  const existing = existsSync(storage) ? (await readKnownWriters(storage, silentLogger)).find(w => w.local) : undefined
  // Loaded here, not at the top: hooks and reads through a running node must start fast.
  const { Crosscast } = await import('../index.ts')
  return await Crosscast.open({ storage, sessionId: existing?.sessionId ?? 'cli', agent: existing?.agentId ?? 'cli', swarm: false, lan: false })
}

export interface ReadOnlyStorage {
  db: InstanceType<typeof BetterSqlite3>
  page: (filter: { type?: EventType, resourceId?: string }, since: number, limit: number) => BroadcastEvent[]
  lastCursor: () => number
  /** The cursor to replay after so that the last `n` events come next. */
  cursorBeforeLast: (n: number) => number
  close: () => void
}

/** The database alone, read-only: usable while another process has the storage open. */
export function openReadOnly (storage: string): ReadOnlyStorage {
  const path = join(storage, 'crosscast.db')
  if (!existsSync(path)) throw new CrosscastError('NOT_FOUND', `${path} does not exist; is --storage the directory a crosscast node uses?`, { field: 'storage' })
  const db = new BetterSqlite3(path, { readonly: true, fileMustExist: true })
  const reader = new EventReader(db)
  const nthNewest = db.prepare('SELECT cursor FROM broadcast_events ORDER BY cursor DESC LIMIT 1 OFFSET ?')
  const newest = db.prepare('SELECT coalesce(max(cursor), 0) AS c FROM broadcast_events')
  const lastCursor = (): number => (newest.get() as { c: number }).c
  return {
    db,
    page: (filter, since, limit) => {
      const where: string[] = []
      const params: unknown[] = []
      if (filter.type !== undefined) { where.push('event_type = ?'); params.push(filter.type) }
      if (filter.resourceId !== undefined) { where.push('resource_id = ?'); params.push(filter.resourceId) }
      return reader.after(since, where.length === 0 ? '1' : where.join(' AND '), params, limit)
    },
    lastCursor,
    cursorBeforeLast: (n) => {
      if (n === 0) return lastCursor()
      const row = nthNewest.get(n - 1) as { cursor: number } | undefined
      return row === undefined ? 0 : row.cursor - 1
    },
    close: () => db.close()
  }
}
