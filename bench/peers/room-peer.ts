// Several crosscast nodes of one room in one OS process (bench/room.ts and
// test/room-many.test.ts), each with its own storage, DHT node and swarm on a
// loopback testnet, lan: false. Nodes are named by the parent; every command
// takes the node's name.
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Crosscast, contentHash, type BootstrapNode } from '../../lib/index.ts'
import { servePeer, peerDir } from '../lib/peer.ts'
import { LengthTracker } from '../lib/tracker.ts'

const dir = peerDir()
const FIRST_PEER_POLL_MS = 20
const nodes = new Map<string, Crosscast>()
// Counted as commits publish them, not polled: status() on every node every few ms costs
// CPU the nodes being measured need.
const held = new Map<string, LengthTracker>()
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

interface CountedStream { rawBytesRead: number, rawBytesWritten: number, once (event: 'close', fn: () => void): void }
interface DiscoveryView {
  publicKey: Buffer
  swarm: SwarmView | null
  on (event: 'connection', fn: (conn: { stream: CountedStream }) => void): void
}

function discoveryOf (cc: Crosscast): DiscoveryView | null {
  return (cc as unknown as { network: { _discovery: DiscoveryView | null } | null }).network?._discovery ?? null
}

/** Encrypted bytes on the node's peer connections (closed ones included), apart from DHT traffic. */
class ConnectionBytes {
  private readonly open = new Set<CountedStream>()
  sent = 0
  received = 0

  constructor (discovery: DiscoveryView | null) {
    discovery?.on('connection', ({ stream }) => {
      if (this.open.has(stream)) return
      this.open.add(stream)
      stream.once('close', () => {
        this.open.delete(stream)
        this.sent += stream.rawBytesWritten
        this.received += stream.rawBytesRead
      })
    })
  }

  totals (): { sent: number, received: number } {
    let sent = this.sent
    let received = this.received
    for (const stream of this.open) {
      sent += stream.rawBytesWritten
      received += stream.rawBytesRead
    }
    return { sent, received }
  }
}
const connectionBytes = new Map<string, ConnectionBytes>()

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
    const tracker = new LengthTracker()
    let count = cc.status().events.total
    tracker.record(count)
    cc.on('events', (events: unknown[]) => tracker.record(count += events.length))
    held.set(name, tracker)
    connectionBytes.set(name, new ConnectionBytes(discoveryOf(cc)))
    const openedAt = Date.now()
    void (async () => {
      while (nodes.get(name) === cc && !cc.status().peers.some(p => p.authenticated)) await sleep(FIRST_PEER_POLL_MS)
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
    node(args.name)
    const tracker = held.get(String(args.name)) as LengthTracker
    const timeoutMs = Number(args.timeoutMs ?? 60_000)
    try {
      return { atNs: await tracker.when(Number(args.count), timeoutMs) }
    } catch {
      throw new Error(`${String(args.name)}: ${tracker.length} of ${Number(args.count)} events after ${timeoutMs} ms`)
    }
  },
  /** Connections (authenticated room peers, and the swarm's own by role), bytes on the node's UDX (DHT and connections), events held, writers known. */
  state (args) {
    const cc = node(args.name)
    const status = cc.status()
    const discovery = discoveryOf(cc)
    const swarm = discovery?.swarm ?? null
    const onConnections = (connectionBytes.get(String(args.name)) as ConnectionBytes).totals()
    let clients = 0
    for (const conn of swarm?.connections ?? []) if (conn.isInitiator) clients++
    return {
      name: String(args.name),
      nodeKey: discovery?.publicKey.toString('hex') ?? null,
      peerKeys: status.peers.filter(p => p.authenticated).map(p => p.remoteKey),
      peers: status.peers.filter(p => p.authenticated).length,
      clients,
      servers: (swarm?.connections.size ?? 0) - clients,
      bytesSent: swarm?.dht.udx.bytesTransmitted ?? 0,
      bytesReceived: swarm?.dht.udx.bytesReceived ?? 0,
      connectionBytesSent: onConnections.sent,
      connectionBytesReceived: onConnections.received,
      events: status.events.total,
      writers: status.writers.length,
      firstPeerMs: firstPeerMs.get(String(args.name)) ?? null,
      opened: (swarm?.stats.connects.client.opened ?? 0) + (swarm?.stats.connects.server.opened ?? 0),
      attempted: swarm?.stats.connects.client.attempted ?? 0,
      rejected: status.rejected.peers
    }
  },
  /** CPU seconds this process (all its nodes) used so far, user + system. */
  cpu () {
    const { user, system } = process.cpuUsage()
    return (user + system) / 1e6
  },
  hash (args) {
    return contentHash(node(args.name).db)
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
