// Fan-out through a central server: the seed's design (one `ws` relay that
// stores each event in SQLite and re-broadcasts it) and Socket.IO broadcast.
// Server, clients and the harness (which posts) are separate OS processes,
// so the server's RSS delta is the memory its connections cost.
import { fileURLToPath } from 'node:url'
import { WebSocket } from 'ws'
import { io as ioClient } from 'socket.io-client'
import { spawnPeer, summarize, sampleEvent } from '../lib/stats.ts'
import { measureFanout, profilePosts, type FanoutRun, type FanoutTarget } from '../lib/fanout.ts'
import type { PostSpan } from '../lib/peer.ts'
import type { BenchContext, BenchModule, FigureSet } from '../lib/contract.ts'
import { contextFromEnv } from '../lib/contract.ts'
import { printFigures } from '../lib/report.ts'

const SERVER = new URL('./peers/relay-server.ts', import.meta.url)

/** 'floor': no relay, one pre-built frame written to every client socket (see relay-server.ts). */
export type RelayKind = 'ws' | 'socketio' | 'floor'

function seedEvent (marker: string): Record<string, unknown> {
  return {
    event_id: marker,
    event_type: 'status_changed',
    resource_id: 'feat-0000abcd',
    resource_type: 'feature',
    agent_id: 'claude-1',
    session_id: 'sess-bench',
    payload: { old_status: 'todo', new_status: 'in_progress', pad: sampleEvent(0, 'p', 40) },
    timestamp: new Date().toISOString()
  }
}

/** Starts a relay in its own process, plus a publisher connection from this process (not counted as a client). */
export async function startRelay (kind: RelayKind, profilePath: string | null = null): Promise<FanoutTarget> {
  const server = await spawnPeer(SERVER, `${kind}-relay`, { nodeFlags: ['--expose-gc'] })
  try {
    const { port } = await server.request<{ port: number }>('start', { kind })
    const rss = async (): Promise<number> => (await server.request<{ rss: number }>('rss')).rss
    const heap = async (): Promise<number> => (await server.request<{ heap: number }>('rss')).heap
    const aroundPosts = profilePosts(server, profilePath)
    if (kind === 'ws' || kind === 'floor') {
      const url = `ws://127.0.0.1:${port}/ws/broadcasts`
      const publisher = new WebSocket(url, { perMessageDeflate: false })
      await new Promise<void>((resolve, reject) => { publisher.once('open', () => resolve()); publisher.once('error', reject) })
      publisher.on('error', () => {})
      return {
        url,
        pid: server.pid,
        rss,
        heap,
        aroundPosts,
        spans: async () => await server.request<PostSpan[]>('spans'),
        post: async (marker) => { publisher.send(JSON.stringify(seedEvent(marker))) },
        close: async () => { publisher.terminate(); await server.kill() }
      }
    }
    const url = `http://127.0.0.1:${port}`
    const publisher = ioClient(url, { transports: ['websocket'], reconnection: false, forceNew: true })
    await new Promise<void>((resolve, reject) => { publisher.once('connect', () => resolve()); publisher.once('connect_error', reject) })
    return {
      url,
      pid: server.pid,
      rss,
      heap,
      post: async (marker) => { publisher.emit('publish', seedEvent(marker)) },
      close: async () => { publisher.disconnect(); await server.kill() }
    }
  } catch (err) {
    await server.kill()
    throw err
  }
}

export async function runKind (ctx: BenchContext, kind: RelayKind): Promise<FigureSet> {
  const w = ctx.workload.fanout
  const runs: FanoutRun[] = []
  for (let r = 0; r < ctx.runs; r++) {
    ctx.log(`[${kind} relay] run ${r + 1}/${ctx.runs}: ${w.clients} clients`)
    runs.push(await measureFanout(kind === 'ws' ? 'seed-ws' : 'socketio', () => startRelay(kind), w))
  }
  const shape = `${w.clients} clients in ${w.clientProcesses} processes, ${w.postsPerRun} posts per run, percentile over all clients of the run's posts`
  return {
    'fanout.p50_ms': summarize(runs.map((r) => r.p50), 'ms', true, shape),
    'fanout.p99_ms': summarize(runs.map((r) => r.p99), 'ms', true, shape),
    'fanout.server_rss_per_client_kb': summarize(runs.map((r) => r.serverKiBPerClient), 'KiB', true, 'server RSS after connect minus before, after GC, / clients'),
    'fanout.server_heap_per_client_kb': summarize(runs.map((r) => r.serverHeapKiBPerClient), 'KiB', true, 'server heapUsed + external after connect minus before, after GC, / clients'),
    'fanout.client_rss_per_client_kb': summarize(runs.map((r) => r.clientKiBPerClient), 'KiB', true, 'client processes RSS delta, after GC, / clients')
  }
}

export const wsRelay: BenchModule = { system: 'ws relay + SQLite (seed design)', run: (ctx) => runKind(ctx, 'ws') }
export const socketIo: BenchModule = { system: 'Socket.IO 4 broadcast + SQLite', run: (ctx) => runKind(ctx, 'socketio') }

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const ctx = contextFromEnv()
  const only = process.argv[2]
  for (const m of [wsRelay, socketIo]) {
    if (only && !m.system.toLowerCase().includes(only)) continue
    printFigures(m.system, await m.run(ctx))
  }
}
