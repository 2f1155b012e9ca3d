#!/usr/bin/env node
// The crosscast command line: serve, tail, events, status, reindex, bootstrap.

import { Command, Option } from 'commander'
import { Crosscast } from '../index.ts'
import { CrosscastError, isCrosscastError } from '../errors.ts'
import { EVENT_TYPES, type BroadcastEvent, type EventType } from '../events/types.ts'
import { validateEventType, validateId } from '../events/validate.ts'
import { registerBootstrap } from './bootstrap.ts'
import { EventReader } from '../projection/queries.ts'
import { readKnownWriters } from '../sdk/writer-store.ts'
import { silentLogger } from '../logger.ts'
import BetterSqlite3 from 'better-sqlite3'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { registerServe } from './serve.ts'

const program = new Command()
program
  .name('crosscast')
  .description('Local-first, peer-to-peer sync of features, tracks and spikes between agent sessions')
  .showHelpAfterError()

/**
 * Opens a storage directory offline: these commands read and rebuild, they do
 * not sync. It reuses a session that already lives there, so inspecting a
 * storage does not add a log to it.
 */
async function openOffline (storage: string): Promise<Crosscast> {
  const existing = existsSync(storage) ? (await readKnownWriters(storage, silentLogger)).find(w => w.local) : undefined
  return await Crosscast.open({ storage, sessionId: existing?.sessionId ?? 'cli', agent: existing?.agentId ?? 'cli', swarm: false, lan: false })
}

function formatEvent (e: BroadcastEvent): string {
  return `${e.timestamp}  ${String(e.cursor).padStart(6)}  ${e.event_type.padEnd(15)}  ${e.resource_id}  ${e.agent_id}/${e.session_id}  ${JSON.stringify(e.payload)}`
}

program.command('events')
  .description('print the audit trail (broadcast_events), oldest first')
  .requiredOption('--storage <dir>', 'storage directory', '.crosscast')
  .addOption(new Option('--type <type>', 'only this event type').choices(EVENT_TYPES as unknown as string[]))
  .option('--resource <id>', 'only this feature, track or spike')
  .option('--since <cursor>', 'only events after this cursor', '0')
  .option('--limit <n>', 'at most this many events (0: all)', '0')
  .option('--json', 'one JSON object per line')
  .action(async (opts: { storage: string, type?: string, resource?: string, since: string, limit: string, json?: boolean }) => {
    const type: EventType | undefined = opts.type === undefined ? undefined : validateEventType(opts.type, '--type')
    const resourceId = opts.resource === undefined ? undefined : validateId(opts.resource, '--resource')
    const limit = parseCount(opts.limit, '--limit')
    let since = parseCount(opts.since, '--since')
    const reader = openReadOnly(opts.storage)
    try {
      let printed = 0
      for (;;) {
        const page = reader.page({ type, resourceId }, since, 1000)
        for (const event of page) {
          if (limit > 0 && printed >= limit) return
          process.stdout.write((opts.json === true ? JSON.stringify(event) : formatEvent(event)) + '\n')
          printed++
        }
        if (page.length < 1000) return
        since = page[page.length - 1].cursor
      }
    } finally {
      reader.close()
    }
  })

program.command('reindex')
  .description('rebuild crosscast.db from the logs (the database is a cache of them)')
  .requiredOption('--storage <dir>', 'storage directory', '.crosscast')
  .action(async (opts: { storage: string }) => {
    const cc = await openOffline(opts.storage)
    const tty = process.stderr.isTTY === true
    const started = Date.now()
    try {
      await cc.reindex((done, total) => {
        if (!tty) return
        const width = 30
        const filled = total === 0 ? width : Math.round((done / total) * width)
        process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} blocks`)
      })
      if (tty) process.stderr.write('\n')
      const status = cc.status()
      const logs = status.writers.length
      process.stdout.write(`reindexed ${status.events.total} events from ${logs} log${logs === 1 ? '' : 's'} in ${Date.now() - started} ms\n`)
    } finally {
      await cc.close()
    }
  })

program.command('status')
  .description('print peers, writers, lag and event counts of a storage directory')
  .requiredOption('--storage <dir>', 'storage directory', '.crosscast')
  .option('--json', 'print JSON')
  .option('--watch [ms]', 'print again every ms (default 1000) until interrupted')
  .action(async (opts: { storage: string, json?: boolean, watch?: string | boolean }) => {
    // A running node holds the storage: then report what its database says (no peers, no log lengths).
    const cc = await openOffline(opts.storage).catch((err: unknown) => {
      if (isCrosscastError(err) && err.code === 'STORAGE_LOCKED') return null
      throw err
    })
    const source = cc === null ? openReadOnly(opts.storage) : null
    const snapshot = (): StatusSnapshot => cc !== null ? { ...cc.status(), live: false } : databaseStatus(source!.db)
    const print = (): void => {
      const s = snapshot()
      if (opts.json === true) {
        process.stdout.write(JSON.stringify(s) + '\n')
        return
      }
      const header = s.live
        ? `events ${s.events.total}  (storage in use by a running node: peers and log lengths at its gateway, GET /api/metrics)`
        : `room ${s.room}  events ${s.events.total}  ${s.events.perSecond}/s  lag ${s.lag}  peers ${s.peers.length}  rejected peers ${s.rejected.peers} writers ${s.rejected.writers}`
      const lines = [
        header,
        ...s.writers.map(w => `  ${w.local ? 'local ' : 'remote'} ${w.key.slice(0, 16)}  ${String(w.sessionId).padEnd(16)} ${String(w.agentId).padEnd(12)} ${w.length === null ? '' : `length ${w.length} `}indexed ${w.indexed}${w.lag === null ? '' : ` lag ${w.lag}`}${w.skipped > 0 ? ` skipped ${w.skipped} (${w.lastError ?? ''})` : ''}`),
        ...s.peers.map(p => `  peer ${p.remoteKey.slice(0, 16)} via ${p.transport} since ${new Date(p.since).toISOString()}`)
      ]
      process.stdout.write(lines.join('\n') + '\n')
    }
    const done = async (): Promise<void> => {
      await cc?.close()
      source?.close()
    }
    if (opts.watch === undefined) {
      print()
      await done()
      return
    }
    const every = typeof opts.watch === 'string' ? parseCount(opts.watch, '--watch') : 1000
    const timer = setInterval(print, Math.max(100, every))
    print()
    await waitForSignal()
    clearInterval(timer)
    await done()
  })

interface StatusSnapshot {
  live: boolean
  room?: string
  events: { total: number, perSecond?: number }
  lag?: number
  rejected: { peers: number, writers: number }
  peers: Array<{ remoteKey: string, transport: string, since: number }>
  writers: Array<{ key: string, sessionId: string | null, agentId: string | null, local: boolean, length: number | null, indexed: number, lag: number | null, skipped: number, lastError: string | null }>
}

function databaseStatus (db: InstanceType<typeof BetterSqlite3>): StatusSnapshot {
  const writers = (db.prepare('SELECT key, session_id, agent_id, local, indexed, skipped, last_error FROM writers ORDER BY local DESC, key').all() as Array<Record<string, unknown>>)
    .map(w => ({ key: w.key as string, sessionId: w.session_id as string | null, agentId: w.agent_id as string | null, local: w.local === 1, length: null, indexed: w.indexed as number, lag: null, skipped: w.skipped as number, lastError: w.last_error as string | null }))
  const total = (db.prepare('SELECT count(*) AS n FROM broadcast_events').get() as { n: number }).n
  return { live: true, events: { total }, rejected: { peers: 0, writers: 0 }, peers: [], writers }
}

program.command('tail')
  .description('follow the audit trail as events are projected (works beside a running `crosscast serve`)')
  .requiredOption('--storage <dir>', 'storage directory', '.crosscast')
  .option('--since <cursor>', 'replay from this cursor first (default: only new events)')
  .option('--interval <ms>', 'how often to look for new events', '100')
  .option('--json', 'one JSON object per line')
  .action(async (opts: { storage: string, since?: string, interval: string, json?: boolean }) => {
    const reader = openReadOnly(opts.storage)
    let since = opts.since === undefined ? reader.lastCursor() : parseCount(opts.since, '--since')
    const interval = Math.max(10, parseCount(opts.interval, '--interval'))
    let stopped = false
    waitForSignal().then(() => { stopped = true }).catch(() => {})
    while (!stopped) {
      const page = reader.page({}, since, 1000)
      for (const event of page) process.stdout.write((opts.json === true ? JSON.stringify(event) : formatEvent(event)) + '\n')
      if (page.length > 0) since = page[page.length - 1].cursor
      else await new Promise(resolve => setTimeout(resolve, interval))
    }
    reader.close()
  })

registerServe(program)
registerBootstrap(program)

/** The database alone, read-only: usable while another process has the storage open. */
function openReadOnly (storage: string): { db: InstanceType<typeof BetterSqlite3>, page: (filter: { type?: EventType, resourceId?: string }, since: number, limit: number) => BroadcastEvent[], lastCursor: () => number, close: () => void } {
  const path = join(storage, 'crosscast.db')
  if (!existsSync(path)) throw new CrosscastError('NOT_FOUND', `${path} does not exist; is --storage the directory a crosscast node uses?`, { field: 'storage' })
  const db = new BetterSqlite3(path, { readonly: true, fileMustExist: true })
  const reader = new EventReader(db)
  return {
    db,
    page: (filter, since, limit) => {
      const where: string[] = []
      const params: unknown[] = []
      if (filter.type !== undefined) { where.push('event_type = ?'); params.push(filter.type) }
      if (filter.resourceId !== undefined) { where.push('resource_id = ?'); params.push(filter.resourceId) }
      return reader.after(since, where.length === 0 ? '1' : where.join(' AND '), params, limit)
    },
    lastCursor: () => (db.prepare('SELECT coalesce(max(cursor), 0) AS c FROM broadcast_events').get() as { c: number }).c,
    close: () => db.close()
  }
}

function parseCount (value: string, flag: string): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 0) throw new CrosscastError('INVALID_OPTION', `${flag} must be a non-negative integer, got ${value}`, { field: flag })
  return n
}

function waitForSignal (): Promise<void> {
  return new Promise(resolve => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
}

program.parseAsync(process.argv).catch((err: unknown) => {
  if (isCrosscastError(err)) {
    process.stderr.write(`crosscast: ${err.message} (${err.code})\n`)
    process.exitCode = 2
  } else {
    process.stderr.write(`crosscast: ${(err as Error).stack ?? String(err)}\n`)
    process.exitCode = 1
  }
})
