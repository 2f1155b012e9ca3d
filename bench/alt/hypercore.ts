// Raw hypercore replication: the limit of the stack crosscast is built on.
// Writer and reader are separate OS processes joined by TCP + Noise on 127.0.0.1.
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { spawnPeer, repeatMany, summarize, median, type Peer, type Figure } from '../lib/stats.ts'
import type { BenchContext, BenchModule, FigureSet } from '../lib/contract.ts'
import { contextFromEnv } from '../lib/contract.ts'
import { printFigures } from '../lib/report.ts'

const PEER = new URL('./peers/hypercore-peer.ts', import.meta.url)

export const system = 'hypercore 11 (raw)'

interface Pair { writer: Peer, reader: Peer, length: number }

async function openPair (): Promise<Pair> {
  const writer = await spawnPeer(PEER, 'hc-writer')
  let reader: Peer | null = null
  try {
    const { key, port } = await writer.request<{ key: string, port: number }>('writer')
    reader = await spawnPeer(PEER, 'hc-reader')
    await reader.request('reader', { key, port })
    return { writer, reader, length: 0 }
  } catch (err) {
    await writer.kill()
    if (reader) await reader.kill()
    throw err
  }
}

async function closePair (pair: Pair): Promise<void> {
  await Promise.all([pair.writer.kill(), pair.reader.kill()])
}

/** Idle latency of one event: median over `samples` appends spaced `gapMs` apart. */
export async function latencyOnce (pair: Pair, samples: number, gapMs: number): Promise<number> {
  const lat: number[] = []
  for (let i = 0; i < samples; i++) {
    const { startNs, length } = await pair.writer.request<{ startNs: bigint, length: number }>('appendStamp')
    const { atNs } = await pair.reader.request<{ atNs: bigint }>('arrivedAt', { length, timeoutMs: 10_000 })
    pair.length = length
    lat.push(Number(atNs - startNs) / 1e6)
    await sleep(gapMs)
  }
  return median(lat)
}

export async function throughputOnce (pair: Pair, blocks: number, eventsPerBlock: number, eventBytes: number): Promise<{ eventsPerS: number, blocksPerS: number }> {
  const res = await pair.writer.request<{ startNs: bigint, length: number }>('burst', { blocks, eventsPerBlock, eventBytes }, 300_000)
  const { atNs } = await pair.reader.request<{ atNs: bigint }>('arrivedAt', { length: res.length, timeoutMs: 300_000 }, 310_000)
  pair.length = res.length
  const seconds = Number(atNs - res.startNs) / 1e9
  return { eventsPerS: (blocks * eventsPerBlock) / seconds, blocksPerS: blocks / seconds }
}

export async function run (ctx: BenchContext): Promise<FigureSet> {
  const w = ctx.workload.replication
  const pair = await openPair()
  try {
    // warm-up: JIT, connection, first proofs
    await latencyOnce(pair, 3, 5)
    await throughputOnce(pair, 10, w.eventsPerBlock, ctx.workload.eventBytes)
    ctx.log(`[${system}] latency x${ctx.runs}`)
    const latency: number[] = []
    for (let r = 0; r < ctx.runs; r++) latency.push(await latencyOnce(pair, w.latencySamples, w.latencyGapMs))
    ctx.log(`[${system}] batched throughput x${ctx.runs}`)
    const blocks = Math.ceil(w.batchedEvents / w.eventsPerBlock)
    const batched = await repeatMany(ctx.runs, {
      eventsPerS: { unit: 'events/s', lowerIsBetter: false },
      blocksPerS: { unit: 'blocks/s', lowerIsBetter: false }
    }, () => throughputOnce(pair, blocks, w.eventsPerBlock, ctx.workload.eventBytes))
    ctx.log(`[${system}] unbatched throughput x${ctx.runs}`)
    const unbatched = await repeatMany(ctx.runs, {
      eventsPerS: { unit: 'events/s', lowerIsBetter: false },
      blocksPerS: { unit: 'blocks/s', lowerIsBetter: false }
    }, () => throughputOnce(pair, w.unbatchedEvents, 1, ctx.workload.eventBytes))
    const latencyFig: Figure = summarize(latency, 'ms', true, `median of ${w.latencySamples} idle appends per run`)
    return {
      'replication.latency_ms': latencyFig,
      'replication.batched_events_per_s': { ...batched.eventsPerS, note: `${blocks} blocks x ${w.eventsPerBlock} events of ${ctx.workload.eventBytes} B` },
      'replication.batched_blocks_per_s': batched.blocksPerS,
      'replication.unbatched_events_per_s': { ...unbatched.eventsPerS, note: `${w.unbatchedEvents} blocks x 1 event` }
    }
  } finally {
    await closePair(pair)
  }
}

export const module: BenchModule = { system, run }

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const ctx = contextFromEnv()
  printFigures(system, await run(ctx))
}
