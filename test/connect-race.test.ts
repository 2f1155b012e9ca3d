// Issue 9 §1: two sessions on one machine used to take 5-15 s to meet (hyperdht
// 6.33-6.34 left one end holding a half-open stream, upstream hyperdht#304; the room
// handshake timeout then rejected it). Two separate processes, a fresh node and room
// each round, one loopback DHT: every round they must meet with no room-timeout
// rejection. Times are printed, not asserted (bench/connect.ts reports p50/p99).
//
//   CONNECT_RACE_ROUNDS=50        more rounds (default 20)
//   HYPERDHT_DIR=/tmp/hd634       run the peers on another hyperdht (see bench/lib/hyperdht-swap.ts)
import test from 'brittle'
import { createTestnet } from './helpers/testnet.ts'
import { spawnConnectPeers, connectRound, type RoundResult } from '../bench/lib/connect-rounds.ts'
import { percentile } from '../bench/lib/stats.ts'

const ROUNDS = Number(process.env.CONNECT_RACE_ROUNDS ?? 20)
const HYPERDHT_DIR = process.env.HYPERDHT_DIR || undefined

test(`connect race: two processes meet in each of ${ROUNDS} rounds with fresh storage, no room-timeout rejection`, { timeout: 60_000 + ROUNDS * 20_000 }, async (t) => {
  const net = await createTestnet(t)
  const peers = await spawnConnectPeers(HYPERDHT_DIR)
  t.teardown(() => peers.kill())
  if (HYPERDHT_DIR !== undefined) t.comment(`peers run on the hyperdht in ${HYPERDHT_DIR}`)

  const results: RoundResult[] = []
  const failures: string[] = []
  for (let round = 1; round <= ROUNDS; round++) {
    try {
      const r = await connectRound(peers, net.bootstrap, round)
      results.push(r)
      t.comment(`round ${round}: first authenticated peer after ${r.aMs.toFixed(0)} ms (a) / ${r.bMs.toFixed(0)} ms (b); close ${r.closeMs.toFixed(0)} ms${r.rejections.length > 0 ? `; rejected: ${r.rejections.join(', ')}` : ''}`)
    } catch (err) {
      failures.push(`round ${round}: ${(err as Error).message}`)
      t.comment(`round ${round}: FAILED ${(err as Error).message}`)
    }
  }
  const times = results.map(r => r.ms)
  t.comment(`open to first authenticated peer over ${times.length} rounds: p50 ${percentile(times, 50).toFixed(0)} ms, p99 ${percentile(times, 99).toFixed(0)} ms, max ${Math.max(...times).toFixed(0)} ms`)
  t.alike(failures, [], 'both sessions met an authenticated peer in every round')
  const timeouts = results.flatMap(r => r.rejections.filter(reason => /no valid room auth/.test(reason)).map(reason => `round ${r.round}: ${reason}`))
  t.alike(timeouts, [], 'no connection was rejected for a room handshake timeout')
  const rejected = results.flatMap(r => r.rejections.map(reason => `round ${r.round}: ${reason}`))
  t.alike(rejected, [], 'no handshake was rejected at all: both know the room secret')
})
