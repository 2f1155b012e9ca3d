// Fan-out measurement shared by the relays (bench/alt/fanout.ts) and
// crosscast's gateway: N clients in separate processes, one event posted by
// the harness, per-client delivery latency and the server's RSS per client.
import { setTimeout as sleep } from 'node:timers/promises'
import { spawnPeer, percentile, rssOfPid, type Peer } from './stats.ts'
import type { Workload } from './contract.ts'

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

export interface FanoutRun { p50: number, p99: number, serverKiBPerClient: number, serverHeapKiBPerClient: number, clientKiBPerClient: number }

/**
 * One run: spawn the client processes, start the target, measure its RSS,
 * connect every client, measure again, then post (1 warm-up +) w.postsPerRun
 * events and pool every client's latency (post call to frame received).
 */
export async function measureFanout (protocol: ClientProtocol, start: () => Promise<FanoutTarget>, w: Workload['fanout']): Promise<FanoutRun> {
  const procs: Peer[] = []
  let target: FanoutTarget | null = null
  try {
    for (let i = 0; i < w.clientProcesses; i++) procs.push(await spawnPeer(CLIENTS, `fanout-clients-${i}`, { nodeFlags: ['--expose-gc'] }))
    target = await start()
    const t = target
    const serverRss = t.rss ?? (async () => { await sleep(300); return rssOfPid(t.pid) })
    const serverHeap = t.heap ?? (async () => Number.NaN)
    const serverBefore = await serverRss()
    const heapBefore = await serverHeap()
    const clientsBefore = await Promise.all(procs.map((p) => p.request<{ rss: number }>('rss')))
    const share = (i: number): number => Math.floor(w.clients / w.clientProcesses) + (i < w.clients % w.clientProcesses ? 1 : 0)
    // one process at a time, so the two connection storms do not overlap
    for (let i = 0; i < procs.length; i++) await procs[i].request('connect', { protocol, url: t.url, count: share(i) }, 180_000)
    const serverAfter = await serverRss()
    const heapAfter = await serverHeap()
    const clientsAfter = await Promise.all(procs.map((p) => p.request<{ rss: number }>('rss')))

    const latencies: number[] = []
    await t.aroundPosts?.before()
    for (let post = -1; post < w.postsPerRun; post++) { // post -1 is an unmeasured warm-up
      const marker = `fanout-marker-${process.pid}-${Date.now()}-${post + 1}`
      await Promise.all(procs.map((p) => p.request('arm', { marker })))
      const startNs = process.hrtime.bigint()
      await t.post(marker)
      const results = await Promise.all(procs.map((p) => p.request<{ arrivals: bigint[] }>('collect', { marker, timeoutMs: 30_000 }, 40_000)))
      if (post < 0) continue
      for (const r of results) for (const at of r.arrivals) latencies.push(Number(at - startNs) / 1e6)
    }
    await t.aroundPosts?.after()
    const clientDelta = clientsAfter.reduce((sum, a, i) => sum + (a.rss - clientsBefore[i].rss), 0)
    return {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      serverKiBPerClient: (serverAfter - serverBefore) / 1024 / w.clients,
      serverHeapKiBPerClient: (heapAfter - heapBefore) / 1024 / w.clients,
      clientKiBPerClient: clientDelta / 1024 / w.clients
    }
  } finally {
    if (target) await target.close().catch(() => {})
    await Promise.all(procs.map((p) => p.kill()))
  }
}
