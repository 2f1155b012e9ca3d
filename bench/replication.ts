// Peer-to-peer figures (issue 3), every peer a separate OS process, all on a
// hyperdht testnet bound to 127.0.0.1, each beside raw hypercore on the SAME
// transport (Hyperswarm over that testnet) in the same run:
//   - idle latency, save on A → event in B's SQLite and B's subscriber
//   - sustained throughput, 1 writer → 2 readers, every event projected
//   - catch-up of a reader that missed 200,000 events
//   - 10 writers x 1,000 events at once, until every peer holds all 10,000
//   - resident memory per connected peer
//
//   npx tsx bench/replication.ts       (BENCH_RUNS, BENCH_QUICK=1)

import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import createTestnet from 'hyperdht/testnet'
import { spawnPeer, summarize, percentile, median, fmtFigure, type Peer, type Figure } from './lib/stats.ts'
import { contextFromEnv, type BenchContext, type FigureSet } from './lib/contract.ts'

export const system = 'crosscast'
const PEER = new URL('./peers/crosscast-peer.ts', import.meta.url)

type Bootstrap = Array<{ host: string, port: number }>
let roomCounter = 0

async function openPeers (count: number, bootstrap: Bootstrap, room: string, prefix: string): Promise<Peer[]> {
  const peers = await Promise.all(Array.from({ length: count }, (_, i) => spawnPeer(PEER, `${prefix}${i}`)))
  await Promise.all(peers.map((p, i) => p.request('open', { room, bootstrap, sessionId: `${prefix}${i}`, name: 'node' })))
  return peers
}

async function waitConnected (peers: Peer[], expected: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const counts = await Promise.all(peers.map(p => p.request<number>('peers')))
    if (counts.every(n => n >= expected)) return
    if (Date.now() > deadline) throw new Error(`peers did not connect: ${counts.join(', ')}`)
    await sleep(50)
  }
}

async function latency (bootstrap: Bootstrap, samples: number, gapMs: number): Promise<{ p50: number, p99: number, rawP50: number, rawP99: number }> {
  const room = `lat-${roomCounter++}`
  const [a, b] = await openPeers(2, bootstrap, room, 'lat')
  try {
    await waitConnected([a, b], 1)
    const ours: number[] = []
    for (let i = 0; i < samples + 5; i++) {
      const { startNs, eventId } = await a.request<{ startNs: bigint, eventId: string }>('saveOne')
      const { atNs } = await b.request<{ atNs: bigint }>('arrivedAt', { eventId })
      if (i >= 5) ours.push(Number(atNs - startNs) / 1e6) // the first few warm up the JIT and the connection
      await sleep(gapMs)
    }
    const { key } = await a.request<{ key: string }>('rawWriter', { bootstrap })
    await b.request('rawReader', { key, bootstrap })
    const raw: number[] = []
    for (let i = 0; i < samples + 5; i++) {
      const block = Buffer.from(JSON.stringify({ old_status: 'todo', new_status: 'done', i }).padEnd(100))
      const { startNs, length } = await a.request<{ startNs: bigint, length: number }>('rawAppend', { blocks: [block] })
      const { atNs } = await b.request<{ atNs: bigint }>('rawArrivedAt', { length, timeoutMs: 10_000 })
      if (i >= 5) raw.push(Number(atNs - startNs) / 1e6)
      await sleep(gapMs)
    }
    return { p50: percentile(ours, 50), p99: percentile(ours, 99), rawP50: percentile(raw, 50), rawP99: percentile(raw, 99) }
  } finally {
    await Promise.all([a.kill(), b.kill()])
  }
}

async function throughput (bootstrap: Bootstrap, events: number): Promise<{ perReader: number, raw: number, blocks: number }> {
  const room = `tp-${roomCounter++}`
  const [w, r1, r2] = await openPeers(3, bootstrap, room, 'tp')
  try {
    await waitConnected([w, r1, r2], 2)
    const burst = await w.request<{ startNs: bigint, endNs: bigint, total: number, blocks: number }>('burst', { count: events, concurrency: 512 }, 600_000)
    const arrived = await Promise.all([r1, r2].map(r => r.request<{ atNs: bigint }>('countAt', { count: burst.total, timeoutMs: 300_000 }, 310_000)))
    const perReader = median(arrived.map(a => events / (Number(a.atNs - burst.startNs) / 1e9)))
    // The baseline: the same number of events, 100 B each, in the same number of blocks, raw.
    const { key } = await w.request<{ key: string }>('rawWriter', { bootstrap })
    await r1.request('rawReader', { key, bootstrap })
    const perBlock = Math.max(1, Math.round(events / burst.blocks))
    const blocks = Array.from({ length: Math.ceil(events / perBlock) }, () => Buffer.alloc(perBlock * 100, 7))
    const raw = await w.request<{ startNs: bigint, length: number }>('rawAppend', { blocks }, 600_000)
    const rawAt = await r1.request<{ atNs: bigint }>('rawArrivedAt', { length: raw.length, timeoutMs: 300_000 }, 310_000)
    return { perReader, raw: events / (Number(rawAt.atNs - raw.startNs) / 1e9), blocks: burst.blocks }
  } finally {
    await Promise.all([w.kill(), r1.kill(), r2.kill()])
  }
}

async function catchUp (bootstrap: Bootstrap, events: number): Promise<number> {
  const room = `cu-${roomCounter++}`
  const [w] = await openPeers(1, bootstrap, room, 'cuw')
  let reader: Peer | null = null
  try {
    const burst = await w.request<{ total: number }>('burst', { count: events, concurrency: 512 }, 600_000)
    reader = (await openPeers(1, bootstrap, room, 'cur'))[0]
    const startNs = process.hrtime.bigint()
    const { atNs } = await reader.request<{ atNs: bigint }>('countAt', { count: burst.total, timeoutMs: 300_000 }, 310_000)
    return Number(atNs - startNs) / 1e6
  } finally {
    await Promise.all([w.kill(), reader?.kill()])
  }
}

async function manyWriters (bootstrap: Bootstrap, writers: number, perWriter: number): Promise<{ convergeMs: number, rssPerPeerKb: number }> {
  const room = `mw-${roomCounter++}`
  const peers = await openPeers(writers, bootstrap, room, 'mw')
  try {
    const alone = await peers[0].request<number>('rss')
    // Convergence needs a connected graph, not a full mesh: logs are relayed by whoever holds them.
    await waitConnected(peers, 1, 60_000)
    await sleep(2000)
    const connected = await peers[0].request<number>('rss')
    const peerCount = await peers[0].request<number>('peers')
    const before = await Promise.all(peers.map(p => p.request<number>('count')))
    const target = before[0] + writers * (perWriter + Math.min(512, 64)) // burst() first creates its features
    const startNs = process.hrtime.bigint()
    const bursts = peers.map(p => p.request<{ total: number }>('burst', { count: perWriter, concurrency: 100 }, 300_000))
    const arrived = await Promise.all(peers.map(p => p.request<{ atNs: bigint }>('countAt', { count: target, timeoutMs: 120_000 }, 130_000)))
    await Promise.all(bursts)
    const last = arrived.reduce((m, a) => a.atNs > m ? a.atNs : m, 0n)
    return { convergeMs: Number(last - startNs) / 1e6, rssPerPeerKb: (connected - alone) / Math.max(1, peerCount) / 1024 }
  } finally {
    await Promise.all(peers.map(p => p.kill()))
  }
}

export async function run (ctx: BenchContext): Promise<FigureSet> {
  const testnet = await createTestnet(3, { host: '127.0.0.1' })
  const bootstrap = testnet.bootstrap.map(({ host, port }) => ({ host, port }))
  try {
    const samples = ctx.workload.replication.latencySamples
    const events = ctx.quick ? 20_000 : 100_000
    const catchUpEvents = ctx.quick ? 20_000 : 200_000
    const writers = 10
    const perWriter = ctx.quick ? 200 : 1000
    const lat = { p50: [] as number[], p99: [] as number[], rawP50: [] as number[], rawP99: [] as number[], ratio: [] as number[] }
    const tp = { ours: [] as number[], raw: [] as number[], ratio: [] as number[], blocks: [] as number[] }
    const cu: number[] = []
    const mw: number[] = []
    const rss: number[] = []
    for (let i = 0; i < ctx.runs; i++) {
      ctx.log(`replication: run ${i + 1}/${ctx.runs}: latency`)
      const l = await latency(bootstrap, samples, ctx.workload.replication.latencyGapMs)
      lat.p50.push(l.p50); lat.p99.push(l.p99); lat.rawP50.push(l.rawP50); lat.rawP99.push(l.rawP99); lat.ratio.push(l.p50 / l.rawP50)
      ctx.log(`replication: run ${i + 1}/${ctx.runs}: throughput`)
      const t = await throughput(bootstrap, events)
      tp.ours.push(t.perReader); tp.raw.push(t.raw); tp.ratio.push(t.perReader / t.raw); tp.blocks.push(t.blocks)
      ctx.log(`replication: run ${i + 1}/${ctx.runs}: catch-up`)
      cu.push(await catchUp(bootstrap, catchUpEvents))
      ctx.log(`replication: run ${i + 1}/${ctx.runs}: ${writers} writers`)
      const m = await manyWriters(bootstrap, writers, perWriter)
      mw.push(m.convergeMs); rss.push(m.rssPerPeerKb)
    }
    return {
      'p2p.latency_p50_ms': summarize(lat.p50, 'ms', true, `save on A → B's SQLite + subscriber, ${samples} idle saves per run; target <= 3 ms`),
      'p2p.latency_p99_ms': summarize(lat.p99, 'ms', true, 'target <= 15 ms'),
      'p2p.raw_hypercore_latency_p50_ms': summarize(lat.rawP50, 'ms', true, 'raw hypercore, one block, same transport, same run'),
      'p2p.raw_hypercore_latency_p99_ms': summarize(lat.rawP99, 'ms', true),
      'p2p.latency_ratio_vs_raw': summarize(lat.ratio, 'x', true, 'p50 crosscast ÷ p50 raw; target <= 1.5'),
      'p2p.throughput_per_reader_events_per_s': summarize(tp.ours, 'events/s', false, `1 writer → 2 readers, ${events} events, each projected at each reader; target >= 20,000/s`),
      'p2p.raw_hypercore_events_per_s': summarize(tp.raw, 'events/s', false, 'raw hypercore, same events in as many blocks, same transport'),
      'p2p.throughput_ratio_vs_raw': summarize(tp.ratio, 'x', false),
      'p2p.blocks_per_burst': summarize(tp.blocks, 'blocks', true, `blocks the writer's group commit made for ${events} events`),
      'p2p.catch_up_ms': summarize(cu, 'ms', true, `a reader that missed ${catchUpEvents} events, until all are projected; target <= 10,000 ms`),
      'p2p.ten_writers_converge_ms': summarize(mw, 'ms', true, `${writers} writers x ${perWriter} events at once, until every peer holds all; target <= 2,000 ms`),
      'p2p.rss_per_peer_kb': summarize(rss, 'KiB', true, `one node's RSS with its peers connected minus alone, after GC, per peer; target <= 1,024 KiB`)
    }
  } finally {
    await testnet.destroy()
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const ctx = contextFromEnv()
  const figures = await run(ctx)
  for (const [id, figure] of Object.entries(figures) as Array<[string, Figure]>) {
    console.log(`${id.padEnd(40)} ${fmtFigure(figure)}${figure.note === undefined ? '' : '  — ' + figure.note}`)
  }
  process.exit(0)
}
