// The central relay the seed describes, in its own process: one server that
// stores each posted event in SQLite (the seed's broadcast_events table) and
// re-broadcasts it to every subscribed client. kind 'ws' = the `ws` package
// with the seed's plain-text `subscribe`; kind 'socketio' = Socket.IO broadcast;
// kind 'floor' = no relay at all, the floor of a WebSocket fan-out on this
// machine: nothing stored, one pre-built frame written to each client's TCP socket.
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { WebSocketServer, WebSocket } from 'ws'
import { Server as SocketIOServer } from 'socket.io'
import { servePeer, peerDir, profilerHandlers, peerSpans } from '../../lib/peer.ts'
import { rssSelf, settleMemory } from '../../lib/stats.ts'

interface PostedEvent {
  event_id: string, event_type: string, resource_id: string, resource_type: string,
  agent_id: string, session_id: string, payload: unknown, timestamp: string, t0?: string
}

const dir = peerDir()
const db = new Database(join(dir, 'relay.db'))
db.pragma('journal_mode = WAL')
db.exec(`CREATE TABLE broadcast_events (
  event_id TEXT PRIMARY KEY, event_type TEXT NOT NULL, resource_id TEXT NOT NULL,
  resource_type TEXT NOT NULL, agent_id TEXT NOT NULL, session_id TEXT NOT NULL,
  payload JSON, timestamp TEXT NOT NULL);
  CREATE INDEX idx_broadcast_timestamp ON broadcast_events(timestamp);
  CREATE INDEX idx_broadcast_resource ON broadcast_events(resource_id);`)
const insert = db.prepare('INSERT INTO broadcast_events VALUES (@event_id, @event_type, @resource_id, @resource_type, @agent_id, @session_id, @payload, @timestamp)')

function store (ev: PostedEvent): void {
  insert.run({ ...ev, payload: JSON.stringify(ev.payload) })
}

const httpServer = http.createServer((_req, res) => { res.writeHead(404).end() })
let connected = 0
// Each post: the event arrives, then it is stored (the send loop follows); two clock reads a post.
const spans = peerSpans()
let closeAll: () => void = () => {}

servePeer({
  async start (args) {
    const kind = String(args.kind)
    if (kind === 'ws' || kind === 'floor') {
      const wss = new WebSocketServer({ server: httpServer, path: '/ws/broadcasts' })
      const subscribed = new Set<WebSocket>()
      wss.on('connection', (ws) => {
        connected++
        ws.on('error', () => {})
        ws.on('close', () => { connected--; subscribed.delete(ws) })
        ws.on('message', (data, isBinary) => {
          const text = isBinary ? '' : data.toString()
          if (text === 'subscribe') { subscribed.add(ws); ws.send('{"type":"subscribed"}'); return }
          if (text === 'ping') { ws.send('{"type":"pong"}'); return }
          if (kind === 'ws') spans.received()
          const ev = JSON.parse(text) as PostedEvent
          if (kind === 'floor') {
            const payload = Buffer.from(JSON.stringify({ type: 'broadcast_event', ...ev }))
            if (payload.length >= 65536) throw new Error('floor frames are under 64 KiB')
            const header = payload.length < 126 ? [0x81, payload.length] : [0x81, 126, payload.length >> 8, payload.length & 0xff]
            const frame = Buffer.concat([Buffer.from(header), payload])
            for (const client of subscribed) (client as unknown as { _socket: { write (b: Buffer): void } })._socket.write(frame)
            return
          }
          store(ev)
          spans.stored()
          // serialize and encode once, send the same bytes to everyone (what Socket.IO's broadcast does too)
          const frame = Buffer.from(JSON.stringify({ type: 'broadcast_event', ...ev }))
          for (const client of subscribed) if (client.readyState === WebSocket.OPEN) client.send(frame, { binary: false })
        })
      })
      closeAll = () => { for (const c of wss.clients) c.terminate(); wss.close() }
    } else if (kind === 'socketio') {
      const io = new SocketIOServer(httpServer, { transports: ['websocket'], serveClient: false })
      io.on('connection', (socket) => {
        connected++
        socket.on('disconnect', () => { connected-- })
        socket.on('publish', (ev: PostedEvent) => {
          store(ev)
          io.emit('broadcast_event', { type: 'broadcast_event', ...ev })
        })
      })
      closeAll = () => { io.disconnectSockets(true); io.close() }
    } else {
      throw new Error(`unknown relay kind ${kind}`)
    }
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', () => resolve()))
    return { port: (httpServer.address() as AddressInfo).port }
  },
  async rss () {
    await settleMemory()
    const mem = process.memoryUsage()
    return { rss: rssSelf(), heap: mem.heapUsed + mem.external, connected }
  },
  ...profilerHandlers(),
  ...spans.handlers
}, async () => {
  closeAll()
  httpServer.closeAllConnections()
  db.close()
  rmSync(dir, { recursive: true, force: true })
})
