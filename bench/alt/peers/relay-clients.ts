// Many fan-out clients in one process (never the server's): opens
// connections, records when each receives the event carrying a marker, and
// reports the arrival times. Speaks the seed's WebSocket protocol (text
// `subscribe`, `ping` answered by a `pong` frame, `broadcast_event` frames) or
// Socket.IO, so the same clients measure the relays and crosscast's gateway.
import { WebSocket } from 'ws'
import { io as ioClient, type Socket } from 'socket.io-client'
import { servePeer } from '../../lib/peer.ts'
import { rssSelf, settleMemory } from '../../lib/stats.ts'

interface Arm { marker: string, expected: number, arrivals: bigint[], done: Promise<void>, resolve: () => void }

const closers: Array<() => void> = []
const arms = new Map<string, Arm>()

function onFrame (text: string): void {
  if (arms.size === 0) return
  const now = process.hrtime.bigint()
  for (const arm of arms.values()) {
    if (!text.includes(arm.marker)) continue
    arm.arrivals.push(now)
    if (arm.arrivals.length === arm.expected) arm.resolve()
  }
}

async function openSeedWs (url: string): Promise<void> {
  const ws = new WebSocket(url, { perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject)
    // `ping` after `subscribe`: its `pong` proves the subscription was processed
    ws.once('open', () => { ws.send('subscribe'); ws.send('ping') })
    ws.on('message', (data) => {
      const text = data.toString()
      // every client decodes every frame, as a real client would; a bare-text `pong` is accepted too
      let type: string | undefined
      try { type = (JSON.parse(text) as { type?: string }).type } catch { type = text.trim() }
      if (type === 'pong') resolve()
      else if (type === 'broadcast_event') onFrame(text)
    })
  })
  ws.on('error', () => {})
  closers.push(() => ws.terminate())
}

async function openSocketIo (url: string): Promise<void> {
  const socket: Socket = ioClient(url, { transports: ['websocket'], reconnection: false, forceNew: true })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve())
    socket.once('connect_error', reject)
  })
  socket.on('broadcast_event', (msg: { event_id?: string }) => { if (msg.event_id) onFrame(msg.event_id) })
  closers.push(() => socket.disconnect())
}

servePeer({
  async rss () {
    await settleMemory()
    return { rss: rssSelf() }
  },
  async connect (args) {
    const protocol = String(args.protocol)
    const url = String(args.url)
    const count = Number(args.count)
    const parallel = 50
    for (let i = 0; i < count; i += parallel) {
      const batch = Math.min(parallel, count - i)
      await Promise.all(Array.from({ length: batch }, () => protocol === 'socketio' ? openSocketIo(url) : openSeedWs(url)))
    }
    return { open: closers.length }
  },
  arm (args) {
    const marker = String(args.marker)
    let resolve: () => void = () => {}
    const done = new Promise<void>((r) => { resolve = r })
    arms.set(marker, { marker, expected: closers.length, arrivals: [], done, resolve })
    return null
  },
  async collect (args) {
    const marker = String(args.marker)
    const arm = arms.get(marker)
    if (!arm) throw new Error('not armed')
    const timeoutMs = Number(args.timeoutMs ?? 30_000)
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([arm.done, new Promise<void>((_r, reject) => { timer = setTimeout(() => reject(new Error(`only ${arm.arrivals.length}/${arm.expected} clients got the event`)), timeoutMs) })])
    } finally {
      clearTimeout(timer)
      arms.delete(marker)
    }
    return { arrivals: arm.arrivals }
  }
}, async () => {
  for (const close of closers) close()
})
