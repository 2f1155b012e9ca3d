// `crosscast hook`: for agent tools' hooks (session start, prompt submit,
// after a tool call). Prints a compact summary of what other sessions changed
// since this session last looked, and nothing when nothing changed. It must
// answer in well under 200 ms, so it reads the room's database directly
// (read-only, beside a running node) and loads nothing else heavy.

import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync, renameSync } from 'node:fs'
import { join } from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import { roomDir } from './paths.ts'
import { projectRoom } from './room.ts'
import { liveNodes, pickNode, slotDirs } from './nodes.ts'
import { describeEvent } from './format.ts'

type Env = Record<string, string | undefined>

export interface HookInput { session_id?: string, cwd?: string, hook_event_name?: string }
export interface HookFlags { room?: string, session?: string, json?: boolean }

interface Mark { storage: string, epoch: string | null, cursor: number, hlc: number }
interface Row { cursor: number, hlc: number, event_type: string, resource_id: string, agent_id: string, session_id: string, payload: string, timestamp: string }

const MAX_LINES = 12

function nonEmpty (v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v
}

/**
 * Claude Code (and others) pass a JSON object on stdin and close it; anything
 * else is ignored. A stdin left open with nothing on it costs only a short wait.
 */
export async function readHookInput (stdin: NodeJS.ReadStream = process.stdin, idleMs = 20, waitMs = 150): Promise<HookInput> {
  if (stdin.isTTY === true) return {}
  return await new Promise(resolve => {
    let text = ''
    let timer: NodeJS.Timeout
    const done = (): void => {
      clearTimeout(timer)
      stdin.pause()
      stdin.removeAllListeners('data')
      try {
        const parsed = JSON.parse(text) as unknown
        resolve(parsed !== null && typeof parsed === 'object' ? parsed as HookInput : {})
      } catch {
        resolve({})
      }
    }
    timer = setTimeout(done, idleMs)
    stdin.on('data', (chunk: Buffer) => {
      // Input is arriving: give it until its end.
      if (text === '') { clearTimeout(timer); timer = setTimeout(done, waitMs) }
      text += chunk.toString('utf8')
    })
    stdin.once('end', done)
    stdin.once('error', done)
  })
}

function markPath (room: string, key: string, env: Env): string {
  return join(roomDir(room, env), 'hooks', `${key.replace(/[^A-Za-z0-9._@+-]/g, '_')}.json`)
}

function readMark (path: string): Mark | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Mark
  } catch {
    return null
  }
}

function saveMark (path: string, mark: Mark): void {
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 })
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify(mark) + '\n', { mode: 0o600 })
  renameSync(tmp, path)
}

/** The database to read: the running node's (freshest), else the most recently written slot. */
function sourceStorage (room: string, env: Env): { storage: string, ownSession: string | null } | null {
  const picked = pickNode(liveNodes(room, env))
  if (picked !== null) return { storage: picked.node.storage, ownSession: picked.mine && picked.node.kind === 'mcp' ? picked.node.session_id : null }
  let best: { storage: string, mtime: number } | null = null
  for (const dir of slotDirs(room, env)) {
    for (const file of ['crosscast.db-wal', 'crosscast.db']) {
      const path = join(dir, file)
      if (!existsSync(path)) continue
      const mtime = statSync(path).mtimeMs
      if (best === null || mtime > best.mtime) best = { storage: dir, mtime }
    }
  }
  return best === null ? null : { storage: best.storage, ownSession: null }
}

export interface HookResult { text: string, events: number, room: string }

export function runHook (flags: HookFlags, input: HookInput = {}, env: Env = process.env): HookResult {
  const room = nonEmpty(flags.room) ?? nonEmpty(env.CROSSCAST_ROOM) ?? projectRoom(input.cwd ?? process.cwd())
  const source = sourceStorage(room, env)
  if (source === null || !existsSync(join(source.storage, 'crosscast.db'))) return { text: '', events: 0, room }
  const own = new Set([source.ownSession, nonEmpty(flags.session), nonEmpty(env.CROSSCAST_SESSION)].filter((s): s is string => s != null))
  const key = nonEmpty(flags.session) ?? nonEmpty(env.CROSSCAST_SESSION) ?? source.ownSession ?? nonEmpty(input.session_id) ?? 'default'
  const path = markPath(room, key, env)
  const mark = readMark(path)
  const db = new BetterSqlite3(join(source.storage, 'crosscast.db'), { readonly: true, fileMustExist: true })
  try {
    const epoch = databaseEpoch(db)
    const top = db.prepare('SELECT coalesce(max(cursor), 0) AS cursor, coalesce(max(hlc), 0) AS hlc FROM broadcast_events').get() as { cursor: number, hlc: number }
    // Cursors are positions in one database (one epoch of it); after switching, the clock tells what is new.
    const rows = mark === null
      ? []
      : (mark.storage === source.storage && mark.epoch === epoch
          ? db.prepare('SELECT cursor, hlc, event_type, resource_id, agent_id, session_id, payload, timestamp FROM broadcast_events WHERE cursor > ? ORDER BY cursor LIMIT 500').all(mark.cursor)
          : db.prepare('SELECT cursor, hlc, event_type, resource_id, agent_id, session_id, payload, timestamp FROM broadcast_events WHERE hlc > ? ORDER BY cursor LIMIT 500').all(mark.hlc)) as Row[]
    const others = rows.filter(r => !own.has(r.session_id))
    const last = rows.length === 500 ? rows[rows.length - 1] : top
    saveMark(path, { storage: source.storage, epoch, cursor: last.cursor, hlc: Math.max(last.hlc, mark?.hlc ?? 0) })
    if (mark === null) return { text: firstLook(db, room), events: 0, room }
    if (others.length === 0) return { text: '', events: 0, room }
    return { text: summarize(db, room, others), events: others.length, room }
  } finally {
    db.close()
  }
}

/** The database's identity where the core keeps one (a rebuild starts a new one, renumbering cursors). */
function databaseEpoch (db: InstanceType<typeof BetterSqlite3>): string | null {
  try {
    return (db.prepare("SELECT value FROM meta WHERE key = 'epoch'").get() as { value: string } | undefined)?.value ?? null
  } catch {
    return null
  }
}

function firstLook (db: InstanceType<typeof BetterSqlite3>, room: string): string {
  const counts = db.prepare("SELECT status, count(*) AS n FROM features WHERE created_hlc IS NOT NULL AND (deleted_hlc IS NULL OR deleted_hlc < last_write_hlc) GROUP BY status").all() as Array<{ status: string, n: number }>
  if (counts.length === 0) return ''
  return `crosscast (${room}): ${counts.map(c => `${c.n} ${c.status}`).join(', ')} features on the shared board. Tools: list_items, ready, changes.`
}

function summarize (db: InstanceType<typeof BetterSqlite3>, room: string, rows: Row[]): string {
  const title = db.prepare('SELECT title FROM features WHERE id = ? UNION ALL SELECT title FROM tracks WHERE id = ? UNION ALL SELECT title FROM spikes WHERE id = ?')
  const byResource = new Map<string, Row[]>()
  for (const r of rows) {
    const list = byResource.get(r.resource_id) ?? []
    list.push(r)
    byResource.set(r.resource_id, list)
  }
  const lines = [`crosscast (${room}): ${rows.length} change${rows.length === 1 ? '' : 's'} by other sessions since you last looked`]
  for (const [id, events] of byResource) {
    if (lines.length > MAX_LINES) break
    const t = (title.get(id, id, id) as { title: string | null } | undefined)?.title
    const who = [...new Set(events.map(e => `${e.agent_id}/${e.session_id}`))].join(', ')
    const what = events.map(e => describeEvent({ event_type: e.event_type, payload: JSON.parse(e.payload) as Record<string, unknown> })).filter(d => d !== '').join('; ')
    lines.push(`  ${id}${t == null ? '' : ` "${t}"`}: ${what} (${who})`)
  }
  if (byResource.size > MAX_LINES) lines.push(`  ... ${byResource.size - MAX_LINES} more items changed: call changes for all of them`)
  return lines.join('\n')
}
