// The gateway's figures, measured the way bench/alt/fanout.ts measures the
// seed's central relay: the gateway (a node plus createGateway) in its own
// process, N WebSocket clients in clientProcesses other processes.
//   fanout.p50_ms / p99_ms            one REST write until every client has it, percentile over all clients
//   fanout.server_rss_per_client_kb   gateway RSS after the clients connect minus before (after GC) / clients
//   fanout.client_rss_per_client_kb   client processes' RSS delta / clients
//   gateway.rest_writes_per_s         REST writes (status changes) per second, 16 in flight, no clients connected
// `npx tsx bench/gateway.ts` prints them; bench/run.ts calls run(ctx). CLIENTS=n overrides the client count.
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { spawnPeer, percentile, summarize, type Peer } from './lib/stats.ts'
import { contextFromEnv, type BenchContext, type FigureSet } from './lib/contract.ts'
import { printFigures } from './lib/report.ts'

export const system = 'crosscast'

const SERVER = new URL('./peers/gateway-server.ts', import.meta.url)
const CLIENTS = new URL('./peers/gateway-clients.ts', import.meta.url)
const REST_CONCURRENCY = 16

export interface GatewayRun {
  p50: number
  p99: number
  serverKiBPerClient: number
  serverHeapKiBPerClient: number
  clientKiBPerClient: number
  restWritesPerSecond: number
  clientsNotified: number
}

async function restThroughput (port: number, writes: number): Promise<number> {
  const base = `http://127.0.0.1:${port}`
  const headers = { 'content-type': 'application/json', 'x-agent-id': 'bench', 'x-session-id': 'sess-rest' }
  const created = await fetch(`${base}/api/broadcast/features`, { method: 'POST', headers, body: JSON.stringify({ title: 'throughput' }) })
  const { feature_id: id } = await created.json() as { feature_id: string }
  const statuses = ['todo', 'in_progress', 'blocked', 'done']
  let next = 0
  const started = process.hrtime.bigint()
  await Promise.all(Array.from({ length: REST_CONCURRENCY }, async () => {
    while (next < writes) {
      const i = next++
      const res = await fetch(`${base}/api/broadcast/features/${id}/status`, { method: 'POST', headers, body: JSON.stringify({ new_status: statuses[i % 4] }) })
      if (res.status !== 200) throw new Error(`write ${i} failed: ${res.status} ${await res.text()}`)
      await res.arrayBuffer()
    }
  }))
  return writes / (Number(process.hrtime.bigint() - started) / 1e9)
}

/** One run on fresh processes. */
export async function gatewayOnce (clients: number, clientProcesses: number, posts: number, restWrites: number): Promise<GatewayRun> {
  const procs: Peer[] = []
  try {
    const server = await spawnPeer(SERVER, 'gateway-server', { nodeFlags: ['--expose-gc'] })
    procs.push(server)
    const { port } = await server.request<{ port: number }>('start')

    const clientProcs: Peer[] = []
    for (let i = 0; i < clientProcesses; i++) {
      const p = await spawnPeer(CLIENTS, `gateway-clients-${i}`, { nodeFlags: ['--expose-gc'] })
      procs.push(p)
      clientProcs.push(p)
    }
    const { rss: serverBefore, heap: heapBefore } = await server.request<{ rss: number, heap: number }>('rss')
    const clientsBefore = await Promise.all(clientProcs.map((p) => p.request<{ rss: number }>('rss')))
    const share = (i: number): number => Math.floor(clients / clientProcesses) + (i < clients % clientProcesses ? 1 : 0)
    for (let i = 0; i < clientProcs.length; i++) await clientProcs[i].request('connect', { port, count: share(i) }, 120_000)
    const serverAfter = await server.request<{ rss: number, heap: number, connected: number }>('rss')
    if (serverAfter.connected !== clients) throw new Error(`gateway sees ${serverAfter.connected} of ${clients} clients`)
    const clientsAfter = await Promise.all(clientProcs.map((p) => p.request<{ rss: number }>('rss')))

    const latencies: number[] = []
    let clientsNotified = 0
    for (let post = -1; post < posts; post++) { // post -1 is an unmeasured warm-up
      const resourceId = `trk-${randomBytes(4).toString('hex')}`
      await Promise.all(clientProcs.map((p) => p.request('arm', { resourceId })))
      const { startNs, clientsNotified: notified } = await clientProcs[0].request<{ startNs: bigint, clientsNotified: number }>('post', { port, resourceId })
      const results = await Promise.all(clientProcs.map((p) => p.request<{ arrivals: bigint[] }>('collect', { resourceId, timeoutMs: 30_000 }, 40_000)))
      if (post < 0) continue
      clientsNotified = notified
      for (const r of results) for (const at of r.arrivals) latencies.push(Number(at - startNs) / 1e6)
    }
    const clientDelta = clientsAfter.reduce((sum, a, i) => sum + (a.rss - clientsBefore[i].rss), 0)
    // Throughput on a fresh gateway with no clients: the memory figures above stay clean of it.
    const restServer = await spawnPeer(SERVER, 'gateway-server-rest')
    procs.push(restServer)
    const { port: restPort } = await restServer.request<{ port: number }>('start')
    const restWritesPerSecond = await restThroughput(restPort, restWrites)
    return {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      serverKiBPerClient: (serverAfter.rss - serverBefore) / 1024 / clients,
      serverHeapKiBPerClient: (serverAfter.heap - heapBefore) / 1024 / clients,
      clientKiBPerClient: clientDelta / 1024 / clients,
      restWritesPerSecond,
      clientsNotified
    }
  } finally {
    await Promise.all(procs.map((p) => p.kill()))
  }
}

export async function run (ctx: BenchContext): Promise<FigureSet> {
  const w = ctx.workload.fanout
  const clients = process.env.CLIENTS !== undefined && process.env.CLIENTS !== '' ? Number(process.env.CLIENTS) : w.clients
  if (!Number.isInteger(clients) || clients < 1) throw new Error(`CLIENTS must be a positive integer, got ${process.env.CLIENTS}`)
  const restWrites = ctx.quick ? 500 : 3000
  const runs: GatewayRun[] = []
  for (let r = 0; r < ctx.runs; r++) {
    ctx.log(`[crosscast gateway] run ${r + 1}/${ctx.runs}: ${clients} clients, ${restWrites} REST writes`)
    const result = await gatewayOnce(clients, w.clientProcesses, w.postsPerRun, restWrites)
    if (result.clientsNotified !== clients) throw new Error(`clients_notified was ${result.clientsNotified}, expected ${clients}`)
    runs.push(result)
  }
  const shape = `${clients} clients in ${w.clientProcesses} processes, ${w.postsPerRun} REST posts per run, percentile over all clients of the run's posts`
  return {
    'fanout.p50_ms': summarize(runs.map((r) => r.p50), 'ms', true, shape),
    'fanout.p99_ms': summarize(runs.map((r) => r.p99), 'ms', true, shape + '; target <= 100 ms at 1,000 clients'),
    'fanout.server_rss_per_client_kb': summarize(runs.map((r) => r.serverKiBPerClient), 'KiB', true, 'gateway process RSS after connect minus before, after GC, / clients; target <= 30 KB'),
    'fanout.server_heap_per_client_kb': summarize(runs.map((r) => r.serverHeapKiBPerClient), 'KiB', true, 'gateway process JS heap + external after connect minus before, after GC, / clients (steadier than RSS)'),
    'fanout.client_rss_per_client_kb': summarize(runs.map((r) => r.clientKiBPerClient), 'KiB', true, 'client processes RSS delta, after GC, / clients'),
    'gateway.rest_writes_per_s': summarize(runs.map((r) => r.restWritesPerSecond), 'writes/s', false, `POST /api/broadcast/features/:id/status, ${REST_CONCURRENCY} in flight, each awaited until projected`)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  printFigures('crosscast gateway', await run(contextFromEnv()))
}
