// Many gateway WebSocket clients in one process: each subscribes with the
// seed's text "subscribe"; records when each receives the event on a given
// resource, which this process also writes through the REST API.
import { WebSocket } from 'ws'
import { servePeer } from '../lib/peer.ts'
import { rssSelf, settleMemory } from '../lib/stats.ts'

interface Arm { expected: number, arrivals: bigint[], done: Promise<void>, resolve: () => void }

const sockets: WebSocket[] = []
const arms = new Map<string, Arm>()

function onEvent (resourceId: string): void {
  const arm = arms.get(resourceId)
  if (arm === undefined) return
  arm.arrivals.push(process.hrtime.bigint())
  if (arm.arrivals.length === arm.expected) arm.resolve()
}

async function open (port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/broadcasts`, { perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject)
    ws.once('open', () => ws.send('subscribe'))
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as { type: string, resource_id?: string }
      if (msg.type === 'subscribed') resolve()
      else if (msg.type === 'broadcast_event' && msg.resource_id !== undefined) onEvent(msg.resource_id)
    })
  })
  ws.on('error', () => {})
  return ws
}

servePeer({
  async rss () {
    await settleMemory()
    return { rss: rssSelf() }
  },
  async connect (args) {
    const port = Number(args.port)
    const count = Number(args.count)
    const parallel = 50
    for (let i = 0; i < count; i += parallel) {
      const batch = Math.min(parallel, count - i)
      sockets.push(...await Promise.all(Array.from({ length: batch }, () => open(port))))
    }
    return { open: sockets.length }
  },
  arm (args) {
    let resolve: () => void = () => {}
    const done = new Promise<void>((r) => { resolve = r })
    arms.set(String(args.resourceId), { expected: sockets.length, arrivals: [], done, resolve })
    return null
  },
  async post (args) {
    const port = Number(args.port)
    const resourceId = String(args.resourceId)
    const startNs = process.hrtime.bigint()
    const res = await fetch(`http://127.0.0.1:${port}/api/broadcast/tracks/${resourceId}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-id': 'bench', 'x-session-id': 'sess-bench' },
      body: JSON.stringify({ title: 'fan-out probe', description: 'x'.repeat(40) })
    })
    if (res.status !== 200) throw new Error(`post failed: ${res.status} ${await res.text()}`)
    const body = await res.json() as { clients_notified: number }
    return { startNs, clientsNotified: body.clients_notified }
  },
  async collect (args) {
    const resourceId = String(args.resourceId)
    const arm = arms.get(resourceId)
    if (arm === undefined) throw new Error('not armed')
    const timeoutMs = Number(args.timeoutMs ?? 30_000)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([arm.done, new Promise<void>((_r, reject) => { timer = setTimeout(() => reject(new Error(`only ${arm.arrivals.length}/${arm.expected} clients got the event`)), timeoutMs) })])
    clearTimeout(timer)
    arms.delete(resourceId)
    return { arrivals: arm.arrivals }
  }
}, async () => {
  for (const ws of sockets) ws.terminate()
})
