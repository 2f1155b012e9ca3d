// Room keys: one secret per room in the user's config directory (never in a
// repository), one file per room, shared by every session on the machine;
// invite tokens carry a room and its secret to another machine.

import { randomBytes, createHash } from 'node:crypto'
import { readFileSync, writeFileSync, mkdirSync, renameSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { CrosscastError } from '../errors.ts'
import { configDir } from './paths.ts'

type Env = Record<string, string | undefined>

export interface RoomKey { secret: string, created_at: string }

const TOKEN_PREFIX = 'ccinv1_'

/** Where room keys live: one file per room, so creating one is a single exclusive create. */
export function keysPath (env: Env = process.env): string {
  return join(configDir(env), 'keys')
}

function keyFile (room: string, env: Env): string {
  return join(keysPath(env), `${createHash('sha256').update(room).digest('hex').slice(0, 32)}.json`)
}

function readKeyFile (path: string): RoomKey | null {
  if (!existsSync(path)) return null
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<RoomKey>
  return typeof parsed.secret === 'string' && parsed.secret !== '' ? { secret: parsed.secret, created_at: String(parsed.created_at) } : null
}

function keyJson (room: string, key: RoomKey): string {
  return JSON.stringify({ room, ...key }, null, 2) + '\n'
}

export function getKey (room: string, env: Env = process.env): RoomKey | null {
  return readKeyFile(keyFile(room, env))
}

/** A short fingerprint of a secret, safe to print and to store beside the data. */
export function fingerprint (secret: string): string {
  return createHash('sha256').update('crosscast/key-fingerprint\n').update(secret).digest('hex').slice(0, 12)
}

/**
 * The room's key, created when there is none; `created` says which. Two
 * sessions starting at once race to create it: the exclusive create lets one
 * win, and the other reads the winner's key, so both join the same room.
 */
export function ensureKey (room: string, env: Env = process.env): { key: RoomKey, created: boolean } {
  const path = keyFile(room, env)
  const existing = readKeyFile(path)
  if (existing !== null) return { key: existing, created: false }
  mkdirSync(keysPath(env), { recursive: true, mode: 0o700 })
  const key = { secret: randomBytes(32).toString('base64url'), created_at: new Date().toISOString() }
  try {
    writeFileSync(path, keyJson(room, key), { mode: 0o600, flag: 'wx' })
    return { key, created: true }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    return { key: readKeyFile(path) ?? key, created: false }
  }
}

export function installKey (room: string, secret: string, env: Env = process.env): { replaced: RoomKey | null } {
  const path = keyFile(room, env)
  const replaced = readKeyFile(path)
  if (replaced?.secret === secret) return { replaced: null }
  mkdirSync(keysPath(env), { recursive: true, mode: 0o700 })
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, keyJson(room, { secret, created_at: new Date().toISOString() }), { mode: 0o600 })
  renameSync(tmp, path)
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
