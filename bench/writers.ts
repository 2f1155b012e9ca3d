// Many writers (issue 12 §1): a room where thousands of sessions each wrote a
// few events and left. Figures for 200, 1,000 and 10,000 writers (3 events
// each, every log ended as the gateway ends an idle session), each in fresh
// OS processes on 127.0.0.1:
//
//   writers_N.reopen_ms        Crosscast.open of the holder's storage
//   writers_N.fresh_peer_ms    a fresh node connects to the holder until it holds every event
//   writers_N.fresh_peer_cpu_ms   CPU time (user + system) the fresh node spent until then, and
//   writers_N.holder_cpu_ms       the holder's CPU time serving it: on a shared 2-core machine
//                                 the wall time follows the load, these much less
//   writers_N.rss_added_mb     the holder's RSS after reopening, at rest, over the same
//                              process before open (gc'd, --expose-gc)
//   writers_N.rss_serving_mb   the same right after the fresh peer holds everything (every
//                              log was just served: the peak, before quiet logs close)
//
// each beside `_all_open`: the same storage with every log marked open in
// writers.db and writerIdleMs 0 on both nodes, so every log is opened at start,
// downloaded and replicated on every connection and never closed: what every
// node did before the writer lifecycle, measured in the same run.
//
//   BENCH_ONLY=writers npx tsx bench/run.ts     (BENCH_QUICK=1: 200 and 1,000 only, BENCH_WRITERS=200,1000,10000 to choose)

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import { spawnPeer, summarize, type Peer } from './lib/stats.ts'
import type { BenchContext, FigureSet } from './lib/contract.ts'

export const system = 'crosscast'
const PEER = new URL('./peers/writers-peer.ts', import.meta.url)
const IDLE_MS = 2_000

type Mode = 'lifecycle' | 'all_open'
interface Sample { reopenMs: number, freshMs: number, freshCpuMs: number, holderCpuMs: number, rssMb: number, servingMb: number }

function counts (ctx: BenchContext): number[] {
  if (process.env.BENCH_WRITERS !== undefined) return process.env.BENCH_WRITERS.split(',').map(Number).filter(n => Number.isInteger(n) && n > 0)
  return ctx.quick ? [200, 1000] : [200, 1000, 10_000]
}

/** As before the lifecycle: every log counts as open, so a start opens them all. */
function markAllOpen (storage: string): void {
  const db = new BetterSqlite3(join(storage, 'writers.db'))
  try {
    db.prepare('UPDATE writers SET held = NULL').run()
  } finally {
    db.close()
  }
}

async function sample (storage: string, events: number, mode: Mode, run: number): Promise<Sample> {
  if (mode === 'all_open') markAllOpen(storage)
  const idleMs = mode === 'all_open' ? 0 : IDLE_MS
  const peers: Peer[] = []
  const fresh = mkdtempSync(join(tmpdir(), 'crosscast-bench-writers-fresh-'))
  try {
    const holder = await spawnPeer(PEER, `holder-${mode}-${run}`, { nodeFlags: ['--expose-gc'] })
    peers.push(holder)
    const before = await holder.request<number>('rss')
    const opened = await holder.request<{ ms: number, events: number }>('open', { storage, idleMs }, 600_000)
    if (opened.events !== events) throw new Error(`the holder projects ${opened.events} events, expected ${events}`)
    const rested = await holder.request<number>('rss')
    const { port } = await holder.request<{ port: number }>('listen')
    const joiner = await spawnPeer(PEER, `fresh-${mode}-${run}`)
    peers.push(joiner)
    await joiner.request('open', { storage: fresh, idleMs })
    const converged = await joiner.request<{ ms: number, cpuMs: number }>('converge', { port, events, timeoutMs: 600_000 }, 660_000)
    const holderCpuMs = await holder.request<number>('cpu')
    const after = await holder.request<number>('rss')
    // Closed cleanly, not killed after the peer harness's grace period: the next sample starts from what close() recorded.
    await holder.request('close', {}, 600_000)
    return { reopenMs: opened.ms, freshMs: converged.ms, freshCpuMs: converged.cpuMs, holderCpuMs, rssMb: (rested - before) / 2 ** 20, servingMb: (after - before) / 2 ** 20 }
  } finally {
    await Promise.all(peers.map(p => p.kill()))
    rmSync(fresh, { recursive: true, force: true })
  }
}

export async function run (ctx: BenchContext): Promise<FigureSet> {
  const figures: FigureSet = {}
  for (const writers of counts(ctx)) {
    const storage = mkdtempSync(join(tmpdir(), `crosscast-bench-writers-${writers}-`))
    try {
      const builder = await spawnPeer(PEER, `build-${writers}`)
      const built = Date.now()
      const { events } = await builder.request<{ events: number }>('build', { storage, writers }, 3_600_000)
      await builder.kill()
      ctx.log(`writers: built ${writers} ended logs (${events} events) in ${((Date.now() - built) / 1000).toFixed(1)} s`)
      const samples: Record<Mode, Sample[]> = { lifecycle: [], all_open: [] }
      for (let i = 0; i < ctx.runs; i++) {
        // Alternated, so machine noise falls on both alike; all_open first, so lifecycle never starts from logs it left closed itself.
        for (const mode of ['all_open', 'lifecycle'] as const) {
          const s = await sample(storage, events, mode, i)
          samples[mode].push(s)
          ctx.log(`writers: ${writers} ${mode} run ${i + 1}: reopen ${s.reopenMs.toFixed(0)} ms, fresh peer ${s.freshMs.toFixed(0)} ms (CPU: fresh peer ${s.freshCpuMs.toFixed(0)} ms, holder ${s.holderCpuMs.toFixed(0)} ms), RSS +${s.rssMb.toFixed(1)} MB at rest, +${s.servingMb.toFixed(1)} MB serving`)
        }
      }
      for (const mode of ['lifecycle', 'all_open'] as const) {
        const suffix = mode === 'lifecycle' ? '' : '_all_open'
        const what = mode === 'lifecycle' ? `${writers} writers x 3 events, ended logs` : `${writers} writers, every log opened and never closed (before the lifecycle)`
        figures[`writers_${writers}.reopen_ms${suffix}`] = summarize(samples[mode].map(s => s.reopenMs), 'ms', true, `reopen a node: ${what}${mode === 'lifecycle' && writers === 1000 ? '; target <= 500 ms' : ''}`)
        figures[`writers_${writers}.fresh_peer_ms${suffix}`] = summarize(samples[mode].map(s => s.freshMs), 'ms', true, `a fresh peer holds everything: ${what}${mode === 'lifecycle' && writers === 1000 ? '; target <= 1,500 ms' : ''}`)
        figures[`writers_${writers}.fresh_peer_cpu_ms${suffix}`] = summarize(samples[mode].map(s => s.freshCpuMs), 'ms', true, `CPU time of the fresh peer until it holds everything: ${what}`)
        figures[`writers_${writers}.holder_cpu_ms${suffix}`] = summarize(samples[mode].map(s => s.holderCpuMs), 'ms', true, `CPU time of the holder serving the fresh peer until then: ${what}`)
        figures[`writers_${writers}.rss_added_mb${suffix}`] = summarize(samples[mode].map(s => s.rssMb), 'MB', true, `holder RSS added by reopening, at rest: ${what}${mode === 'lifecycle' && writers === 1000 ? '; target <= 30 MB' : ''}`)
        figures[`writers_${writers}.rss_serving_mb${suffix}`] = summarize(samples[mode].map(s => s.servingMb), 'MB', true, `holder RSS added right after serving every log to a fresh peer: ${what}`)
      }
    } finally {
      rmSync(storage, { recursive: true, force: true })
    }
  }
  return figures
}
