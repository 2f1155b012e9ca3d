// A room of many nodes on one loopback DHT (issue 12 §5), driven through
// bench/peers/room-peer.ts: nodes spread over a few OS processes open at once and
// each writes; then some close while new ones join and everyone writes again.
// Shared by bench/room.ts (the figures) and test/room-many.test.ts (the guard).
// BENCH_ROOM_DEBUG=<file>: when a convergence times out, every node's per-writer and
// per-connection replication state is written there (room-peer's `debug`).
import { spawnPeer, type Peer } from './proc.ts'

const PEER = new URL('../peers/room-peer.ts', import.meta.url)

export interface BootstrapAddress { host: string, port: number }

export interface RoomPlan {
  bootstrap: BootstrapAddress[]
  /** Nodes open at the start. */
  nodes: number
  /** OS processes they are spread over (round robin). */
  processes: number
  /** Features each node creates, once at the start and once more during the churn. */
  eventsPerNode: number
  /** Hyperswarm's maxPeers for every node; undefined: its default (64). */
  maxPeers?: number
  /** Nodes closed, and new nodes opened, during the second round of writes. */
  leave: number
  join: number
  /** Bound on each convergence. */
  timeoutMs: number
  log?: (line: string) => void
}

export interface NodeState {
  name: string
  /** The node's Noise key, as its peers list it. */
  nodeKey: string | null
  peerKeys: string[]
  peers: number
  clients: number
  servers: number
  bytesSent: number
  bytesReceived: number
  /** The part of those on peer connections (encrypted stream bytes): the rest is DHT traffic and UDX framing. */
  connectionBytesSent: number
  connectionBytesReceived: number
  events: number
  writers: number
  /** From open() to its first authenticated peer; null while it has none. */
  firstPeerMs: number | null
  /** Connections the swarm ever opened (dialled or accepted) and dials it ever tried. */
  opened: number
  attempted: number
}

/** Per node: how many of the other nodes it is not connected to, so whose logs reached it only through relays (if it never was). */
export function relayedOnly (states: NodeState[]): number[] {
  const keys = new Set(states.map(s => s.nodeKey))
  return states.map(s => states.length - 1 - s.peerKeys.filter(k => keys.has(k)).length)
}

export interface RoomResult {
  /** From the first open until every node holds every node's events. */
  convergeMs: number
  /** Each node as it was at that moment. */
  converged: NodeState[]
  /** CPU seconds all node processes used from start to convergence (module loading included). */
  cpuSeconds: number
  /** From the churn's start until every node up holds every event written. */
  churnConvergeMs: number
  /** Each node up at the end, once converged. */
  final: NodeState[]
  /** Content hash of every node up at the end, by name. */
  hashes: Map<string, string>
  /** Events every node up at the end holds. */
  expected: number
}

interface Host { peer: Peer, nodes: number }

export async function runRoom (plan: RoomPlan): Promise<RoomResult> {
  const log = plan.log ?? (() => {})
  const room = `room-${process.pid}-${Date.now()}`
  // BENCH_ROOM_CPU_PROF=<dir>: a CPU profile of each node process, written when it exits.
  const profile = process.env.BENCH_ROOM_CPU_PROF
  const nodeFlags = profile === undefined || profile === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${profile}`]
  const hosts: Host[] = await Promise.all(Array.from({ length: plan.processes }, async (_, i) => ({ peer: await spawnPeer(PEER, `room${i}`, { readyTimeoutMs: 60_000, nodeFlags }), nodes: 0 })))
  const where = new Map<string, Peer>()
  let opened = 0
  const open = async (): Promise<string> => {
    const name = `n${opened++}`
    const host = hosts.reduce((a, b) => (b.nodes < a.nodes ? b : a))
    host.nodes++
    where.set(name, host.peer)
    await host.peer.request('open', { name, room, bootstrap: plan.bootstrap, ...(plan.maxPeers !== undefined ? { maxPeers: plan.maxPeers } : {}) }, 60_000)
    return name
  }
  const on = (name: string): Peer => where.get(name) as Peer
  const write = (name: string): Promise<unknown> => on(name).request('write', { name, count: plan.eventsPerNode }, plan.timeoutMs)
  const states = (names: string[]): Promise<NodeState[]> => Promise.all(names.map(name => on(name).request<NodeState>('state', { name })))
  const converge = async (names: string[], count: number, since: bigint, what: string): Promise<number> => {
    try {
      const times = await Promise.all(names.map(name => on(name).request<{ atNs: bigint }>('reach', { name, count, timeoutMs: plan.timeoutMs }, plan.timeoutMs + 10_000)))
      const ms = times.map(t => Number(t.atNs - since) / 1e6).sort((a, b) => a - b)
      log(`room: ${what}: nodes done at ${ms.map(v => (v / 1000).toFixed(1)).join(' ')} s`)
      return ms[ms.length - 1]
    } catch (err) {
      const lagging = (await states(names)).filter(s => s.events < count)
      const dump = process.env.BENCH_ROOM_DEBUG
      if (dump !== undefined && dump !== '') {
        const { writeFileSync } = await import('node:fs')
        const detail = await Promise.all(names.map(async name => ({ name, state: lagging.find(s => s.name === name), writers: await on(name).request('debug', { name }) })))
        writeFileSync(dump, JSON.stringify(detail, null, 1))
      }
      throw new Error(`${what}: ${lagging.length} of ${names.length} nodes short of ${count} events (${lagging.map(s => `${s.name}: ${s.events} events, ${s.writers} writers, ${s.peers} peers`).join('; ')}): ${(err as Error).message}`)
    }
  }

  try {
    const started = process.hrtime.bigint()
    const first = await Promise.all(Array.from({ length: plan.nodes }, async () => {
      const name = await open()
      await write(name)
      return name
    }))
    log(`room: ${plan.nodes} nodes open and written (${plan.eventsPerNode} events each) after ${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(0)} ms`)
    const convergeMs = await converge(first, plan.nodes * plan.eventsPerNode, started, 'first convergence')
    const converged = await states(first)
    const cpuSeconds = (await Promise.all(hosts.map(h => h.peer.request<number>('cpu')))).reduce((a, b) => a + b, 0)
    log(`room: first peer after ${converged.map(s => s.firstPeerMs).sort((a, b) => (a ?? 0) - (b ?? 0)).join(' ')} ms`)
    log(`room: converged in ${convergeMs.toFixed(0)} ms`)

    // The first nodes are the best connected (every later one found them), so their leaving hurts most.
    const leaving = first.slice(0, plan.leave)
    const staying = first.slice(plan.leave)
    const churnStarted = process.hrtime.bigint()
    const joined = await Promise.all([
      ...leaving.map(async (name) => { await on(name).request('close', { name }, 30_000); return null }),
      ...staying.map(async (name) => { await write(name); return null }),
      ...Array.from({ length: plan.join }, async () => {
        const name = await open()
        await write(name)
        return name
      })
    ])
    const up = [...staying, ...joined.filter((name): name is string => name !== null)]
    const expected = (plan.nodes + up.length) * plan.eventsPerNode
    log(`room: ${plan.leave} left, ${plan.join} joined, ${up.length} up; waiting for ${expected} events on each`)
    const churnConvergeMs = await converge(up, expected, churnStarted, 'convergence after churn')
    const final = await states(up)
    const hashes = new Map(await Promise.all(up.map(async (name) => [name, await on(name).request<string>('hash', { name })] as [string, string])))
    log(`room: converged after churn in ${churnConvergeMs.toFixed(0)} ms`)
    return { convergeMs, converged, cpuSeconds, churnConvergeMs, final, hashes, expected }
  } finally {
    await Promise.all(hosts.map(h => h.peer.kill()))
  }
}
