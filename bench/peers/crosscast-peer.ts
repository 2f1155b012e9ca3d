// One benchmark peer in its own OS process: a crosscast node, or (for the
// baseline) a raw hypercore. Both replicate over the transport every
// hypercore-stack alternative uses here: TCP on 127.0.0.1 wrapped in Noise, so
// a ratio compares the same network path. Discovery is not what is measured.
import { join } from 'node:path'
import Corestore from 'corestore'
import type Hypercore from 'hypercore'
import { Crosscast, type Feature } from '../../lib/index.ts'
import { servePeer, peerDir } from '../lib/peer.ts'
import { LengthTracker } from '../lib/tracker.ts'
import { rssSelf, settleMemory } from '../lib/stats.ts'
import { listenSecret, connectSecret, type SecretServer } from '../lib/net.ts'
import { PeerLinks } from '../lib/links.ts'

const dir = peerDir()
let cc: Crosscast | null = null
const links = new PeerLinks(node)
const arrivals = new Map<string, bigint>()
const MAX_ARRIVALS = 10_000
const counts = new LengthTracker()
let projected = 0

let rawStore: Corestore | null = null
let rawCore: Hypercore | null = null
let rawServer: SecretServer | null = null
const rawArrivals = new LengthTracker()

function node (): Crosscast {
  if (cc === null) throw new Error('open first')
  return cc
}

const statuses = ['todo', 'in_progress', 'blocked', 'done'] as const
let latencyFeature: string | null = null
let features: Feature[] = []

async function ensureFeatures (n: number): Promise<Feature[]> {
  const c = node()
  while (features.length < n) features.push(await c.features.create(`bench ${features.length}`).save())
  return features
}

servePeer({
  async open (args) {
    cc = await Crosscast.open({ storage: join(dir, 'node'), room: String(args.room), sessionId: String(args.sessionId), agent: 'bench', swarm: false, lan: false })
    projected = (cc.db.prepare('SELECT count(*) AS n FROM broadcast_events').get() as { n: number }).n
    counts.record(projected)
    cc.subscribe({}, (event) => {
      projected++
      // Bounded: a map of every event of a 1,000,000-event run made major GC
      // pauses that showed up as second-long "latencies" in later samples.
      if (arrivals.size >= MAX_ARRIVALS) arrivals.delete(arrivals.keys().next().value as string)
      arrivals.set(event.event_id, process.hrtime.bigint())
      counts.record(projected)
    })
    return { writerKey: cc.writerKey }
  },
  listen: () => links.listen(),
  connect: (args) => links.connect(Number(args.port)),
  peers: () => links.authenticated(),
  /** Bytes on every replication socket of this peer, both directions. */
  bytes () {
    let total = 0
    for (const s of links.sockets) total += s.bytesRead + s.bytesWritten
    return total
  },
  async prepare (args) {
    await ensureFeatures(Number(args.features ?? 64))
    return projected
  },
  /** One idle status change; returns when it started and its event id. */
  async saveOne () {
    const c = node()
    if (latencyFeature === null) latencyFeature = (await c.features.create('latency').save()).id
    const startNs = process.hrtime.bigint()
    const [event] = await c.append([{ event_type: 'status_changed', resource_id: latencyFeature, payload: { old_status: null, new_status: statuses[Math.floor(Math.random() * 4)] } }])
    return { startNs, eventId: event.event_id }
  },
  async arrivedAt (args) {
    const id = String(args.eventId)
    const deadline = Date.now() + Number(args.timeoutMs ?? 10_000)
    while (!arrivals.has(id)) {
      if (Date.now() > deadline) throw new Error(`event ${id} did not arrive`)
      await new Promise(resolve => setTimeout(resolve, 1))
    }
    return { atNs: arrivals.get(id) }
  },
  /**
   * `count` status changes: `window` in flight at most (as fast as the SDK takes
   * them), or `window: 1` for each awaited before the next (one per block).
   */
  async burst (args) {
    const c = node()
    const count = Number(args.count)
    const window = Number(args.window ?? 512)
    const targets = await ensureFeatures(64)
    const before = c.status().writers.find(w => w.key === c.writerKey)?.length ?? 0
    let next = 0
    const startNs = process.hrtime.bigint()
    await Promise.all(Array.from({ length: Math.min(window, count) }, async () => {
      while (next < count) {
        const i = next++
        await c.append([{ event_type: 'status_changed', resource_id: targets[i % targets.length].id, payload: { old_status: null, new_status: statuses[i % 4] } }])
      }
    }))
    const blocks = (c.status().writers.find(w => w.key === c.writerKey)?.length ?? 0) - before
    return { startNs, endNs: process.hrtime.bigint(), total: projected, blocks }
  },
  /** Status changes issued one per event-loop turn, not awaited (how the sync comparison drives automerge). */
  async trickle (args) {
    const c = node()
    const count = Number(args.count)
    const [target] = await ensureFeatures(1)
    const startNs = process.hrtime.bigint()
    const pending: Array<Promise<unknown>> = []
    for (let i = 0; i < count; i++) {
      pending.push(c.append([{ event_type: 'status_changed', resource_id: target.id, payload: { old_status: null, new_status: statuses[i % 4] } }]))
      await new Promise(resolve => setImmediate(resolve))
    }
    await Promise.all(pending)
    return { startNs, total: projected }
  },
  async countAt (args) {
    return { atNs: await counts.when(Number(args.count), Number(args.timeoutMs ?? 60_000)) }
  },
  count () {
    return projected
  },
  async rss () {
    await settleMemory()
    return rssSelf()
  },

  // ---- raw hypercore baseline on the same transport ----
  async rawWriter () {
    rawStore = new Corestore(join(dir, 'raw'))
    rawCore = rawStore.get({ name: 'raw' })
    await rawCore.ready()
    const core = rawCore
    rawServer = await listenSecret((stream) => { core.replicate(stream) })
    return { key: core.key.toString('hex'), port: rawServer.port }
  },
  async rawReader (args) {
    rawStore = new Corestore(join(dir, 'raw'))
    rawCore = rawStore.get({ key: Buffer.from(String(args.key), 'hex') })
    await rawCore.ready()
    const core = rawCore
    const grow = (): void => { rawArrivals.record(core.contiguousLength) }
    core.on('download', grow)
    core.on('append', grow)
    core.download({ start: 0, end: -1 })
    core.replicate(await connectSecret(Number(args.port)))
    return true
  },
  async rawAppend (args) {
    const core = rawCore as Hypercore
    const blocks = Number(args.blocks)
    const block = Buffer.alloc(Number(args.bytes), 7)
    const startNs = process.hrtime.bigint()
    for (let i = 0; i < blocks; i++) await core.append(block)
    return { startNs, length: core.length }
  },
  async rawArrivedAt (args) {
    const length = Number(args.length)
    const atNs = await rawArrivals.when(length, Number(args.timeoutMs ?? 60_000))
    await (rawCore as Hypercore).get(length - 1)
    return { atNs }
  }
}, async () => {
  links.close()
  await cc?.close()
  await rawServer?.close()
  await rawStore?.close()
})
