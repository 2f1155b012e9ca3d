// The per-machine storage pool of a room: numbered storage directories under
// the user's data directory. A session takes the first free one (one process
// per directory: the logs' database locks it), which already holds the room's
// history from earlier sessions, and opens its own log there. Only when every
// slot is busy does a new one start (it fills from the busy ones over the
// network, as from any peer).

import { mkdirSync, writeFileSync, renameSync, existsSync } from 'node:fs'
import BetterSqlite3 from 'better-sqlite3'
import { join } from 'node:path'
import { Crosscast } from '../sdk/crosscast.ts'
import type { CrosscastOptions } from '../sdk/options.ts'
import { CrosscastError, isCrosscastError } from '../errors.ts'
import { roomDir } from './paths.ts'
import { slotDirs } from './nodes.ts'
import { fingerprint } from './keys.ts'
import { roomMetaPath, readRoomMeta } from './identity.ts'

type Env = Record<string, string | undefined>

export const MAX_SLOTS = 32

/** Whether the slot holds this session's log (from its projection's writer table: a hint, so any failure is a no). */
function holdsSession (storage: string, sessionId: string): boolean {
  const path = join(storage, 'crosscast.db')
  if (!existsSync(path)) return false
  let db: InstanceType<typeof BetterSqlite3> | null = null
  try {
    db = new BetterSqlite3(path, { readonly: true, fileMustExist: true })
    return db.prepare('SELECT 1 FROM writers WHERE local = 1 AND session_id = ? LIMIT 1').get(sessionId) !== undefined
  } catch {
    return false
  } finally {
    db?.close()
  }
}

function recordRoom (room: string, secret: string | undefined, env: Env): void {
  mkdirSync(roomDir(room, env), { recursive: true, mode: 0o700 })
  const meta = readRoomMeta(room, env)
  const key = secret === undefined ? null : fingerprint(secret)
  if (meta !== null && (meta.key_fingerprint === key || key === null)) return
  // Replaced whole (sessions starting at once read it while another writes it).
  const path = roomMetaPath(room, env)
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify({ room, key_fingerprint: key, created_at: meta?.created_at ?? new Date().toISOString() }, null, 2) + '\n', { mode: 0o600 })
  renameSync(tmp, path)
}

/**
 * Opens a node for `opts.room` in the first free slot: the one that already
 * holds this session's log if it is free, else the lowest free one, else a new one.
 */
export async function openInPool (opts: Omit<CrosscastOptions, 'storage'> & { room: string, sessionId: string }, env: Env = process.env): Promise<Crosscast> {
  recordRoom(opts.room, opts.secret, env)
  const existing = slotDirs(opts.room, env)
  const own = existing.map(dir => holdsSession(dir, opts.sessionId))
  const ordered = [...existing.filter((_, i) => own[i]), ...existing.filter((_, i) => !own[i])]
  for (let i = 0; ordered.length < MAX_SLOTS; i++) {
    const dir = join(roomDir(opts.room, env), String(i))
    if (!ordered.includes(dir)) ordered.push(dir)
  }
  for (const storage of ordered) {
    if (!existsSync(storage)) mkdirSync(storage, { recursive: true, mode: 0o700 })
    try {
      return await Crosscast.open({ ...opts, storage })
    } catch (err) {
      if (isCrosscastError(err) && err.code === 'STORAGE_LOCKED') continue
      throw err
    }
  }
  throw new CrosscastError('LIMIT_REACHED', `all ${MAX_SLOTS} storage slots of room ${opts.room} under ${roomDir(opts.room, env)} are in use by running sessions; end one, or pass --storage`, { field: 'storage' })
}
