// Which process has a storage directory open. The lock itself is corestore's;
// this file only lets the process that is refused name the one holding it.

import { readFile, writeFile, rm } from 'node:fs/promises'
import { join } from 'node:path'

const OWNER_FILE = 'owner.json'

interface Owner { pid: number, command: string, since: string }

/** Written once the lock is held, so whoever is refused next can name this process. */
export async function recordOwner (storage: string): Promise<void> {
  const owner: Owner = { pid: process.pid, command: process.argv.slice(1).join(' '), since: new Date().toISOString() }
  await writeFile(join(storage, OWNER_FILE), JSON.stringify(owner) + '\n')
}

export async function clearOwner (storage: string): Promise<void> {
  await rm(join(storage, OWNER_FILE), { force: true })
}

/** "pid 1234 (node crosscast serve, since …)", or null when the holder did not say who it is. */
export async function describeOwner (storage: string): Promise<string | null> {
  try {
    const owner = JSON.parse(await readFile(join(storage, OWNER_FILE), 'utf8')) as Owner
    if (Number.isInteger(owner.pid) && typeof owner.command === 'string') {
      const command = owner.command.length > 120 ? owner.command.slice(0, 120) + '…' : owner.command
      return `pid ${owner.pid} (${command}, since ${owner.since})`
    }
  } catch {}
  return null
}
