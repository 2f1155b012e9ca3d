// Where crosscast keeps things on this machine, outside any repository:
// data (the per-room storage pool) under the XDG data directory, room keys
// under the XDG config directory. CROSSCAST_HOME moves both (tests, sandboxes).

import { homedir } from 'node:os'
import { join } from 'node:path'
import { createHash } from 'node:crypto'

type Env = Record<string, string | undefined>

function set (value: string | undefined): value is string {
  return value !== undefined && value !== ''
}

export function dataDir (env: Env = process.env): string {
  if (set(env.CROSSCAST_HOME)) return join(env.CROSSCAST_HOME, 'data')
  return join(set(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : join(homedir(), '.local', 'share'), 'crosscast')
}

export function configDir (env: Env = process.env): string {
  if (set(env.CROSSCAST_HOME)) return join(env.CROSSCAST_HOME, 'config')
  return join(set(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(homedir(), '.config'), 'crosscast')
}

/** A room's directory name: a hash, so the name (a repository URL) is not spelled out on disk. */
export function roomDir (room: string, env: Env = process.env): string {
  return join(dataDir(env), 'rooms', createHash('sha256').update(room).digest('hex').slice(0, 16))
}
