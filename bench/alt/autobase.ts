// Autobase 7: multi-writer on the same stack. N writer processes in a full
// TCP + Noise mesh on 127.0.0.1; each appends its events; measured until every
// peer's linearized view holds all of them.
// BENCH_AB_MODE picks how a writer issues its events: 'window' (default: up to
// appendWindow single appends in flight, which Autobase coalesces), 'array'
// (one append call per appendWindow values) or 'sequential' (each awaited).
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { spawnPeer, summarize, median, type Peer } from '../lib/stats.ts'
import type { BenchContext, BenchModule, FigureSet } from '../lib/contract.ts'
import { contextFromEnv } from '../lib/contract.ts'
import { printFigures } from '../lib/report.ts'

const PEER = new URL('./peers/autobase-peer.ts', import.meta.url)

export const system = 'Autobase 7'

interface Mesh { peers: Peer[], viewLength: number }

async function openMesh (writers: number): Promise<Mesh> {
  const peers: Peer[] = []
  try {
    const first = await spawnPeer(PEER, 'ab-0')
    peers.push(first)
    const boot = await first.request<{ key: string, localKey: string, port: number }>('init', { name: 'w0' })
    const ports = [boot.port]
    const localKeys: string[] = []
    for (let i = 1; i < writers; i++) {
      const p = await spawnPeer(PEER, `ab-${i}`)
      peers.push(p)
      const info = await p.request<{ localKey: string, port: number }>('init', { name: `w${i}`, bootstrap: boot.key })
      await p.request('connect', { ports: [...ports] })
      ports.push(info.port)
      localKeys.push(info.localKey)
    }
    for (const key of localKeys) await first.request('addWriter', { key })
    await Promise.all(peers.map((p) => p.request('waitWritable', { timeoutMs: 60_000 })))
    return { peers, viewLength: 0 }
  } catch (err) {
    await Promise.all(peers.map((p) => p.kill()))
    throw err
  }
}

/** All writers append `perWriter` events at once; ms until the last peer's view holds them all. */
export async function convergeOnce (mesh: Mesh, perWriter: number, window: number, eventBytes: number): Promise<number> {
  const target = mesh.viewLength + perWriter * mesh.peers.length
  const arrived = mesh.peers.map((p) => p.request<{ atNs: bigint }>('viewAt', { length: target, timeoutMs: 600_000 }, 610_000))
  const starts = await Promise.all(mesh.peers.map((p) => p.request<{ startNs: bigint, endNs: bigint }>('burst', { count: perWriter, window, eventBytes, mode: process.env.BENCH_AB_MODE ?? 'window' }, 600_000)))
  const ends = await Promise.all(arrived)
  mesh.viewLength = target
  const start = starts.map((s) => s.startNs).reduce((a, b) => (a < b ? a : b))
  const end = ends.map((e) => e.atNs).reduce((a, b) => (a > b ? a : b))
  return Number(end - start) / 1e6
}

/** Idle latency: one event from a non-bootstrap writer until every other peer's view has it (median of samples). */
export async function latencyOnce (mesh: Mesh, samples: number, gapMs: number): Promise<number> {
  const lat: number[] = []
  const writer = mesh.peers[mesh.peers.length - 1]
  const others = mesh.peers.filter((p) => p !== writer)
  for (let i = 0; i < samples; i++) {
    const target = mesh.viewLength + 1
    const arrived = others.map((p) => p.request<{ atNs: bigint }>('viewAt', { length: target, timeoutMs: 20_000 }))
    const { startNs } = await writer.request<{ startNs: bigint }>('appendStamp')
    const ends = await Promise.all(arrived)
    mesh.viewLength = target
    const end = ends.map((e) => e.atNs).reduce((a, b) => (a > b ? a : b))
    lat.push(Number(end - startNs) / 1e6)
    await sleep(gapMs)
  }
  return median(lat)
}

export async function run (ctx: BenchContext): Promise<FigureSet> {
  const w = ctx.workload.multiwriter
  const total = w.writers * w.eventsPerWriter
  const converge: number[] = []
  const latency: number[] = []
  // a fresh mesh per run: Autobase's cost grows with history, so reusing one would make later runs measure a different job
  for (let r = 0; r < ctx.runs; r++) {
    ctx.log(`[${system}] run ${r + 1}/${ctx.runs}: ${w.writers} writers x ${w.eventsPerWriter}`)
    const mesh = await openMesh(w.writers)
    try {
      await latencyOnce(mesh, 2, 10) // warm-up
      latency.push(await latencyOnce(mesh, w.latencySamples, w.latencyGapMs))
      converge.push(await convergeOnce(mesh, w.eventsPerWriter, w.appendWindow, ctx.workload.eventBytes))
    } finally {
      await Promise.all(mesh.peers.map((p) => p.kill()))
    }
  }
  const shape = `${w.writers} writers x ${w.eventsPerWriter} events, <= ${w.appendWindow} appends in flight per writer, 3 indexers`
  return {
    'multiwriter.converge_ms': summarize(converge, 'ms', true, shape),
    'multiwriter.converge_events_per_s': summarize(converge.map((ms) => total / (ms / 1000)), 'events/s', false, shape),
    'multiwriter.latency_ms': summarize(latency, 'ms', true, `median of ${w.latencySamples} idle appends per run, max over the other ${w.writers - 1} peers`)
  }
}

export const module: BenchModule = { system, run }

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const ctx = contextFromEnv()
  printFigures(system, await run(ctx))
}
