// `crosscast status`: peers, writers, lag and counts. With the storage held by
// a running node it falls back to what that node's database says.

import type { Command } from 'commander'
import type BetterSqlite3 from 'better-sqlite3'
import { isCrosscastError } from '../errors.ts'
import { openOffline, openReadOnly, storageOption } from './storage.ts'
import { colorsFor, parseCount, waitForSignal } from './output.ts'
import { dirname } from 'node:path'
import { readNetworkStatus, type RejectedPeer } from '../sdk/network-status.ts'

interface StatusSnapshot {
  live: boolean
  room?: string
  events: { total: number, perSecond?: number }
  lag?: number
  rejected: { peers: number, writers: number, reasons?: RejectedPeer[] }
  peers: Array<{ remoteKey: string, transport: string, since: number }>
  writers: Array<{ key: string, sessionId: string | null, agentId: string | null, local: boolean, length: number | null, indexed: number, lag: number | null, skipped: number, lastError: string | null }>
}

function databaseStatus (db: InstanceType<typeof BetterSqlite3>): StatusSnapshot {
  const writers = (db.prepare('SELECT key, session_id, agent_id, local, indexed, skipped, last_error FROM writers ORDER BY local DESC, key').all() as Array<Record<string, unknown>>)
    .map(w => ({ key: w.key as string, sessionId: w.session_id as string | null, agentId: w.agent_id as string | null, local: w.local === 1, length: null, indexed: w.indexed as number, lag: null, skipped: w.skipped as number, lastError: w.last_error as string | null }))
  const total = (db.prepare('SELECT count(*) AS n FROM broadcast_events').get() as { n: number }).n
  const network = readNetworkStatus(dirname(db.name))
  return { live: true, events: { total }, rejected: { peers: network?.rejected.peers ?? 0, writers: 0, reasons: network?.rejected.reasons ?? [] }, peers: network?.peers ?? [], writers }
}


export function registerStatus (program: Command): void {
  program.command('status')
    .description('print peers, writers, lag and event counts of a storage directory')
    .addOption(storageOption())
    .option('--json', 'print JSON')
    .option('--watch [ms]', 'print again every ms (default 1000) until interrupted')
    .action(async (opts: { storage: string, json?: boolean, watch?: string | boolean }) => {
      const every = typeof opts.watch === 'string' ? parseCount(opts.watch, '--watch') : 1000
      // A running node holds the storage: then report what its database says (no peers, no log lengths).
      const cc = await openOffline(opts.storage).catch((err: unknown) => {
        if (isCrosscastError(err) && err.code === 'STORAGE_LOCKED') return null
        throw err
      })
      const source = cc === null ? openReadOnly(opts.storage) : null
      const snapshot = (): StatusSnapshot => cc !== null ? { ...cc.status(), live: false } : databaseStatus(source!.db)
      const c = colorsFor(process.stdout)
      const print = (): void => {
        const s = snapshot()
        if (opts.json === true) {
          process.stdout.write(JSON.stringify(s) + '\n')
          return
        }
        const header = s.live
          ? `events ${c.bold(String(s.events.total))}  peers ${s.peers.length}  rejected peers ${s.rejected.peers > 0 ? c.red(String(s.rejected.peers)) : '0'}  ${c.dim('(storage in use by a running node: log lengths at its gateway, GET /api/metrics)')}`
          : `room ${c.bold(String(s.room))}  events ${c.bold(String(s.events.total))}  ${s.events.perSecond}/s  lag ${s.lag === 0 ? c.green('0') : c.yellow(String(s.lag))}  peers ${s.peers.length === 0 ? c.yellow('0') : c.green(String(s.peers.length))}  rejected peers ${s.rejected.peers > 0 ? c.red(String(s.rejected.peers)) : '0'} writers ${s.rejected.writers > 0 ? c.red(String(s.rejected.writers)) : '0'}`
        const lines = [
          header,
          ...s.writers.map(w => `  ${w.local ? 'local ' : 'remote'} ${c.dim(w.key.slice(0, 16))}  ${String(w.sessionId).padEnd(16)} ${String(w.agentId).padEnd(12)} ${w.length === null ? '' : `length ${w.length} `}indexed ${w.indexed}${w.lag === null ? '' : ` lag ${w.lag}`}${w.skipped > 0 ? c.red(` skipped ${w.skipped} (${w.lastError ?? ''})`) : ''}`),
          ...s.peers.map(p => `  peer ${c.dim(p.remoteKey.slice(0, 16))} via ${p.transport} since ${new Date(p.since).toISOString()}`),
          ...(s.rejected.reasons ?? []).map(r => `  ${c.red('rejected')} peer ${c.dim(r.remoteKey.slice(0, 16))}: ${r.reason} (${r.count}x, last ${r.at})`)
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
      const timer = setInterval(print, Math.max(100, every))
      print()
      await waitForSignal()
      clearInterval(timer)
      await done()
    })
}
