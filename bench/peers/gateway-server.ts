// A crosscast node plus its gateway in its own process (never the clients'),
// so its RSS delta is what the connected WebSocket clients cost.
import { servePeer, peerDir, profilerHandlers, peerSpans } from '../lib/peer.ts'
import { rssSelf, settleMemory } from '../lib/stats.ts'
import { Crosscast } from '../../lib/index.ts'
import { createGateway, type Gateway } from '../../lib/gateway/index.ts'

let cc: Crosscast | null = null
let gw: Gateway | null = null
// Each post: the request arrives, then its event is durable and projected (emitted as it commits; the fan-out follows).
const spans = peerSpans()

servePeer({
  async start () {
    cc = await Crosscast.open({ storage: peerDir(), room: 'bench-gateway', agent: 'gateway', sessionId: 'gateway', swarm: false, lan: false })
    gw = await createGateway(cc, { port: 0 })
    gw.app.server.prependListener('request', (req) => { if (req.method === 'POST') spans.received() })
    cc.on('events', () => spans.stored())
    return { port: gw.address.port }
  },
  async rss () {
    await settleMemory()
    const metrics = await (await fetch(`${gw!.url}/api/metrics`)).json() as { total_connected_clients: number }
    const m = process.memoryUsage()
    return { rss: rssSelf(), heap: m.heapUsed + m.external, connected: metrics.total_connected_clients }
  },
  ...profilerHandlers(),
  ...spans.handlers
}, async () => {
  await gw?.close()
  await cc?.close()
})
