// automerge-repo 2: two repos in separate processes over a TCP socket on
// 127.0.0.1 (see peers/automerge-tcp.ts); A streams small status changes,
// measured until B's document has the last one. Bytes are counted on A's
// socket, both directions.
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { spawnPeer, repeatMany, type Peer } from '../lib/stats.ts'
import type { BenchContext, BenchModule, FigureSet } from '../lib/contract.ts'
import { contextFromEnv } from '../lib/contract.ts'
import { printFigures } from '../lib/report.ts'

const PEER = new URL('./peers/automerge-peer.ts', import.meta.url)

export const system = 'automerge-repo 2'

export async function syncOnce (a: Peer, b: Peer, changes: number): Promise<{ changesPerS: number, bytesPerChange: number }> {
  const { url } = await a.request<{ url: string }>('create')
  await b.request('open', { url }, 30_000)
  await sleep(200) // let the initial document sync finish so only the stream is counted
  const bytesBefore = (await a.request<{ bytes: number }>('bytes')).bytes
  const seen = b.request<{ atNs: bigint }>('seenAt', { seq: changes, timeoutMs: 300_000 }, 310_000)
  const { startNs } = await a.request<{ startNs: bigint }>('stream', { changes }, 300_000)
  const { atNs } = await seen
  await sleep(300) // trailing sync acknowledgements belong to the cost of these changes
  const bytesAfter = (await a.request<{ bytes: number }>('bytes')).bytes
  return { changesPerS: changes / (Number(atNs - startNs) / 1e9), bytesPerChange: (bytesAfter - bytesBefore) / changes }
}

export async function run (ctx: BenchContext): Promise<FigureSet> {
  const changes = ctx.workload.sync.changes
  const a = await spawnPeer(PEER, 'am-a')
  let b: Peer | null = null
  try {
    const { port } = await a.request<{ port: number }>('listen')
    b = await spawnPeer(PEER, 'am-b')
    await b.request('connect', { port })
    const pb = b
    await syncOnce(a, pb, Math.min(200, changes)) // warm-up
    ctx.log(`[${system}] ${changes} changes x${ctx.runs}`)
    // a fresh document per run so every run syncs the same history length
    const figs = await repeatMany(ctx.runs, {
      changesPerS: { unit: 'changes/s', lowerIsBetter: false },
      bytesPerChange: { unit: 'B', lowerIsBetter: true }
    }, () => syncOnce(a, pb, changes))
    const note = `${changes} status changes on a 64-feature map, one per event-loop turn, in-memory repos (no storage adapter)`
    return {
      'sync.changes_per_s': { ...figs.changesPerS, note },
      'sync.bytes_per_change': { ...figs.bytesPerChange, note: 'TCP payload bytes both directions (CBOR frames), after the initial doc sync' }
    }
  } finally {
    await Promise.all([a.kill(), b?.kill()])
  }
}

export const module: BenchModule = { system, run }

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const ctx = contextFromEnv()
  printFigures(system, await run(ctx))
}
