// Several crosscast nodes of one room in one OS process (bench/room.ts and
// test/room-many.test.ts), each with its own storage, DHT node and swarm on a
// loopback testnet, lan: false. Nodes are named by the parent; every command
// takes the node's name.
import { join } from 'node:path'
import c from 'compact-encoding'
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

/** Protomux messages waiting in a secret stream's write queue, counted by protocol and message type (diagnostics). */
function queuedMessages (stream: any): Record<string, number> {
  const counts: Record<string, number> = {}
  const mux = stream.userData
  let fifo = stream._writableState?.queue?.tail
  while (fifo !== null && fifo !== undefined) {
    const buf = fifo.buffer as Array<Buffer | undefined>
    for (let i = 0; i < buf.length; i++) {
      const b = buf[(fifo.btm + i) & fifo.mask]
      if (b === undefined) break
      const state = { start: 0, end: b.byteLength, buffer: b }
      let what: string
      try {
        const id = c.uint.decode(state)
        if (id === 0) what = `control/${b[state.start]}`
        else {
          const type = c.uint.decode(state)
          what = `${String(mux?._local?.[id - 1]?.protocol ?? '?')}/${type}`
        }
      } catch { what = 'undecodable' }
      counts[what] = (counts[what] ?? 0) + 1
    }
    fifo = fifo.next
  }
  return counts
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
  /**
   * Diagnostics for a stalled room (BENCH_ROOM_DEBUG=<file> dumps it for every node when a
   * convergence times out): per writer, the length gossip announced, what the log holds and
   * each replicating peer's view (its length, requests in flight, messages by type); per
   * connection, the writes queued by protocol and the UDX stream's round trip and window.
   */
  debug (args) {
    const cc = node(args.name)
    const registry = (cc as unknown as { registry: { known: Map<string, { info: { key: string, sessionId: string }, announced: number, closed: unknown }>, feeds: Map<string, { core: any, caughtUp: boolean }> } }).registry
    const out: unknown[] = []
    for (const [key, k] of registry.known) {
      const feed = registry.feeds.get(key)
      const core = feed?.core
      out.push({
        session: k.info.sessionId,
        key: key.slice(0, 8),
        announced: k.announced,
        closed: k.closed,
        open: feed !== undefined,
        length: core?.length,
        contiguous: core?.contiguousLength,
        peers: core === undefined ? [] : core.peers.map((p: any) => ({
          remote: p.remotePublicKey?.toString('hex').slice(0, 8),
          remoteLength: p.remoteLength,
          remoteContig: p.remoteContiguousLength,
          inflight: p.inflight,
          max: p.getMaxInflight(),
          synced: p.remoteSynced,
          opened: p.remoteOpened,
          uploading: p.remoteUploading,
          remoteRequests: p.remoteRequests.size,
          receiverQueue: p.receiverQueue.length,
          muxDrained: p.protomux.drained,
          tx: Object.fromEntries(Object.entries(p.stats).filter(([, v]: [string, any]) => typeof v === 'object').map(([k, v]: [string, any]) => [k, v.tx])),
          rx: Object.fromEntries(Object.entries(p.stats).filter(([, v]: [string, any]) => typeof v === 'object').map(([k, v]: [string, any]) => [k, v.rx]))
        }))
      })
    }
    const swarm = discoveryOf(cc)?.swarm as unknown as { connections: Set<any> } | null
    const conns = [...(swarm?.connections ?? [])].map((stream: any) => {
      const raw = stream.rawStream
      const mux = stream.userData
      return {
        remote: stream.remotePublicKey?.toString('hex').slice(0, 8),
        initiator: stream.isInitiator,
        destroyed: stream.destroyed,
        writableLength: stream._writableState?.queue?.length ?? stream.writableLength,
        muxDrained: mux?.drained,
        raw: raw?.toJSON?.(),
        rto: raw?.rtoCount,
        retransmits: raw?.retransmits,
        bytesTx: raw?.bytesTransmitted,
        queued: queuedMessages(stream)
      }
    })
    return { writers: out, conns }
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
