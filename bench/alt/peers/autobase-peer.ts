// One Autobase 7 peer in its own process. Set up as the Autobase README
// intends: the bootstrap writer adds the others with an `addWriter` op that
// `apply` turns into host.addWriter; the view is a hypercore that appends
// every other op in linearized order.
import Corestore from 'corestore'
import { createRequire } from 'node:module'
import { rmSync } from 'node:fs'
import { servePeer, peerDir } from '../../lib/peer.ts'
import { listenSecret, connectSecret, type SecretServer, type SecretStream } from '../../lib/net.ts'
import { LengthTracker } from '../../lib/tracker.ts'
import { sampleEvent } from '../../lib/stats.ts'

const require = createRequire(import.meta.url)

interface ViewCore { readonly length: number, append (value: unknown): Promise<unknown>, get (i: number): Promise<unknown> }
interface ApplyNode { value: { addWriter?: string, [k: string]: unknown } | null }
interface Host { addWriter (key: Buffer, opts?: { indexer?: boolean }): Promise<void> }
interface AutoStore { get (opts: { name: string, valueEncoding?: string }): ViewCore }
interface Base {
  readonly key: Buffer
  readonly local: { key: Buffer }
  readonly writable: boolean
  readonly view: ViewCore
  ready (): Promise<void>
  close (): Promise<void>
  append (value: unknown): Promise<number>
  update (): Promise<void>
  replicate (stream: SecretStream): unknown
  on (event: string, fn: (...args: unknown[]) => void): void
}
type AutobaseCtor = new (store: Corestore, bootstrap: Buffer | null, opts: {
  valueEncoding: string
  open: (store: AutoStore) => ViewCore
  apply: (nodes: ApplyNode[], view: ViewCore, host: Host) => Promise<void>
}) => Base
const Autobase = require('autobase') as AutobaseCtor

const dir = peerDir()
const store = new Corestore(dir)
let base: Base | null = null
let server: SecretServer | null = null
const viewArrivals = new LengthTracker()
let name = 'w'

function need (): Base {
  if (!base) throw new Error('not initialised')
  return base
}

servePeer({
  async init (args) {
    name = String(args.name)
    const bootstrap = args.bootstrap ? Buffer.from(String(args.bootstrap), 'hex') : null
    base = new Autobase(store, bootstrap, {
      valueEncoding: 'json',
      open: (viewStore) => viewStore.get({ name: 'view', valueEncoding: 'json' }),
      apply: async (nodes, view, host) => {
        for (const { value } of nodes) {
          if (value === null) continue
          if (value.addWriter) {
            await host.addWriter(Buffer.from(value.addWriter, 'hex'), { indexer: true })
            continue
          }
          await view.append(value)
        }
      }
    })
    base.on('error', () => {})
    await base.ready()
    const b = base
    b.on('update', () => { viewArrivals.record(b.view.length) })
    server = await listenSecret((stream) => { b.replicate(stream) })
    return { key: b.key.toString('hex'), localKey: b.local.key.toString('hex'), port: server.port }
  },
  async connect (args) {
    const b = need()
    for (const port of args.ports as number[]) b.replicate(await connectSecret(port))
    return null
  },
  async addWriter (args) {
    await need().append({ addWriter: String(args.key) })
    return null
  },
  async waitWritable (args) {
    const b = need()
    const deadline = Date.now() + Number(args.timeoutMs ?? 30_000)
    while (!b.writable) {
      if (Date.now() > deadline) throw new Error(`${name} not writable in time`)
      await b.update()
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return null
  },
  async burst (args) {
    const b = need()
    const count = Number(args.count)
    const window = Number(args.window)
    const bytes = Number(args.eventBytes)
    const values = Array.from({ length: count }, (_v, i) => JSON.parse(sampleEvent(i, name, bytes)) as unknown)
    const startNs = process.hrtime.bigint()
    const mode = String(args.mode ?? 'window')
    if (mode === 'array') {
      // one append call per `window` values: Autobase writes them as one batch
      for (let i = 0; i < count; i += window) await b.append(values.slice(i, i + window))
    } else if (mode === 'sequential') {
      for (const v of values) await b.append(v)
    } else {
      // at most `window` appends in flight; Autobase coalesces concurrent appends
      for (let i = 0; i < count; i += window) {
        await Promise.all(values.slice(i, i + window).map((v) => b.append(v)))
      }
    }
    return { startNs, endNs: process.hrtime.bigint() }
  },
  async appendStamp () {
    const b = need()
    const startNs = process.hrtime.bigint()
    await b.append(JSON.parse(sampleEvent(0, name)))
    return { startNs }
  },
  async viewAt (args) {
    const length = Number(args.length)
    const atNs = await viewArrivals.when(length, Number(args.timeoutMs ?? 60_000))
    return { atNs }
  },
  viewLength () { return { length: need().view.length } }
}, async () => {
  if (server) await server.close()
  if (base) await base.close()
  await store.close()
  rmSync(dir, { recursive: true, force: true })
})
