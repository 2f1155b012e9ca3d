// Claim-conflict resolution (issue 10): two claimants in separate OS processes,
// connected over TCP + Noise on 127.0.0.1, claim the same fresh feature at the
// same instant. Each alone takes it (neither knows the other's claim yet) or
// is refused at once; the figure is the time from the two claim calls until
// both nodes name the same holder, the earlier claim. Beside it, in the same
// processes and rounds, the one-way latency of a single event (the feature's
// creation reaching the other node): the floor any resolution must pay.
//
//   BENCH_ONLY=claims npx tsx bench/run.ts     (BENCH_QUICK=1 for a smoke run)

import { setTimeout as sleep } from 'node:timers/promises'
import { spawnPeer, summarize, median, percentile, type Peer } from './lib/stats.ts'
import type { BenchContext, FigureSet } from './lib/contract.ts'

export const system = 'crosscast'
const PEER = new URL('./peers/claims-peer.ts', import.meta.url)
let rooms = 0

async function pair (): Promise<{ peers: Peer[], writers: string[] }> {
  const room = `claims-${process.pid}-${rooms++}`
  const peers = await Promise.all([spawnPeer(PEER, 'claimant-a'), spawnPeer(PEER, 'claimant-b')])
  const writers = (await Promise.all(peers.map((p, i) => p.request<{ writerKey: string }>('open', { room, sessionId: `claimant-${i}` })))).map(r => r.writerKey)
  const { port } = await peers[0].request<{ port: number }>('listen')
  await peers[1].request('connect', { port })
  const deadline = Date.now() + 30_000
  while ((await Promise.all(peers.map(p => p.request<number>('peers')))).some(n => n < 1)) {
    if (Date.now() > deadline) throw new Error('the two claimants did not connect')
    await sleep(20)
  }
  return { peers, writers }
}

interface Round { resolutionMs: number, eventMs: number, refused: boolean }

async function round (peers: Peer[], writers: string[], i: number): Promise<Round> {
  // Alternate which node creates the item, so neither always has the shorter path.
  const creator = peers[i % 2]
  const { id, startNs } = await creator.request<{ id: string, startNs: bigint }>('create')
  const arrived = await peers[(i + 1) % 2].request<{ atNs: bigint }>('seenAt', { item: id })
  await sleep(20)
  const claimedAt = process.hrtime.bigint()
  const results = await Promise.all(peers.map(p => p.request<{ won: boolean, refused: boolean }>('claim', { item: id })))
  let winner: string | null = null
  const deadline = Date.now() + 10_000
  while (winner === null) {
    const named = await Promise.all(peers.map(p => p.request<string | null>('holder', { item: id })))
    if (named[0] !== null && named[0] === named[1]) winner = named[0]
    else if (Date.now() > deadline) throw new Error(`claimants did not agree on a holder of ${id}: ${named.join(' vs ')}`)
    else await sleep(5)
  }
  const agreed = await Promise.all(peers.map(p => p.request<{ atNs: bigint }>('holderAt', { item: id, writer: winner })))
  const last = agreed.reduce((m, a) => a.atNs > m ? a.atNs : m, 0n)
  await peers[writers.indexOf(winner)].request('release', { item: id })
  return {
    resolutionMs: Number(last - claimedAt) / 1e6,
    eventMs: Number(arrived.atNs - startNs) / 1e6,
    refused: results.some(r => r.refused)
  }
}

export async function run (ctx: BenchContext): Promise<FigureSet> {
  const rounds = ctx.quick ? 10 : 40
  const resolution: number[] = []
  const resolutionP99: number[] = []
  const event: number[] = []
  const refusedShare: number[] = []
  for (let r = 0; r < ctx.runs; r++) {
    const { peers, writers } = await pair()
    try {
      const samples: Round[] = []
      for (let i = 0; i < rounds; i++) samples.push(await round(peers, writers, i))
      resolution.push(median(samples.map(s => s.resolutionMs)))
      resolutionP99.push(percentile(samples.map(s => s.resolutionMs), 99))
      event.push(median(samples.map(s => s.eventMs)))
      refusedShare.push(100 * samples.filter(s => s.refused).length / samples.length)
      ctx.log(`claims: run ${r + 1}/${ctx.runs}: resolution p50 ${resolution[r].toFixed(2)} ms, p99 ${resolutionP99[r].toFixed(2)} ms, one event ${event[r].toFixed(2)} ms, ${refusedShare[r].toFixed(0)}% refused outright`)
    } finally {
      await Promise.all(peers.map(p => p.kill()))
    }
  }
  const ratio = resolution.map((v, i) => v / event[i])
  return {
    'claims.conflict_resolution_p50_ms': summarize(resolution, 'ms', true, `two processes claim one item at once; until both name the same holder (median of ${rounds} rounds per run)`),
    'claims.conflict_resolution_p99_ms': summarize(resolutionP99, 'ms', true),
    'claims.one_event_latency_ms': summarize(event, 'ms', true, 'baseline, same processes and rounds: one event from one node projected on the other'),
    'claims.resolution_to_event_ratio': summarize(ratio, 'x', true, 'resolution / one event latency, per run'),
    'claims.refused_outright_pct': summarize(refusedShare, '%', false, 'rounds where the later claimant already knew the earlier claim (CLAIMED at once, nothing to resolve)')
  }
}
