// Several crosscast nodes of one room in one OS process (bench/room.ts and
// test/room-many.test.ts), each with its own storage, DHT node and swarm on a
// loopback testnet, lan: false. Nodes are named by the parent; every command
// takes the node's name.
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Crosscast, type BootstrapNode } from '../../lib/index.ts'
import { servePeer, peerDir } from '../lib/peer.ts'

const dir = peerDir()
const POLL_MS = 10
const nodes = new Map<string, Crosscast>()
const firstPeerMs = new Map<string, number>()

/** What the bench reads off a node's swarm; reached through internals (as test/fixtures/peer.ts does). */
interface SwarmView {
  dht: { udx: { bytesTransmitted: number, bytesReceived: number } }
  connections: Set<{ isInitiator: boolean }>
  stats: { connects: { client: { opened: number, attempted: number }, server: { opened: number } } }
}

function node (name: unknown): Crosscast {
  const cc = nodes.get(String(name))
  if (cc === undefined) throw new Error(`no open node ${String(name)}`)
  return cc
}

function swarmOf (cc: Crosscast): SwarmView | null {
  return (cc as unknown as { network: { _discovery: { swarm: SwarmView | null } | null } | null }).network?._discovery?.swarm ?? null
}

/** Everything a user reads: every event, its content and where it sits in its log. */
function contentHash (cc: Crosscast): string {
  const hash = createHash('sha256')
  const rows = cc.db.prepare('SELECT event_id, event_type, resource_id, payload, writer, seq, idx FROM broadcast_events ORDER BY event_id').raw().iterate() as Iterable<unknown[]>
  for (const row of rows) hash.update(JSON.stringify(row)).update('\n')
  return hash.digest('hex')
}

servePeer({
  async open (args) {
    const name = String(args.name)
    if (nodes.has(name)) throw new Error(`${name} is already open`)
    const cc = await Crosscast.open({
      storage: join(dir, name),
      room: String(args.room),
      sessionId: name,
      agent: 'bench',
      bootstrap: args.bootstrap as BootstrapNode[],
      lan: false,
      ...(args.maxPeers !== undefined ? { maxPeers: Number(args.maxPeers) } : {})
    })
    nodes.set(name, cc)
    const openedAt = Date.now()
    void (async () => {
      while (nodes.get(name) === cc && !cc.status().peers.some(p => p.authenticated)) await sleep(POLL_MS)
      firstPeerMs.set(name, Date.now() - openedAt)
    })()
    return { writerKey: cc.writerKey }
  },
  /** `count` new features, 8 saves in flight. */
  async write (args) {
    const cc = node(args.name)
    const count = Number(args.count)
    let next = 0
    await Promise.all(Array.from({ length: Math.min(8, count) }, async () => {
      while (next < count) await cc.features.create(`${String(args.name)} ${next++}`).save()
    }))
    return cc.status().events.total
  },
  /** CLOCK_MONOTONIC (shared by every process) when the node holds `count` events. */
  async reach (args) {
    const cc = node(args.name)
    const count = Number(args.count)
    const deadline = Date.now() + Number(args.timeoutMs ?? 60_000)
    while (cc.status().events.total < count) {
      if (Date.now() > deadline) throw new Error(`${String(args.name)}: ${cc.status().events.total} of ${count} events after ${Number(args.timeoutMs ?? 60_000)} ms`)
      await sleep(POLL_MS)
    }
    return { atNs: process.hrtime.bigint() }
  },
  /** Connections (authenticated room peers, and the swarm's own by role), bytes on the node's UDX (DHT and connections), events held, writers known. */
  state (args) {
    const cc = node(args.name)
    const status = cc.status()
    const swarm = swarmOf(cc)
    let clients = 0
    for (const conn of swarm?.connections ?? []) if (conn.isInitiator) clients++
    return {
      name: String(args.name),
      nodeKey: (cc as unknown as { network: { _discovery: { publicKey: Buffer } | null } | null }).network?._discovery?.publicKey.toString('hex') ?? null,
      peerKeys: status.peers.filter(p => p.authenticated).map(p => p.remoteKey),
      peers: status.peers.filter(p => p.authenticated).length,
      clients,
      servers: (swarm?.connections.size ?? 0) - clients,
      bytesSent: swarm?.dht.udx.bytesTransmitted ?? 0,
      bytesReceived: swarm?.dht.udx.bytesReceived ?? 0,
      events: status.events.total,
      writers: status.writers.length,
      firstPeerMs: firstPeerMs.get(String(args.name)) ?? null,
      opened: (swarm?.stats.connects.client.opened ?? 0) + (swarm?.stats.connects.server.opened ?? 0),
      attempted: swarm?.stats.connects.client.attempted ?? 0,
      rejected: status.rejected.peers
    }
  },
  hash (args) {
    return contentHash(node(args.name))
  },
  async close (args) {
    const cc = node(args.name)
    nodes.delete(String(args.name))
    await cc.close()
    return null
  }
}, async () => {
  const open = [...nodes.values()]
  nodes.clear()
  await Promise.all(open.map(cc => cc.close()))
})
