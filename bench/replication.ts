// Peer-to-peer figures, every session a separate OS process, replicating over
// TCP + Noise on 127.0.0.1 (the transport the hypercore-stack alternatives use
// in bench/alt, so the comparison ratios compare the same network path):
//
//   comparison ids (beside bench/alt, same workload):
//     replication.latency_ms, replication.batched_*, replication.unbatched_events_per_s
//     multiwriter.converge_ms / converge_events_per_s / latency_ms
//     sync.changes_per_s, sync.bytes_per_change
//   issue 3's own figures (p2p.*), each beside raw hypercore in the same run:
//     idle latency p50/p99, 1 writer → 2 readers throughput, catch-up of
//     200,000 events, 10 writers x 1,000 events, RSS per connected peer
//
//   npx tsx bench/replication.ts       (BENCH_RUNS, BENCH_QUICK=1)

import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { spawnPeer, summarize, percentile, median, fmtFigure, type Peer, type Figure } from './lib/stats.ts'
import { contextFromEnv, type BenchContext, type FigureSet } from './lib/contract.ts'

export const system = 'crosscast'
const PEER = new URL('./peers/crosscast-peer.ts', import.meta.url)

let rooms = 0

async function spawnNodes (count: number, prefix: string): Promise<Peer[]> {
  const room = `${prefix}-${rooms++}`
  const peers = await Promise.all(Array.from({ length: count }, (_, i) => spawnPeer(PEER, `${prefix}${i}`)))
  await Promise.all(peers.map((p, i) => p.request('open', { room, sessionId: `${prefix}${i}` })))
  return peers
}

/** Every peer dials every earlier one: a full mesh, each link room-authenticated. */
async function connectMesh (peers: Peer[], timeoutMs = 60_000): Promise<void> {
  const ports = await Promise.all(peers.map(p => p.request<{ port: number }>('listen')))
  for (let i = 1; i < peers.length; i++) {
    for (let j = 0; j < i; j++) await peers[i].request('connect', { port: ports[j].port })
  }
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const counts = await Promise.all(peers.map(p => p.request<number>('peers')))
    if (counts.every(n => n >= peers.length - 1)) return
    if (Date.now() > deadline) throw new Error(`mesh did not form: ${counts.join(', ')}`)
    await sleep(20)
  }
}

async function allReach (peers: Peer[], count: number, timeoutMs = 300_000): Promise<bigint> {
  const times = await Promise.all(peers.map(p => p.request<{ atNs: bigint }>('countAt', { count, timeoutMs }, timeoutMs + 10_000)))
  return times.reduce((m, t) => t.atNs > m ? t.atNs : m, 0n)
}

async function killAll (peers: Peer[]): Promise<void> {
  await Promise.all(peers.map(p => p.kill()))
}

interface Pair { a: Peer, b: Peer }

/**
 * Idle latency, crosscast and raw hypercore samples interleaved on the same two
 * processes, so both see the same conditions. crosscast's clock runs from A's
 * save() to B's subscriber (after B's SQLite commit); raw's from A's append to
 * the block being available at B.
 */
async function latency (pair: Pair, samples: number, gapMs: number, rawBytes: number): Promise<{ ours: number[], raw: number[] }> {
  const ours: number[] = []
  const raw: number[] = []
  for (let i = 0; i < samples; i++) {
    const { startNs, eventId } = await pair.a.request<{ startNs: bigint, eventId: string }>('saveOne')
    const { atNs } = await pair.b.request<{ atNs: bigint }>('arrivedAt', { eventId })
    ours.push(Number(atNs - startNs) / 1e6)
    await sleep(gapMs)
    const r = await pair.a.request<{ startNs: bigint, length: number }>('rawAppend', { blocks: 1, bytes: rawBytes })
    const { atNs: rawAt } = await pair.b.request<{ atNs: bigint }>('rawArrivedAt', { length: r.length, timeoutMs: 10_000 })
    raw.push(Number(rawAt - r.startNs) / 1e6)
    await sleep(gapMs)
  }
  return { ours, raw }
}

/** The writer sends `count` events (window in flight) until every reader has projected them all. */
async function transfer (writer: Peer, readers: Peer[], count: number, window: number): Promise<{ perReader: number[], blocks: number }> {
  const burst = await writer.request<{ startNs: bigint, total: number, blocks: number }>('burst', { count, window }, 600_000)
  const times = await Promise.all(readers.map(r => r.request<{ atNs: bigint }>('countAt', { count: burst.total, timeoutMs: 300_000 }, 310_000)))
  return { perReader: times.map(t => count / (Number(t.atNs - burst.startNs) / 1e9)), blocks: burst.blocks }
}

async function rawTransfer (pair: Pair, blocks: number, bytes: number): Promise<number> {
  const res = await pair.a.request<{ startNs: bigint, length: number }>('rawAppend', { blocks, bytes }, 600_000)
  const { atNs } = await pair.b.request<{ atNs: bigint }>('rawArrivedAt', { length: res.length, timeoutMs: 300_000 }, 310_000)
  return Number(atNs - res.startNs) / 1e9
}

export async function run (ctx: BenchContext): Promise<FigureSet> {
  const w = ctx.workload
  const samples = w.replication.latencySamples
  const gap = w.replication.latencyGapMs
  const eventBytes = 95 // one status_changed event as crosscast encodes it (bench/local.ts measures it)
  const readersEvents = ctx.quick ? 20_000 : 100_000
  const catchUpEvents = ctx.quick ? 20_000 : 200_000
  const tenWriters = 10
  const tenPerWriter = ctx.quick ? 200 : 1000
  const f: Record<string, number[]> = {}
  const push = (id: string, v: number): void => { (f[id] ??= []).push(v) }

  // One pair for batched, unbatched and sync; a third peer for 1 → 2 readers. Idle latency on a pair of its
  // own, as raw hypercore's is: beside C, A served two readers and three processes shared the 2 cores.
  const [a, b, c] = await spawnNodes(3, 'rp')
  const [la, lb] = await spawnNodes(2, 'lat')
  const mw = await spawnNodes(w.multiwriter.writers, 'mw')
  try {
    await connectMesh([a, b, c])
    await connectMesh([la, lb])
    const pair = { a, b }
    const latencyPair = { a: la, b: lb }
    for (const p of [pair, latencyPair]) {
      const { key, port } = await p.a.request<{ key: string, port: number }>('rawWriter')
      await p.b.request('rawReader', { key, port })
    }
    await a.request('prepare', { features: 64 })
    await la.request('prepare', { features: 64 })
    await allReach([b, c], await a.request<number>('count'))
    await allReach([lb], await la.request<number>('count'))
    await latency(latencyPair, 5, 5, eventBytes) // warm-up: JIT, first proofs
    await connectMesh(mw)
    await Promise.all(mw.map(p => p.request('prepare', { features: 64 })))
    await allReach(mw, w.multiwriter.writers * 64)

    for (let run = 0; run < ctx.runs; run++) {
      ctx.log(`[crosscast] replication run ${run + 1}/${ctx.runs}`)
      // Idle means idle: the previous run's bursts leave background storage work
      // (log compaction, WAL checkpoints) that stalls the first writes by 0.1-1.5 s.
      await sleep(2000)
      await latency(latencyPair, 5, gap, eventBytes)
      const { ours, raw } = await latency(latencyPair, samples, gap, eventBytes)
      push('replication.latency_ms', median(ours))
      push('p2p.latency_p50_ms', percentile(ours, 50))
      push('p2p.latency_p99_ms', percentile(ours, 99))
      push('p2p.raw_hypercore_latency_p50_ms', percentile(raw, 50))
      push('p2p.latency_ratio_vs_raw', percentile(ours, 50) / percentile(raw, 50))

      // Batched: as fast as the SDK takes them, group commit packs the blocks; only B reads.
      const batched = await transfer(a, [b], w.replication.batchedEvents, 512)
      const seconds = w.replication.batchedEvents / batched.perReader[0]
      push('replication.batched_events_per_s', batched.perReader[0])
      push('replication.batched_blocks_per_s', batched.blocks / seconds)
      const rawSeconds = await rawTransfer(pair, batched.blocks, Math.round(w.replication.batchedEvents / batched.blocks) * eventBytes)
      push('p2p.raw_hypercore_same_blocks_events_per_s', w.replication.batchedEvents / rawSeconds)
      push('p2p.batched_ratio_vs_raw', batched.perReader[0] / (w.replication.batchedEvents / rawSeconds))

      const unbatched = await transfer(a, [b], w.replication.unbatchedEvents, 1)
      push('replication.unbatched_events_per_s', unbatched.perReader[0])

      // 1 writer → 2 readers, every event projected at each.
      const fan = await transfer(a, [b, c], readersEvents, 512)
      push('p2p.throughput_per_reader_events_per_s', Math.min(...fan.perReader))

      // Sync: one status change per event-loop turn on A, until B has the last; bytes on A's sockets.
      const bytesBefore = await a.request<number>('bytes')
      const trickle = await a.request<{ startNs: bigint, total: number }>('trickle', { count: w.sync.changes }, 600_000)
      const { atNs } = await b.request<{ atNs: bigint }>('countAt', { count: trickle.total, timeoutMs: 300_000 }, 310_000)
      push('sync.changes_per_s', w.sync.changes / (Number(atNs - trickle.startNs) / 1e9))
      // A's sockets also carried C's copy: count the A–B link's share, half of two equal links.
      push('sync.bytes_per_change', (await a.request<number>('bytes') - bytesBefore) / 2 / w.sync.changes)

      // Multi-writer: each writer `eventsPerWriter` with at most appendWindow in flight, at once.
      const start = await Promise.all(mw.map(p => p.request<number>('count')))
      const target = start[0] + w.multiwriter.writers * w.multiwriter.eventsPerWriter
      const t0 = process.hrtime.bigint()
      const bursts = mw.map(p => p.request('burst', { count: w.multiwriter.eventsPerWriter, window: w.multiwriter.appendWindow }, 600_000))
      const converged = await allReach(mw, target)
      await Promise.all(bursts)
      const convergeMs = Number(converged - t0) / 1e6
      push('multiwriter.converge_ms', convergeMs)
      push('multiwriter.converge_events_per_s', (w.multiwriter.writers * w.multiwriter.eventsPerWriter) / (convergeMs / 1000))
      const mwLatency: number[] = []
      for (let i = 0; i < w.multiwriter.latencySamples; i++) {
        const { startNs, eventId } = await mw[0].request<{ startNs: bigint, eventId: string }>('saveOne')
        const arrived = await Promise.all(mw.slice(1).map(p => p.request<{ atNs: bigint }>('arrivedAt', { eventId })))
        mwLatency.push(Math.max(...arrived.map(x => Number(x.atNs - startNs) / 1e6)))
        await sleep(w.multiwriter.latencyGapMs)
      }
      push('multiwriter.latency_ms', median(mwLatency))

      // Catch-up: a fresh reader joins a writer that already holds catchUpEvents.
      const [cw, cr] = await spawnNodes(2, 'cu')
      try {
        const burst = await cw.request<{ total: number }>('burst', { count: catchUpEvents, window: 512 }, 600_000)
        const t1 = process.hrtime.bigint()
        await connectMesh([cw, cr])
        const { atNs: caught } = await cr.request<{ atNs: bigint }>('countAt', { count: burst.total, timeoutMs: 300_000 }, 310_000)
        push('p2p.catch_up_ms', Number(caught - t1) / 1e6)
      } finally {
        await killAll([cw, cr])
      }

      // Ten writers at once, and what each connected peer costs in memory.
      const ten = await spawnNodes(tenWriters, 'ten')
      try {
        const alone = await ten[0].request<number>('rss')
        await connectMesh(ten)
        const connected = await ten[0].request<number>('rss')
        push('p2p.rss_per_peer_kb', (connected - alone) / (tenWriters - 1) / 1024)
        await Promise.all(ten.map(p => p.request('prepare', { features: 64 })))
        await allReach(ten, tenWriters * 64)
        const total = tenWriters * 64 + tenWriters * tenPerWriter
        const t2 = process.hrtime.bigint()
        const writes = ten.map(p => p.request('burst', { count: tenPerWriter, window: 100 }, 300_000))
        const done = await allReach(ten, total)
        await Promise.all(writes)
        push('p2p.ten_writers_converge_ms', Number(done - t2) / 1e6)
      } finally {
        await killAll(ten)
      }
    }
  } finally {
    await killAll([a, b, c, la, lb, ...mw])
  }

  const fig = (id: string, unit: string, lower: boolean, note?: string): Figure => summarize(f[id], unit, lower, note)
  const mwNote = `${w.multiwriter.writers} writers x ${w.multiwriter.eventsPerWriter} events, <= ${w.multiwriter.appendWindow} in flight each, full mesh`
  return {
    'replication.latency_ms': fig('replication.latency_ms', 'ms', true, `median of ${samples} idle saves per run, A's save() to B's subscriber (after B's SQLite commit), a pair of its own`),
    'replication.batched_events_per_s': fig('replication.batched_events_per_s', 'events/s', false, `${w.replication.batchedEvents} status changes, 512 callers in flight, group commit packs the blocks; projected at B`),
    'replication.batched_blocks_per_s': fig('replication.batched_blocks_per_s', 'blocks/s', false, 'the blocks group commit made'),
    'replication.unbatched_events_per_s': fig('replication.unbatched_events_per_s', 'events/s', false, `${w.replication.unbatchedEvents} saves, each awaited: one event per block`),
    'multiwriter.converge_ms': fig('multiwriter.converge_ms', 'ms', true, mwNote),
    'multiwriter.converge_events_per_s': fig('multiwriter.converge_events_per_s', 'events/s', false, mwNote),
    'multiwriter.latency_ms': fig('multiwriter.latency_ms', 'ms', true, 'idle save on one writer until both others projected it'),
    'sync.changes_per_s': fig('sync.changes_per_s', 'changes/s', false, `${w.sync.changes} status changes, one per event-loop turn, until B projected the last`),
    'sync.bytes_per_change': fig('sync.bytes_per_change', 'B', true, 'TCP bytes both directions on the A–B link / changes'),
    'p2p.latency_p50_ms': fig('p2p.latency_p50_ms', 'ms', true, 'target <= 3 ms'),
    'p2p.latency_p99_ms': fig('p2p.latency_p99_ms', 'ms', true, 'target <= 15 ms'),
    'p2p.raw_hypercore_latency_p50_ms': fig('p2p.raw_hypercore_latency_p50_ms', 'ms', true, 'raw hypercore, one block, same pair of processes and transport'),
    'p2p.latency_ratio_vs_raw': fig('p2p.latency_ratio_vs_raw', 'x', true, 'p50 crosscast ÷ p50 raw, same run; target <= 1.5'),
    'p2p.raw_hypercore_same_blocks_events_per_s': fig('p2p.raw_hypercore_same_blocks_events_per_s', 'events/s', false, 'raw hypercore: as many blocks of the same bytes, appended back to back'),
    'p2p.batched_ratio_vs_raw': fig('p2p.batched_ratio_vs_raw', 'x', false, 'crosscast ÷ raw, same run'),
    'p2p.throughput_per_reader_events_per_s': fig('p2p.throughput_per_reader_events_per_s', 'events/s', false, `1 writer → 2 readers, ${readersEvents} events, slower reader; target >= 20,000/s`),
    'p2p.catch_up_ms': fig('p2p.catch_up_ms', 'ms', true, `a reader that missed ${catchUpEvents} events, from connecting until all are projected; target <= 10,000 ms`),
    'p2p.ten_writers_converge_ms': fig('p2p.ten_writers_converge_ms', 'ms', true, `${tenWriters} writers x ${tenPerWriter} events at once, until every peer holds all; target <= 2,000 ms`),
    'p2p.rss_per_peer_kb': fig('p2p.rss_per_peer_kb', 'KiB', true, `one node's RSS with ${tenWriters - 1} peers connected minus alone, after GC; target <= 1,024 KiB`)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const figures = await run(contextFromEnv())
  for (const [id, figure] of Object.entries(figures) as Array<[string, Figure]>) {
    console.log(`${id.padEnd(44)} ${fmtFigure(figure)}${figure.note === undefined ? '' : '  — ' + figure.note}`)
  }
  process.exit(0)
}
