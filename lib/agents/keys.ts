// Room keys: one secret per room in the user's config directory (never in a
// repository), shared by every session on the machine; invite tokens carry a
// room and its secret to another machine.

import { randomBytes, createHash } from 'node:crypto'
import { readFileSync, writeFileSync, mkdirSync, renameSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { CrosscastError } from '../errors.ts'
import { configDir } from './paths.ts'

type Env = Record<string, string | undefined>

export interface RoomKey { secret: string, created_at: string }
interface KeyFile { version: 1, rooms: Record<string, RoomKey> }

const TOKEN_PREFIX = 'ccinv1_'

export function keysPath (env: Env = process.env): string {
  return join(configDir(env), 'keys.json')
}

function readKeys (env: Env): KeyFile {
  const path = keysPath(env)
  if (!existsSync(path)) return { version: 1, rooms: {} }
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<KeyFile>
  return { version: 1, rooms: parsed.rooms ?? {} }
}

function writeKeys (keys: KeyFile, env: Env): void {
  const path = keysPath(env)
  mkdirSync(configDir(env), { recursive: true, mode: 0o700 })
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify(keys, null, 2) + '\n', { mode: 0o600 })
  renameSync(tmp, path)
}

export function getKey (room: string, env: Env = process.env): RoomKey | null {
  return readKeys(env).rooms[room] ?? null
}

/** A short fingerprint of a secret, safe to print and to store beside the data. */
export function fingerprint (secret: string): string {
  return createHash('sha256').update('crosscast/key-fingerprint\n').update(secret).digest('hex').slice(0, 12)
}

/** The room's key, created when there is none; `created` says which. */
export function ensureKey (room: string, env: Env = process.env): { key: RoomKey, created: boolean } {
  const keys = readKeys(env)
  const existing = keys.rooms[room]
  if (existing !== undefined) return { key: existing, created: false }
  const key = { secret: randomBytes(32).toString('base64url'), created_at: new Date().toISOString() }
  keys.rooms[room] = key
  writeKeys(keys, env)
  // Two sessions may create a key at the same instant: the file keeps one, and both use it.
  return { key: readKeys(env).rooms[room] ?? key, created: true }
}

export function installKey (room: string, secret: string, env: Env = process.env): { replaced: RoomKey | null } {
  const keys = readKeys(env)
  const replaced = keys.rooms[room] ?? null
  if (replaced?.secret === secret) return { replaced: null }
  keys.rooms[room] = { secret, created_at: new Date().toISOString() }
  writeKeys(keys, env)
  return { replaced }
}

export function inviteToken (room: string, secret: string): string {
  return TOKEN_PREFIX + Buffer.from(JSON.stringify({ r: room, s: secret })).toString('base64url')
}

export function parseInvite (token: string): { room: string, secret: string } {
  const bad = (): never => { throw new CrosscastError('INVALID_OPTION', `not a crosscast invite token (they start with ${TOKEN_PREFIX}; get one with \`crosscast invite\` on a machine already in the room)`, { field: 'token' }) }
  if (typeof token !== 'string' || !token.startsWith(TOKEN_PREFIX)) bad()
  let parsed: { r?: unknown, s?: unknown }
  try {
    parsed = JSON.parse(Buffer.from(token.slice(TOKEN_PREFIX.length), 'base64url').toString('utf8'))
  } catch {
    return bad()
  }
  if (typeof parsed.r !== 'string' || parsed.r === '' || typeof parsed.s !== 'string' || parsed.s === '') bad()
  return { room: parsed.r as string, secret: parsed.s as string }
}
