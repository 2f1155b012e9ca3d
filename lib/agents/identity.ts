// Who a session is and which room it joins: flags first, then environment
// (CROSSCAST_ROOM, CROSSCAST_SECRET, CROSSCAST_AGENT, CROSSCAST_SESSION), then
// defaults: the project's room with this machine's key for it, and a fresh
// session id.

import { randomBytes } from 'node:crypto'
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { CrosscastError } from '../errors.ts'
import { validateLabel } from '../events/validate.ts'
import { projectRoom } from './room.ts'
import { getKey, ensureKey, keysPath } from './keys.ts'
import { roomDir } from './paths.ts'

type Env = Record<string, string | undefined>

export interface IdentityFlags { room?: string, secret?: string, agent?: string, session?: string }

export interface Identity {
  room: string
  /** True when the room came from the project, not from a flag or the environment. */
  derived: boolean
  secret: string | undefined
  /** A key was created for the room just now (first session of a derived room on this machine). */
  keyCreated: boolean
  agent: string
  sessionId: string
}

export interface RoomMeta { room: string, key_fingerprint: string | null, created_at: string }

export function roomMetaPath (room: string, env: Env = process.env): string {
  return join(roomDir(room, env), 'room.json')
}

export function readRoomMeta (room: string, env: Env = process.env): RoomMeta | null {
  const path = roomMetaPath(room, env)
  return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) as RoomMeta : null
}

function pick (...values: Array<string | undefined>): string | undefined {
  return values.find(v => v !== undefined && v !== '')
}

export function newSessionId (): string {
  return `ses-${randomBytes(4).toString('hex')}`
}

export function resolveIdentity (flags: IdentityFlags, env: Env = process.env, cwd: string = process.cwd()): Identity {
  const explicitRoom = pick(flags.room, env.CROSSCAST_ROOM)
  const room = explicitRoom ?? projectRoom(cwd)
  const agent = validateLabel(pick(flags.agent, env.CROSSCAST_AGENT) ?? 'agent', 'agent')
  const sessionId = validateLabel(pick(flags.session, env.CROSSCAST_SESSION) ?? newSessionId(), 'session')
  let secret = pick(flags.secret, env.CROSSCAST_SECRET, getKey(room, env)?.secret)
  let keyCreated = false
  if (secret === undefined) {
    const meta = readRoomMeta(room, env)
    if (meta?.key_fingerprint != null) {
      throw new CrosscastError('INVALID_OPTION', `room ${room} has a secret (this machine's data for it was made with key ${meta.key_fingerprint}) but there is no key for it in ${keysPath(env)}: run \`crosscast invite\` on a machine in the room, then \`crosscast join TOKEN\` here (or pass --secret)`, { field: 'secret' })
    }
    // A room derived from a repository is guessable: it is never joined without a secret.
    if (explicitRoom === undefined) {
      const { key, created } = ensureKey(room, env)
      secret = key.secret
      keyCreated = created
    }
  }
  return { room, derived: explicitRoom === undefined, secret, keyCreated, agent, sessionId }
}
