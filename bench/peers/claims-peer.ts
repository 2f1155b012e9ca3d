// A claimant in its own OS process for bench/claims.ts: a crosscast node that
// replicates over TCP + Noise on 127.0.0.1 (replicate()) and records, on the
// monotonic clock all processes share, when it first saw each holder of an item.
import { join } from 'node:path'
import { Crosscast, CrosscastError } from '../../lib/index.ts'
import { servePeer, peerDir } from '../lib/peer.ts'
import { PeerLinks } from '../lib/links.ts'

const dir = peerDir()
let cc: Crosscast | null = null
const links = new PeerLinks(node)
/** item id → [holder writer key or '', when this node first saw it hold] */
const holders = new Map<string, { writer: string, atNs: bigint }>()
const seen = new Map<string, bigint>()

function node (): Crosscast {
  if (cc === null) throw new Error('open first')
  return cc
}

function observe (id: string): void {
  const writer = node().claimOf(id)?.writer ?? ''
  if (holders.get(id)?.writer !== writer) holders.set(id, { writer, atNs: process.hrtime.bigint() })
}

async function waitFor (check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 1))
  }
}

// Arguments never use the name `id`: it is the request's own id on the IPC channel.
servePeer({
  async open (args) {
    cc = await Crosscast.open({ storage: join(dir, 'node'), room: String(args.room), sessionId: String(args.sessionId), agent: String(args.sessionId), swarm: false, lan: false })
    cc.on('events', (events: Array<{ event_type: string, resource_id: string, event_id: string }>) => {
      const now = process.hrtime.bigint()
      for (const e of events) {
        if (!seen.has(e.resource_id)) seen.set(e.resource_id, now)
        if (e.event_type === 'claim_added' || e.event_type === 'claim_released') observe(e.resource_id)
      }
    })
    return { writerKey: cc.writerKey }
  },
  listen: () => links.listen(),
  connect: (args) => links.connect(Number(args.port)),
  peers: () => links.authenticated(),
  async create () {
    const startNs = process.hrtime.bigint()
    const f = await node().features.create('contended').save()
    return { id: f.id, startNs }
  },
  /** When this node projected the item's first event. */
  async seenAt (args) {
    const id = String(args.item)
    await waitFor(() => seen.has(id), 10_000, `${id} to arrive`)
    return { atNs: seen.get(id) }
  },
  async claim (args) {
    const id = String(args.item)
    try {
      const result = await node().claim(id, { ttlS: 60 })
      observe(id)
      return { won: result.won, refused: false }
    } catch (err) {
      if (err instanceof CrosscastError && err.code === 'CLAIMED') return { won: false, refused: true }
      throw err
    }
  },
  /** When this node first saw `writer` hold the item (waits for it). */
  async holderAt (args) {
    const id = String(args.item)
    const writer = String(args.writer)
    await waitFor(() => holders.get(id)?.writer === writer, Number(args.timeoutMs ?? 10_000), `${writer.slice(0, 8)} to hold ${id}`)
    return { atNs: holders.get(id)!.atNs }
  },
  holder (args) {
    return node().claimOf(String(args.item))?.writer ?? null
  },
  async release (args) {
    await node().release(String(args.item))
    return true
  }
}, async () => {
  links.close()
  await cc?.close()
})
