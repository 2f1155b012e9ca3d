// The gateway's figures, measured with the same clients and harness as the
// seed's central ws relay (bench/lib/fanout.ts), and beside that relay in the
// same run: both servers up with their own clients, their posts alternating
// post by post, so the ratio compares neighbours in time on a shared, noisy machine.
//   fanout.*       workload.fanout.clients clients (1,000; 100 with BENCH_QUICK)
//   fanout_10k.*   BENCH_LARGE_CLIENTS clients (10,000; 1,000 with BENCH_QUICK)
//   p50/p99: one REST write (POST a track whose title is the marker) until every
//   client has the frame, percentile over all clients of the run's posts.
//   gateway.rest_writes_per_s: REST writes per second, 16 in flight, no clients connected.
// BENCH_CPU_PROF=dir writes a CPU profile of the gateway and of the relay during the posts of each run.
// `npx tsx bench/gateway.ts` prints them; bench/run.ts calls run(ctx).
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnPeer, summarize, type Figure } from './lib/stats.ts'
import { measureFanoutSideBySide, profilePosts, type FanoutRun, type FanoutTarget } from './lib/fanout.ts'
import type { PostSpan } from './lib/peer.ts'
import { contextFromEnv, type BenchContext, type FigureSet, type Workload } from './lib/contract.ts'
import { printFigures } from './lib/report.ts'
import { startRelay } from './alt/fanout.ts'

export const system = 'crosscast'

const SERVER = new URL('./peers/gateway-server.ts', import.meta.url)
const REST_CONCURRENCY = 16

async function startGateway (clients: number, profilePath: string | null): Promise<FanoutTarget> {
  const server = await spawnPeer(SERVER, 'gateway-server', { nodeFlags: ['--expose-gc'] })
  try {
    const { port } = await server.request<{ port: number }>('start')
    // node:http with a kept-alive connection: the relay's publisher is a bare open WebSocket, so the
    // harness's own HTTP client (fetch adds about a millisecond) must not weigh on the gateway's side.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const memory = async (): Promise<{ rss: number, heap: number }> => await server.request<{ rss: number, heap: number }>('rss')
    return {
      url: `ws://127.0.0.1:${port}/ws/broadcasts`,
      pid: server.pid,
      rss: async () => (await memory()).rss,
      heap: async () => (await memory()).heap,
      post: async (marker) => {
        const body = JSON.stringify({ title: marker, description: 'x'.repeat(40) })
        const headers = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'x-agent-id': 'bench', 'x-session-id': 'sess-bench' }
        const path = `/api/broadcast/tracks/trk-${randomBytes(4).toString('hex')}`
        const { status, text } = await new Promise<{ status: number, text: string }>((resolve, reject) => {
          const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, headers, agent }, (res) => {
            const chunks: Buffer[] = []
            res.on('data', (c: Buffer) => chunks.push(c))
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }))
            res.on('error', reject)
          })
          req.on('error', reject)
          req.end(body)
        })
        if (status !== 200) throw new Error(`post failed: ${status} ${text}`)
        const { clients_notified: notified } = JSON.parse(text) as { clients_notified: number }
        if (notified !== clients) throw new Error(`clients_notified was ${notified}, expected ${clients}`)
      },
      aroundPosts: profilePosts(server, profilePath),
      spans: async () => await server.request<PostSpan[]>('spans'),
      close: async () => { agent.destroy(); await server.kill() }
    }
  } catch (err) {
    await server.kill()
    throw err
  }
}

async function restThroughput (writes: number): Promise<number> {
  const server = await spawnPeer(SERVER, 'gateway-server-rest')
  try {
    const { port } = await server.request<{ port: number }>('start')
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
  } finally {
    await server.kill()
  }
}

interface Pair { gateway: FanoutRun, relay: FanoutRun, floor: FanoutRun }

function envCount (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${raw}`)
  return n
}

/**
 * Gateway, relay and the floor side by side on the same client count, their
 * posts alternating; `gatewayFirst` alternates which connects first between runs.
 */
async function measurePair (w: Workload['fanout'], gatewayFirst: boolean, profilePath: (system: string) => string | null): Promise<Pair> {
  const gateway = (): Promise<FanoutTarget> => startGateway(w.clients, profilePath('gateway'))
  const relay = (): Promise<FanoutTarget> => startRelay('ws', profilePath('relay'))
  const floor = (): Promise<FanoutTarget> => startRelay('floor')
  if (gatewayFirst) {
    const [g, r, f] = await measureFanoutSideBySide('seed-ws', [gateway, relay, floor], w)
    return { gateway: g, relay: r, floor: f }
  }
  const [r, f, g] = await measureFanoutSideBySide('seed-ws', [relay, floor, gateway], w)
  return { gateway: g, relay: r, floor: f }
}

function pairFigures (prefix: string, pairs: Pair[], clients: number, w: Workload['fanout'], targets: { p99?: string, heap?: string }): FigureSet {
  const shape = `${clients} clients in ${w.clientProcesses} processes, ${w.postsPerRun} posts per run, percentile over all clients of the run's posts`
  const of = (pick: (r: FanoutRun) => number, side: keyof Pair): number[] => pairs.map((p) => pick(p[side]))
  const ratio = (pick: (r: FanoutRun) => number): number[] => pairs.map((p) => pick(p.gateway) / pick(p.relay))
  const figures: Record<string, Figure> = {
    [`${prefix}.p50_ms`]: summarize(of((r) => r.p50, 'gateway'), 'ms', true, shape),
    [`${prefix}.p99_ms`]: summarize(of((r) => r.p99, 'gateway'), 'ms', true, shape + (targets.p99 ?? '')),
    [`${prefix}.server_rss_per_client_kb`]: summarize(of((r) => r.serverKiBPerClient, 'gateway'), 'KiB', true, 'gateway process RSS after connect minus before, after GC, / clients'),
    [`${prefix}.server_heap_per_client_kb`]: summarize(of((r) => r.serverHeapKiBPerClient, 'gateway'), 'KiB', true, 'gateway process JS heap + external after connect minus before, after GC, / clients' + (targets.heap ?? '')),
    [`${prefix}.client_rss_per_client_kb`]: summarize(of((r) => r.clientKiBPerClient, 'gateway'), 'KiB', true, 'client processes RSS delta, after GC, / clients'),
    [`${prefix}.relay_p50_ms`]: summarize(of((r) => r.p50, 'relay'), 'ms', true, `seed's ws relay + SQLite, same clients, measured beside each gateway run`),
    [`${prefix}.relay_p99_ms`]: summarize(of((r) => r.p99, 'relay'), 'ms', true, `seed's ws relay, same run`),
    [`${prefix}.floor_p50_ms`]: summarize(of((r) => r.p50, 'floor'), 'ms', true, 'raw baseline, same run: no relay, one pre-built frame written to each client socket (the machine\'s floor)'),
    [`${prefix}.floor_p99_ms`]: summarize(of((r) => r.p99, 'floor'), 'ms', true, 'raw baseline, same run'),
    [`${prefix}.relay_server_heap_per_client_kb`]: summarize(of((r) => r.serverHeapKiBPerClient, 'relay'), 'KiB', true, `seed's ws relay, same run`),
    // Where a post's time goes before the first send: the server has it, its event is stored, the first client has the frame.
    [`${prefix}.to_server_ms`]: summarize(of((r) => r.toServer, 'gateway'), 'ms', true, 'post call until the gateway has the request (HTTP), median over posts'),
    [`${prefix}.to_stored_ms`]: summarize(of((r) => r.toStored, 'gateway'), 'ms', true, 'post call until the event is durable in the signed log and projected, ready to send (the work before the first send), median over posts'),
    [`${prefix}.to_first_frame_ms`]: summarize(of((r) => r.toFirstFrame, 'gateway'), 'ms', true, 'post call until the first client has the frame, median over posts'),
    [`${prefix}.relay_to_server_ms`]: summarize(of((r) => r.toServer, 'relay'), 'ms', true, 'relay, same run: until it has the event (a WebSocket message)'),
    [`${prefix}.relay_to_stored_ms`]: summarize(of((r) => r.toStored, 'relay'), 'ms', true, 'relay, same run: until its SQLite insert returned'),
    [`${prefix}.relay_to_first_frame_ms`]: summarize(of((r) => r.toFirstFrame, 'relay'), 'ms', true, 'relay, same run'),
    [`${prefix}.p50_ratio_vs_relay`]: summarize(ratio((r) => r.p50), 'x', true, 'gateway p50 / relay p50, paired per run; target <= 1'),
    [`${prefix}.p99_ratio_vs_relay`]: summarize(ratio((r) => r.p99), 'x', true, 'gateway p99 / relay p99, paired per run; target <= 1')
  }
  return figures
}

// Four times the relay module's posts: the three systems here share one run, so a
// load spike from elsewhere on the machine lands on a few posts, not on a whole figure.
const POSTS_FACTOR = 4

export async function run (ctx: BenchContext): Promise<FigureSet> {
  const w = { ...ctx.workload.fanout, postsPerRun: ctx.workload.fanout.postsPerRun * POSTS_FACTOR }
  const large = { ...w, clients: envCount('BENCH_LARGE_CLIENTS', ctx.quick ? 1000 : 10_000) }
  const profileDir = process.env.BENCH_CPU_PROF !== undefined && process.env.BENCH_CPU_PROF !== '' ? resolve(process.env.BENCH_CPU_PROF) : null
  if (profileDir !== null) mkdirSync(profileDir, { recursive: true })
  const profile = (clients: number, run: number) => (system: string): string | null => profileDir === null ? null : join(profileDir, `${system}-${clients}-run${run}.cpuprofile`)
  const restWrites = ctx.quick ? 500 : 3000
  const small: Pair[] = []
  const big: Pair[] = []
  const rest: number[] = []
  for (let r = 0; r < ctx.runs; r++) {
    const gatewayFirst = r % 2 === 0
    ctx.log(`[crosscast gateway] run ${r + 1}/${ctx.runs}: ${w.clients} clients, gateway, relay and floor side by side`)
    small.push(await measurePair(w, gatewayFirst, profile(w.clients, r + 1)))
    ctx.log(`[crosscast gateway] run ${r + 1}/${ctx.runs}: ${large.clients} clients, gateway, relay and floor side by side`)
    big.push(await measurePair(large, !gatewayFirst, profile(large.clients, r + 1)))
    ctx.log(`[crosscast gateway] run ${r + 1}/${ctx.runs}: ${restWrites} REST writes`)
    rest.push(await restThroughput(restWrites))
  }
  return {
    ...pairFigures('fanout', small, w.clients, w, { p99: '; target <= the relay\'s in the same run' }),
    ...pairFigures('fanout_10k', big, large.clients, large, { p99: '; target <= 150 ms at 10,000 clients', heap: '; target <= 10 KiB' }),
    'gateway.rest_writes_per_s': summarize(rest, 'writes/s', false, `POST /api/broadcast/features/:id/status, ${REST_CONCURRENCY} in flight, each awaited until projected`)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  printFigures('crosscast gateway', await run(contextFromEnv()))
}
