// One automerge-repo 2 peer in its own process. Peer A owns a document of
// features and streams status changes; peer B finds the document and reports
// when it has seen a given change.
import net from 'node:net'
import { setImmediate as yieldLoop } from 'node:timers/promises'
import { Repo, type DocHandle, type AutomergeUrl } from '@automerge/automerge-repo'
import { servePeer } from '../../lib/peer.ts'
import { LengthTracker } from '../../lib/tracker.ts'
import { TcpNetworkAdapter } from './automerge-tcp.ts'

interface Feature { title: string, status: string, updated_by: string, seq: number }
interface Board { features: Record<string, Feature>, seq: number }

const STATUSES = ['todo', 'in_progress', 'blocked', 'done']
const FEATURES = 64
let repo: Repo | null = null
let socket: net.Socket | null = null
let server: net.Server | null = null
let handle: DocHandle<Board> | null = null
let seen = new LengthTracker()

function need<T> (v: T | null): T {
  if (v === null) throw new Error('not initialised')
  return v
}

servePeer({
  async listen () {
    server = net.createServer()
    const accepted = new Promise<net.Socket>((resolve) => server!.once('connection', resolve))
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', () => resolve()))
    const port = (server.address() as net.AddressInfo).port
    void accepted.then((s) => {
      s.setNoDelay(true)
      socket = s
      repo = new Repo({ network: [new TcpNetworkAdapter(s)], sharePolicy: async () => true })
    })
    return { port }
  },
  async connect (args) {
    const s = net.connect({ port: Number(args.port), host: '127.0.0.1' })
    s.setNoDelay(true)
    await new Promise<void>((resolve, reject) => { s.once('connect', () => resolve()); s.once('error', reject) })
    socket = s
    repo = new Repo({ network: [new TcpNetworkAdapter(s)], sharePolicy: async () => true })
    return null
  },
  async create () {
    const r = need(repo)
    const features: Record<string, Feature> = {}
    for (let i = 0; i < FEATURES; i++) features[`feat-${i.toString(16).padStart(8, '0')}`] = { title: `Feature ${i}`, status: 'todo', updated_by: 'claude-1', seq: 0 }
    handle = r.create<Board>({ features, seq: 0 })
    return { url: handle.url }
  },
  async open (args) {
    const r = need(repo)
    handle = await r.find<Board>(String(args.url) as AutomergeUrl)
    seen = new LengthTracker()
    const h = handle
    const onChange = (): void => { seen.record(h.doc().seq) }
    h.on('change', onChange)
    onChange()
    return null
  },
  async stream (args) {
    const h = need(handle)
    const count = Number(args.changes)
    const ids = Object.keys(h.doc().features)
    const base = h.doc().seq
    const startNs = process.hrtime.bigint()
    for (let i = 1; i <= count; i++) {
      const id = ids[i % ids.length]
      h.change((d) => {
        d.features[id].status = STATUSES[i % STATUSES.length]
        d.features[id].seq = base + i
        d.seq = base + i
      })
      // one change per turn of the event loop: a stream of independent edits, not one synchronous burst
      await yieldLoop()
    }
    return { startNs, seq: base + count }
  },
  async seenAt (args) {
    return { atNs: await seen.when(Number(args.seq), Number(args.timeoutMs ?? 120_000)) }
  },
  bytes () {
    const s = need(socket)
    return { bytes: s.bytesRead + s.bytesWritten }
  }
}, async () => {
  if (repo) await repo.shutdown().catch(() => {})
  socket?.destroy()
  server?.close()
})
