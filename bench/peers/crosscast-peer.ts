// One benchmark peer in its own OS process: a crosscast node, or (for the
// baseline) a raw hypercore on the same transport (Hyperswarm on a loopback
// testnet), so a ratio compares the same network path.
import Corestore from 'corestore'
import Hyperswarm from 'hyperswarm'
import DHT from 'hyperdht'
import type Hypercore from 'hypercore'
import { join } from 'node:path'
import { Crosscast } from '../../lib/index.ts'
import { servePeer, peerDir, emit } from '../lib/peer.ts'
import { LengthTracker } from '../lib/tracker.ts'
import { rssSelf, settleMemory } from '../lib/stats.ts'

const dir = peerDir()
let cc: Crosscast | null = null
const arrivals = new Map<string, bigint>()
const counts = new LengthTracker()
let projected = 0

let rawStore: Corestore | null = null
let rawSwarm: Hyperswarm | null = null
let rawCore: Hypercore | null = null
const rawArrivals = new LengthTracker()

/** Bound to 127.0.0.1 like crosscast's own swarm on a loopback testnet (a 0.0.0.0 DHT does not deliver server connections here). */
function rawSwarmOn (bootstrap: Array<{ host: string, port: number }>): Hyperswarm {
  return new Hyperswarm({ dht: new DHT({ bootstrap, host: '127.0.0.1', port: 0 }) })
}

function node (): Crosscast {
  if (cc === null) throw new Error('open first')
  return cc
}

const statuses = ['todo', 'in_progress', 'blocked', 'done'] as const
let featureId: string | null = null

servePeer({
  async open (args) {
    cc = await Crosscast.open({
      storage: join(dir, String(args.name ?? 'node')),
      room: String(args.room),
      sessionId: String(args.sessionId),
      agent: 'bench',
      swarm: args.swarm !== false,
      lan: false,
      bootstrap: args.bootstrap as Array<{ host: string, port: number }>
    })
    cc.subscribe({}, (event) => {
      projected++
      arrivals.set(event.event_id, process.hrtime.bigint())
      counts.record(projected)
    })
    projected = (cc.db.prepare('SELECT count(*) AS n FROM broadcast_events').get() as { n: number }).n
    counts.record(projected)
    return { writerKey: cc.writerKey }
  },
  async peers () {
    return node().status().peers.length
  },
  /** One idle status change; returns when it started and its event id. */
  async saveOne () {
    const c = node()
    if (featureId === null) featureId = (await c.features.create('latency').save()).id
    const startNs = process.hrtime.bigint()
    const [event] = await c.append([{ event_type: 'status_changed', resource_id: featureId, payload: { old_status: null, new_status: statuses[Math.floor(Math.random() * 4)] } }])
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
  /** `count` status changes as fast as the SDK takes them, `concurrency` callers at a time. */
  async burst (args) {
    const c = node()
    const count = Number(args.count)
    const concurrency = Number(args.concurrency ?? 256)
    const features = await Promise.all(Array.from({ length: Math.min(concurrency, 64) }, (_, i) => c.features.create(`burst ${i}`).save()))
    let next = 0
    const startNs = process.hrtime.bigint()
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++
        await c.append([{ event_type: 'status_changed', resource_id: features[i % features.length].id, payload: { old_status: null, new_status: statuses[i % 4] } }])
      }
    }))
    return { startNs, endNs: process.hrtime.bigint(), total: projected, blocks: c.status().writers.find(w => w.local && w.key === c.writerKey)?.length ?? 0 }
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
  async close () {
    await cc?.close()
    cc = null
    return true
  },

  // ---- raw hypercore baseline on the same transport ----
  async rawWriter (args) {
    rawStore = new Corestore(join(dir, 'raw'))
    rawCore = rawStore.get({ name: 'raw' })
    await rawCore.ready()
    rawSwarm = rawSwarmOn(args.bootstrap as Array<{ host: string, port: number }>)
    rawSwarm.on('connection', (conn: any) => { conn.on('error', () => {}); rawStore!.replicate(conn) })
    rawSwarm.join(rawCore.discoveryKey, { server: true, client: false })
    await rawSwarm.flush()
    return { key: rawCore.key.toString('hex') }
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
    rawSwarm = rawSwarmOn(args.bootstrap as Array<{ host: string, port: number }>)
    rawSwarm.on('connection', (conn: any) => { conn.on('error', () => {}); rawStore!.replicate(conn) })
    rawSwarm.join(core.discoveryKey, { server: false, client: true })
    await rawSwarm.flush()
    return true
  },
  async rawAppend (args) {
    const core = rawCore as Hypercore
    const blocks = (args.blocks as Uint8Array[]).map(b => Buffer.from(b))
    const startNs = process.hrtime.bigint()
    for (const block of blocks) await core.append(block)
    return { startNs, length: core.length }
  },
  async rawArrivedAt (args) {
    const length = Number(args.length)
    const atNs = await rawArrivals.when(length, Number(args.timeoutMs ?? 60_000))
    await (rawCore as Hypercore).get(length - 1)
    return { atNs }
  }
}, async () => {
  await cc?.close()
  await rawSwarm?.destroy()
  await rawStore?.close()
  emit('closed')
})
