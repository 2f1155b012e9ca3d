// One raw-hypercore peer in its own process: the writer appends, the reader
// downloads live over TCP + Noise on 127.0.0.1.
import Corestore from 'corestore'
import type Hypercore from 'hypercore'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { servePeer, peerDir } from '../../lib/peer.ts'
import { listenSecret, connectSecret, type SecretServer } from '../../lib/net.ts'
import { LengthTracker } from '../../lib/tracker.ts'
import { sampleEvent } from '../../lib/stats.ts'

const dir = peerDir()
const store = new Corestore(dir)
let core: Hypercore | null = null
let server: SecretServer | null = null
const arrivals = new LengthTracker()

function need (): Hypercore {
  if (!core) throw new Error('not initialised')
  return core
}

servePeer({
  async writer () {
    core = store.get({ name: 'bench' })
    await core.ready()
    const c = core
    server = await listenSecret((stream) => { c.replicate(stream) })
    return { key: c.key.toString('hex'), port: server.port }
  },
  async reader (args) {
    core = store.get({ key: Buffer.from(String(args.key), 'hex') })
    await core.ready()
    const c = core
    const onGrow = (): void => { arrivals.record(c.contiguousLength) }
    c.on('download', onGrow)
    c.on('append', onGrow)
    c.download({ start: 0, end: -1 })
    const stream = await connectSecret(Number(args.port))
    c.replicate(stream)
    return { length: c.length }
  },
  async appendStamp () {
    const c = need()
    const block = Buffer.from(sampleEvent(c.length, 'A'))
    const startNs = process.hrtime.bigint()
    const { length } = await c.append(block)
    return { startNs, length }
  },
  async burst (args) {
    const c = need()
    const blocks = Number(args.blocks)
    const perBlock = Number(args.eventsPerBlock)
    const bytes = Number(args.eventBytes)
    const payload: Buffer[] = []
    for (let b = 0; b < blocks; b++) {
      const lines: string[] = []
      for (let e = 0; e < perBlock; e++) lines.push(sampleEvent(b * perBlock + e, 'A', bytes))
      payload.push(Buffer.from(lines.join('\n')))
    }
    const startNs = process.hrtime.bigint()
    for (const block of payload) await c.append(block)
    return { startNs, endNs: process.hrtime.bigint(), length: c.length }
  },
  async arrivedAt (args) {
    const length = Number(args.length)
    const atNs = await arrivals.when(length, Number(args.timeoutMs ?? 60_000))
    // the block must be readable, not just announced
    await need().get(length - 1)
    return { atNs }
  },
  length () { return { length: need().length } }
}, async () => {
  if (server) await server.close()
  await store.close()
  rmSync(dir, { recursive: true, force: true })
})
