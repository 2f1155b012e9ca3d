// Connecting (issue 9 §1): two crosscast sessions, each its own OS process, open at
// the same instant on one loopback DHT with fresh storage; how long until each has
// an authenticated peer (p50/p99 over workload.connect.rounds), and how long a late
// joiner takes from open() to holding the events a peer already wrote.
//
// BENCH_HYPERDHT_BASELINE=<dir where `npm i hyperdht@6.34.0` ran> measures the same
// again with the peers on that hyperdht (bench/lib/hyperdht-swap.ts), listed beside
// these figures as the alternative. Loopback DHT nodes are not firewalled (lib/net/swarm.ts),
// which by itself sidesteps 6.34's same-host race, so on this path the two should be
// close; main's code before that change met 7.1-7.6 s late in 3 of 20 rounds on 6.34.0
// (test/connect-race.test.ts), and the silent-stream drop bounds it to ~2.6 s.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import createTestnet from 'hyperdht/testnet'
import type { BenchContext, FigureSet } from './lib/contract.ts'
import { percentile, summarize, type Figure } from './lib/stats.ts'
import { spawnConnectPeers, connectRound, catchUpRound } from './lib/connect-rounds.ts'

export const system = 'crosscast'

export function run (ctx: BenchContext): Promise<FigureSet> {
  return measure(ctx, undefined)
}

/** The baseline entry run.ts lists as an alternative; none unless BENCH_HYPERDHT_BASELINE names an install. */
export function baselines (): Array<{ key: string, system: string, run: (ctx: BenchContext) => Promise<FigureSet> }> {
  const dir = process.env.BENCH_HYPERDHT_BASELINE
  if (dir === undefined || dir === '') return []
  const manifest = join(dir, 'node_modules', 'hyperdht', 'package.json')
  if (!existsSync(manifest)) throw new Error(`BENCH_HYPERDHT_BASELINE=${dir}: no node_modules/hyperdht there (run npm i hyperdht@6.34.0 in it)`)
  const version = (JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version
  return [{ key: 'connect-baseline', system: `crosscast on hyperdht ${version}`, run: (ctx) => measure(ctx, dir) }]
}

async function measure (ctx: BenchContext, hyperdhtDir: string | undefined): Promise<FigureSet> {
  const { rounds, catchUpEvents } = ctx.workload.connect
  const testnet = await createTestnet(3, { host: '127.0.0.1' })
  const bootstrap = testnet.bootstrap.map(({ host, port }) => ({ host, port }))
  const peers = await spawnConnectPeers(hyperdhtDir)
  const label = hyperdhtDir === undefined ? 'pinned hyperdht' : `hyperdht from ${hyperdhtDir}`
  try {
    const firstPeer: number[] = []
    let timeouts = 0
    for (let round = 1; round <= rounds; round++) {
      const r = await connectRound(peers, bootstrap, round)
      firstPeer.push(r.ms)
      timeouts += r.rejections.filter(reason => /no valid room auth/.test(reason)).length
      ctx.log(`connect (${label}): round ${round}/${rounds}: ${r.ms.toFixed(0)} ms${r.rejections.length > 0 ? `, rejected: ${r.rejections.join(', ')}` : ''}`)
    }
    const catchUp: number[] = []
    for (let i = 0; i < ctx.runs; i++) {
      const r = await catchUpRound(peers, bootstrap, rounds + i + 1, catchUpEvents)
      catchUp.push(r.catchUpMs)
      ctx.log(`connect (${label}): late joiner ${i + 1}/${ctx.runs}: ${catchUpEvents} events ${r.catchUpMs.toFixed(0)} ms after open (first peer at ${r.firstPeerMs.toFixed(0)} ms)`)
    }
    const note = `${rounds} rounds, ${timeouts} room-timeout rejection(s)`
    return {
      'connect.first_peer_p50_ms': atPercentile(firstPeer, 50, note),
      'connect.first_peer_p99_ms': atPercentile(firstPeer, 99, note),
      'connect.catchup_ms': summarize(catchUp, 'ms', true, `${catchUpEvents} events; median of ${ctx.runs} late joiners`)
    }
  } finally {
    await peers.kill()
    await testnet.destroy()
  }
}

/** A percentile over every round, in the Figure shape (min..max: the whole spread). */
function atPercentile (samples: number[], p: number, note: string): Figure {
  return { ...summarize(samples, 'ms', true, note), median: percentile(samples, p) }
}
