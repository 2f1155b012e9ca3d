// Drives two connect peers (bench/peers/connect-peer.ts), each its own OS process,
// through rounds on one loopback DHT: both open a fresh node at the same instant in a
// fresh room, and we take how long each waited for its first authenticated peer.
// Shared by bench/connect.ts and test/connect-race.test.ts.
import { fileURLToPath } from 'node:url'
import type { NodeStatus } from '../../lib/index.ts'
import { spawnPeer, type Peer } from './proc.ts'

const PEER = new URL('../peers/connect-peer.ts', import.meta.url)
const SWAP = fileURLToPath(new URL('./hyperdht-swap.ts', import.meta.url))
const FIRST_PEER_TIMEOUT_MS = 30_000

export interface BootstrapAddress { host: string, port: number }

export interface ConnectPeers {
  a: Peer
  b: Peer
  kill (): Promise<void>
}

export interface RoundResult {
  round: number
  /** ms from open() to the first authenticated peer, on each side. */
  aMs: number
  bMs: number
  /** The round's figure: the later of the two, when both sides see each other. */
  ms: number
  /** Failed room handshakes either side saw in the round (reason strings). */
  rejections: string[]
  closeMs: number
}

/** `hyperdhtDir`: run the peers on the hyperdht installed there instead (see hyperdht-swap.ts). */
export async function spawnConnectPeers (hyperdhtDir?: string): Promise<ConnectPeers> {
  const opts = hyperdhtDir === undefined ? {} : { nodeFlags: ['--import', SWAP], env: { HYPERDHT_DIR: hyperdhtDir } }
  const [a, b] = await Promise.all([spawnPeer(PEER, 'connect-a', opts), spawnPeer(PEER, 'connect-b', opts)])
  return { a, b, kill: async () => { await Promise.all([a.kill(), b.kill()]) } }
}

export async function connectRound (peers: ConnectPeers, bootstrap: BootstrapAddress[], round: number): Promise<RoundResult> {
  const room = `connect-race-${process.pid}-${round}-${Date.now()}`
  const open = (peer: Peer, sessionId: string): Promise<unknown> => peer.request('open', { round, room, sessionId, bootstrap })
  await Promise.all([open(peers.a, 'sess-a'), open(peers.b, 'sess-b')])
  const measured = Promise.all([firstPeer(peers.a), firstPeer(peers.b)])
  // Close whatever happened, so the next round starts clean; a failure still surfaces below.
  const [aMs, bMs] = await measured.catch(async (err: unknown) => { await closeBoth(peers).catch(() => {}); throw err })
  const statuses = await Promise.all([peers.a.request<NodeStatus>('status'), peers.b.request<NodeStatus>('status')])
  const rejections = statuses.flatMap(s => s.rejected.reasons.map(r => `${r.reason} (x${r.count})`))
  const closeMs = await closeBoth(peers)
  return { round, aMs, bMs, ms: Math.max(aMs, bMs), rejections, closeMs }
}

function firstPeer (peer: Peer): Promise<number> {
  return peer.request<number>('firstPeer', { timeoutMs: FIRST_PEER_TIMEOUT_MS }, FIRST_PEER_TIMEOUT_MS + 5000)
}

/** The slower of the two close() calls, in ms. */
async function closeBoth (peers: ConnectPeers): Promise<number> {
  const closes = await Promise.all([peers.a.request<number>('close'), peers.b.request<number>('close')])
  return Math.max(...closes)
}

/** A writes `events` events alone, then B joins: ms from B's open() until it has them all. */
export async function catchUpRound (peers: ConnectPeers, bootstrap: BootstrapAddress[], round: number, events: number): Promise<{ catchUpMs: number, firstPeerMs: number }> {
  const room = `connect-catchup-${process.pid}-${round}-${Date.now()}`
  await peers.a.request('open', { round, room, sessionId: 'sess-a', bootstrap })
  try {
    const total = await peers.a.request<number>('write', { count: events })
    await peers.b.request('open', { round, room, sessionId: 'sess-b', bootstrap })
    try {
      const [firstPeerMs, catchUpMs] = await Promise.all([
        firstPeer(peers.b),
        peers.b.request<number>('events', { count: total, timeoutMs: 60_000 }, 65_000)
      ])
      return { catchUpMs, firstPeerMs }
    } finally {
      await peers.b.request('close')
    }
  } finally {
    await peers.a.request('close')
  }
}
