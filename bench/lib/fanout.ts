// Fan-out measurement shared by the relays (bench/alt/fanout.ts) and
// crosscast's gateway: N clients in separate processes, one event posted by
// the harness, per-client delivery latency and the server's RSS per client.
import { setTimeout as sleep } from 'node:timers/promises'
import { spawnPeer, percentile, median, rssOfPid, type Peer } from './stats.ts'
import type { Workload } from './contract.ts'
import type { PostSpan } from './peer.ts'

const CLIENTS = new URL('../alt/peers/relay-clients.ts', import.meta.url)

/** 'seed-ws': the seed's /ws/broadcasts protocol (crosscast gateway, ws relay). 'socketio': Socket.IO. */
export type ClientProtocol = 'seed-ws' | 'socketio'

/** A running server under test; started fresh for every run. */
export interface FanoutTarget {
  /** Where clients connect: ws://127.0.0.1:PORT/ws/broadcasts (seed-ws) or http://127.0.0.1:PORT (socketio). */
  url: string
  /** The server's OS process (must not be the harness's), for RSS. */
  pid: number
  /** RSS in bytes, ideally after a GC; default: VmRSS of pid after a 300 ms pause. */
  rss?: () => Promise<number>
  /** process.memoryUsage() heapUsed + external in bytes, after a GC; optional (figure is NaN without it). */
  heap?: () => Promise<number>
  /** Publishes one event whose broadcast frame contains `marker` (e.g. as its title); resolves once sent. */
  post (marker: string): Promise<void>
  /**
   * When the server received each post and when its event was stored (durable; for crosscast also
   * projected, ready to send), as process.hrtime ns (one clock for every process here); cleared on read.
   */
  spans?: () => Promise<PostSpan[]>
  /** Called once every client is connected, before the first post, and after the last one (e.g. to profile only the fan-out). */
  aroundPosts?: { before (): Promise<void>, after (): Promise<void> }
  close (): Promise<void>
}

/** FanoutTarget.aroundPosts for a server peer that serves profilerHandlers(): a CPU profile of the posts, written to `path`. */
export function profilePosts (server: Peer, path: string | null): FanoutTarget['aroundPosts'] {
  if (path === null) return undefined
  return {
    before: async () => { await server.request('profileStart') },
    after: async () => { await server.request('profileStop', { path }) }
  }
}

/**
 * Medians over a run's posts, from the harness's post call: the server has the request
 * (toServer), the event is stored (toStored), the first client has the frame (toFirstFrame).
 * NaN where the target records no spans.
 */
export interface FanoutSpans { toServer: number, toStored: number, toFirstFrame: number }

export interface FanoutRun extends FanoutSpans { p50: number, p99: number, serverKiBPerClient: number, serverHeapKiBPerClient: number, clientKiBPerClient: number }

/**
 * One run: spawn the client processes, start the target, measure its RSS,
 * connect every client, measure again, then post (1 warm-up +) w.postsPerRun
 * events and pool every client's latency (post call to frame received).
 */
export async function measureFanout (protocol: ClientProtocol, start: () => Promise<FanoutTarget>, w: Workload['fanout']): Promise<FanoutRun> {
  return (await measureFanoutSideBySide(protocol, [start], w))[0]
}

interface Side { procs: Peer[], target: FanoutTarget | null, latencies: number[], toServer: number[], toStored: number[], toFirstFrame: number[] }

/**
 * Several targets in one run, each with its own client processes, connected
 * one after the other; then their posts alternate (the order rotating every
 * post), so each target's latencies come from the same minutes of a machine
 * whose load drifts, and their ratio compares like with like.
 */
export async function measureFanoutSideBySide (protocol: ClientProtocol, starts: Array<() => Promise<FanoutTarget>>, w: Workload['fanout']): Promise<FanoutRun[]> {
  const sides: Side[] = starts.map(() => ({ procs: [], target: null, latencies: [], toServer: [], toStored: [], toFirstFrame: [] }))
  try {
    const memory: Array<Omit<FanoutRun, 'p50' | 'p99' | keyof FanoutSpans>> = []
    for (let s = 0; s < starts.length; s++) {
      const side = sides[s]
      for (let i = 0; i < w.clientProcesses; i++) side.procs.push(await spawnPeer(CLIENTS, `fanout-clients-${s}-${i}`, { nodeFlags: ['--expose-gc'] }))
      side.target = await starts[s]()
      const t = side.target
      const serverRss = t.rss ?? (async () => { await sleep(300); return rssOfPid(t.pid) })
      const serverHeap = t.heap ?? (async () => Number.NaN)
      const serverBefore = await serverRss()
      const heapBefore = await serverHeap()
      const clientsBefore = await Promise.all(side.procs.map((p) => p.request<{ rss: number }>('rss')))
      const share = (i: number): number => Math.floor(w.clients / w.clientProcesses) + (i < w.clients % w.clientProcesses ? 1 : 0)
      // one process at a time, so the two connection storms do not overlap
      for (let i = 0; i < side.procs.length; i++) await side.procs[i].request('connect', { protocol, url: t.url, count: share(i) }, 180_000)
      const serverAfter = await serverRss()
      const heapAfter = await serverHeap()
      const clientsAfter = await Promise.all(side.procs.map((p) => p.request<{ rss: number }>('rss')))
      const clientDelta = clientsAfter.reduce((sum, a, i) => sum + (a.rss - clientsBefore[i].rss), 0)
      memory.push({
        serverKiBPerClient: (serverAfter - serverBefore) / 1024 / w.clients,
        serverHeapKiBPerClient: (heapAfter - heapBefore) / 1024 / w.clients,
        clientKiBPerClient: clientDelta / 1024 / w.clients
      })
    }

    for (const side of sides) await side.target!.aroundPosts?.before()
    for (let post = -1; post < w.postsPerRun; post++) { // post -1 is an unmeasured warm-up
      for (let k = 0; k < sides.length; k++) {
        const side = sides[(k + post + 1) % sides.length]
        const marker = `fanout-marker-${process.pid}-${Date.now()}-${post + 1}`
        await Promise.all(side.procs.map((p) => p.request('arm', { marker })))
        const startNs = process.hrtime.bigint()
        await side.target!.post(marker)
        const results = await Promise.all(side.procs.map((p) => p.request<{ arrivals: bigint[] }>('collect', { marker, timeoutMs: 30_000 }, 40_000)))
        const spans = await side.target!.spans?.()
        if (post < 0) continue
        const ms = (at: bigint): number => Number(at - startNs) / 1e6
        let first = Infinity
        for (const r of results) for (const at of r.arrivals) { side.latencies.push(ms(at)); first = Math.min(first, ms(at)) }
        side.toFirstFrame.push(first)
        if (spans !== undefined && spans.length > 0) {
          side.toServer.push(ms(spans[0].received))
          side.toStored.push(ms(spans[0].stored))
        }
      }
    }
    for (const side of sides) await side.target!.aroundPosts?.after()
    return sides.map((side, s) => ({
      p50: percentile(side.latencies, 50),
      p99: percentile(side.latencies, 99),
      toServer: median(side.toServer),
      toStored: median(side.toStored),
      toFirstFrame: median(side.toFirstFrame),
      ...memory[s]
    }))
  } finally {
    for (const side of sides) if (side.target) await side.target.close().catch(() => {})
    await Promise.all(sides.flatMap((side) => side.procs.map((p) => p.kill())))
  }
}
