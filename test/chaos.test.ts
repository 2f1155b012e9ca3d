// Chaos (issue 9 §9): four full nodes, each its own OS process with its own
// storage (test/fixtures/chaos-node.ts), on a loopback DHT testnet, write all
// the time while the test SIGKILLs and restarts any of them and partitions and
// heals them (a node closes and reopens with its swarm off, then on). Then
// everything is healed, writes stop, and the invariants are checked:
//   - no node stalled: each caught up within CATCHUP_BOUND_MS of every heal or
//     restart, and all reached the final length within FINAL_BOUND_MS of the last heal;
//   - every acknowledged event (append() resolved) is present exactly once on every node;
//   - content hashes are identical;
//   - memory did not grow without bound (RSS sampled).
// Seeded: CHAOS_SEED replays the same faults at the same moments and the same
// writes (not the same thread interleavings). CHAOS_MS sets the fault phase
// (default 40 s, about 60 s in all); CHAOS_NODES the number of nodes (>= 4).

import test, { type Assert } from 'brittle'
import { randomBytes } from 'node:crypto'
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import BetterSqlite3 from 'better-sqlite3'
import { createTestnet } from './helpers/testnet.ts'
import { spawnPeer, type ChildPeer } from './helpers/child-peer.ts'
import { rng } from './helpers/fuzz.ts'
import type { CrosscastOptions } from '../lib/index.ts'
import { REPLICATED_TABLES } from '../lib/projection/schema.ts'

const CHAOS_NODE = fileURLToPath(new URL('./fixtures/chaos-node.ts', import.meta.url))
const SEED = /^\d+$/.test(process.env.CHAOS_SEED ?? '') ? Number(process.env.CHAOS_SEED) >>> 0 : randomBytes(4).readUInt32BE(0)
const FAULT_MS = Number(process.env.CHAOS_MS ?? 40_000)
const NODES = Math.max(4, Number(process.env.CHAOS_NODES ?? 4))
/** A healed or restarted node must hold what the connected nodes held at the heal within this. */
const CATCHUP_BOUND_MS = 30_000
/** After the last heal, every node must reach the final length within this. */
const FINAL_BOUND_MS = 60_000
const WRITE_EVERY_MS = 100
const SAMPLE_EVERY_MS = 2000
const CALL_MS = 30_000
/** A few thousand small events: a node holding hundreds of MB has a leak, not a cache. */
const RSS_CAP_MB = 512
const SHARED_FEATURES = Array.from({ length: 8 }, (_, i) => `feat-000000c${i}`)
const SHARED_TRACKS = ['trk-000000a1', 'trk-000000a2']

type Mode = 'up' | 'offline' | 'down'

interface WriterState { key: string, local: boolean, length: number, indexed: number, lastError: string | null }
interface NodeState { opening: boolean, online: boolean, count?: number, writers?: WriterState[], peers?: number, rss: number, acked: number, failed: Record<string, number> }

interface Node {
  name: string
  storage: string
  ackFile: string
  peer: ChildPeer | null
  mode: Mode
  incarnation: number
  /** Bumped by every kill, partition and heal: a measurement started before it is void. */
  epoch: number
  writerKey: string
  timer: NodeJS.Timeout | null
  rss: Array<{ incarnation: number, at: number, mb: number }>
}

interface CatchUp { node: string, kind: 'heal' | 'restart', ms: number | null, note: string }

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

test(`chaos: ${NODES} nodes on a loopback testnet, SIGKILL + restart and partition + heal while all write (CHAOS_SEED=${SEED})`, { timeout: FAULT_MS + 240_000 }, async (t) => {
  t.comment(`CHAOS_SEED=${SEED} CHAOS_MS=${FAULT_MS} CHAOS_NODES=${NODES}`)
  const net = await createTestnet(t)
  const dir = await t.tmp()
  const r = rng(SEED)
  const started = Date.now()
  const at = (): string => `${((Date.now() - started) / 1000).toFixed(1)}s`
  const log = (line: string): void => t.comment(`${at()} ${line}`)
  const nodes: Node[] = Array.from({ length: NODES }, (_, i) => ({
    name: `n${i}`,
    storage: join(dir, `n${i}`),
    ackFile: join(dir, `n${i}.acks`),
    peer: null,
    mode: 'down',
    incarnation: 0,
    epoch: 0,
    writerKey: '',
    timer: null,
    rss: []
  }))
  const options = (node: Node): CrosscastOptions => ({ storage: node.storage, room: 'chaos', agent: `agent-${node.name}`, sessionId: `chaos-${node.name}`, swarm: true, lan: false, bootstrap: net.bootstrap })

  const start = async (node: Node): Promise<void> => {
    node.incarnation++
    const args = { ackFile: node.ackFile, seed: (SEED + node.incarnation * 7919 + nodes.indexOf(node)) >>> 0, writeEveryMs: WRITE_EVERY_MS, sharedFeatures: SHARED_FEATURES, sharedTracks: SHARED_TRACKS }
    node.peer = await spawnPeer(t, options(node), CALL_MS, { script: CHAOS_NODE, args: [JSON.stringify(args)] })
    node.writerKey = node.peer.writerKey
    node.mode = 'up'
    node.epoch++
  }
  const state = async (node: Node): Promise<NodeState | null> => {
    if (node.peer === null || node.mode === 'down') return null
    try {
      return await node.peer.call<NodeState>('state', {}, CALL_MS)
    } catch {
      return null // killed meanwhile
    }
  }

  await Promise.all(nodes.map(start))
  log(`${NODES} nodes up: ${nodes.map(n => `${n.name}=${n.writerKey.slice(0, 8)}`).join(' ')}`)

  // ---- figures and background measurements ----
  let kills = 0
  let partitions = 0
  const catchUps: CatchUp[] = []
  const background: Array<Promise<void>> = []
  let sampling = true

  const sampler = (async () => {
    for (let i = 0; i < 10_000 && sampling; i++) {
      for (const node of nodes) {
        const s = await state(node)
        if (s !== null) node.rss.push({ incarnation: node.incarnation, at: Date.now() - started, mb: s.rss / 2 ** 20 })
      }
      await sleep(SAMPLE_EVERY_MS)
    }
  })()

  /** What every connected node has projected right now, per writer. */
  const connectedHoldings = async (except: Node): Promise<Map<string, number>> => {
    const target = new Map<string, number>()
    for (const other of nodes) {
      if (other === except || other.mode !== 'up') continue
      const s = await state(other)
      for (const w of s?.writers ?? []) target.set(w.key, Math.max(target.get(w.key) ?? 0, w.indexed))
    }
    return target
  }

  /** After a heal or restart: how long until the node holds what the connected nodes held at that moment. */
  const measureCatchUp = (node: Node, kind: CatchUp['kind']): void => {
    const epoch = node.epoch
    const healedAt = Date.now()
    background.push((async () => {
      const target = await connectedHoldings(node)
      for (let i = 0; i < 10_000; i++) {
        if (node.epoch !== epoch) return // killed or partitioned again: this heal is void
        const s = await state(node)
        const have = new Map((s?.writers ?? []).map(w => [w.key, w.indexed]))
        if (s !== null && !s.opening && [...target].every(([key, n]) => (have.get(key) ?? 0) >= n)) {
          catchUps.push({ node: node.name, kind, ms: Date.now() - healedAt, note: '' })
          return
        }
        if (Date.now() - healedAt > CATCHUP_BOUND_MS) {
          const behind = [...target].filter(([key, n]) => (have.get(key) ?? 0) < n).map(([key, n]) => `${key.slice(0, 8)} ${have.get(key) ?? 'unknown'}/${n}`)
          catchUps.push({ node: node.name, kind, ms: null, note: `behind on ${behind.join(', ')}` })
          log(`STALL: ${node.name} did not catch up within ${CATCHUP_BOUND_MS} ms of its ${kind}: ${behind.join(', ')}`)
          return
        }
        await sleep(250)
      }
    })())
  }

  const kill = async (node: Node): Promise<void> => {
    if (node.timer !== null) clearTimeout(node.timer)
    node.timer = null
    node.mode = 'down'
    node.epoch++
    await node.peer?.kill('SIGKILL')
    node.peer = null
    kills++
  }
  const restart = async (node: Node): Promise<void> => {
    node.timer = null
    await start(node)
    log(`${node.name} restarted (incarnation ${node.incarnation})`)
    measureCatchUp(node, 'restart')
  }
  const partition = async (node: Node): Promise<void> => {
    node.epoch++
    await node.peer!.call('offline', {}, CALL_MS)
    node.mode = 'offline'
    partitions++
  }
  const heal = async (node: Node): Promise<void> => {
    node.timer = null
    node.epoch++
    await node.peer!.call('online', {}, CALL_MS)
    node.mode = 'up'
    log(`${node.name} healed`)
    measureCatchUp(node, 'heal')
  }
  /** Runs a scheduled restart or heal later, unless the node is killed first. */
  const later = (node: Node, ms: number, action: (node: Node) => Promise<void>): void => {
    node.timer = setTimeout(() => {
      background.push(action(node).catch(err => log(`${node.name}: ${(err as Error).message}`)))
    }, ms)
  }

  // ---- the fault phase: every step bounded, the loop bounded by time and count ----
  const faultEnd = Date.now() + FAULT_MS
  for (let step = 0; step < 1000 && Date.now() < faultEnd; step++) {
    await sleep(800 + r.int(2500))
    const node = r.pick(nodes)
    const roll = r.next()
    try {
      if (node.mode === 'down' || node.timer !== null) continue // a restart or heal is already due
      if (roll < 0.45) {
        const was = node.mode
        await kill(node)
        const downFor = 500 + r.int(3000)
        log(`SIGKILL ${node.name} (was ${was}); restart in ${downFor} ms`)
        later(node, downFor, restart)
      } else if (node.mode === 'up') {
        await partition(node)
        const offFor = 2000 + r.int(6000)
        log(`partition ${node.name} (swarm off) for ${offFor} ms`)
        later(node, offFor, heal)
      }
    } catch (err) {
      log(`${node.name}: ${(err as Error).message}`)
    }
  }

  // ---- heal everything, stop writing, wait for convergence ----
  for (const node of nodes) {
    if (node.timer !== null) clearTimeout(node.timer)
    node.timer = null
  }
  await Promise.allSettled(background.splice(0))
  for (const node of nodes) {
    if (node.mode === 'down') await restart(node)
    else if (node.mode === 'offline') await heal(node)
  }
  const lastHeal = Date.now()
  log('all nodes up and online; writes stop')
  await Promise.all(nodes.map(n => n.peer!.call('stop', {}, CALL_MS)))

  const reachedAt = new Map<string, number>()
  let final: Array<NodeState | null> = []
  for (let i = 0; i < 10_000 && Date.now() - lastHeal < FINAL_BOUND_MS; i++) {
    final = await Promise.all(nodes.map(state))
    const lengths = new Map<string, number>()
    for (const s of final) for (const w of s?.writers ?? []) lengths.set(w.key, Math.max(lengths.get(w.key) ?? 0, w.length))
    final.forEach((s, j) => {
      const have = new Map((s?.writers ?? []).map(w => [w.key, w.indexed]))
      const done = lengths.size === NODES && [...lengths].every(([key, n]) => have.get(key) === n)
      if (done && !reachedAt.has(nodes[j].name)) reachedAt.set(nodes[j].name, Date.now() - lastHeal)
      if (!done) reachedAt.delete(nodes[j].name)
    })
    if (reachedAt.size === NODES) break
    await sleep(250)
  }
  await Promise.allSettled(background.splice(0))
  sampling = false
  await sampler

  const hashes = await Promise.all(nodes.map(n => n.peer!.call<string>('hash', {}, CALL_MS).catch((err: Error) => `error: ${err.message}`)))
  await Promise.all(nodes.map(async n => {
    await n.peer!.call('close', {}, CALL_MS).catch(() => {})
    await n.peer!.kill('SIGKILL') // no-op once it exited
  }))

  // ---- figures ----
  const ackedIds = nodes.flatMap(n => existsSync(n.ackFile) ? readFileSync(n.ackFile, 'utf8').split('\n').filter(l => l !== '') : [])
  const measured = catchUps.filter(c => c.ms !== null).map(c => c.ms as number)
  const counts = final.map(s => s?.count ?? '?')
  t.comment(`figures: seed ${SEED}, ${NODES} nodes, fault phase ${FAULT_MS} ms, events written and acknowledged ${ackedIds.length}, ` +
    `events on each node at the end ${counts.join('/')}, kills ${kills}, partitions ${partitions}, heals/restarts measured ${catchUps.length}, ` +
    `max catch-up after a heal or restart ${measured.length === 0 ? 'n/a' : Math.max(...measured) + ' ms'}, ` +
    `final convergence after the last heal ${reachedAt.size === NODES ? Math.max(...reachedAt.values()) + ' ms' : 'NOT REACHED'} (bound ${FINAL_BOUND_MS} ms)`)
  for (const s of final) if (s !== null && Object.keys(s.failed).length > 0) t.comment(`failed writes (not acknowledged): ${JSON.stringify(s.failed)}`)

  // ---- invariants ----
  const stalls = catchUps.filter(c => c.ms === null)
  t.is(stalls.length, 0, `every heal and restart caught up within ${CATCHUP_BOUND_MS} ms${stalls.length === 0 ? '' : ': ' + stalls.map(c => `${c.node} after ${c.kind}: ${c.note}`).join('; ')}`)
  t.is(reachedAt.size, NODES, `every node reached the final length within ${FINAL_BOUND_MS} ms of the last heal${reachedAt.size === NODES ? '' : ': ' + describeLag(nodes, final, reachedAt)}`)

  t.ok(ackedIds.length > 0, `${ackedIds.length} acknowledged events over all incarnations`)
  for (const node of nodes) {
    const db = new BetterSqlite3(join(node.storage, 'crosscast.db'), { readonly: true })
    try {
      const count = db.prepare('SELECT count(*) AS n FROM broadcast_events WHERE event_id = ?')
      const missing = ackedIds.filter(id => (count.get(id) as { n: number }).n !== 1)
      const dupes = (db.prepare('SELECT count(*) - count(DISTINCT writer || \':\' || seq || \':\' || idx) AS n FROM broadcast_events').get() as { n: number }).n
      t.is(missing.length, 0, `${node.name}: every acknowledged event present${missing.length === 0 ? '' : ` (missing ${missing.length}, e.g. ${missing.slice(0, 3).join(', ')})`}`)
      t.is(dupes, 0, `${node.name}: no log position projected twice`)
    } finally {
      db.close()
    }
  }

  t.is(new Set(hashes).size, 1, `one content hash on all nodes: ${hashes.map((h, i) => `${nodes[i].name}=${h.slice(0, 12)}`).join(' ')}`)
  if (new Set(hashes).size > 1) for (const line of diffDatabases(nodes)) t.comment(line)

  memoryInvariant(t, nodes)
})

function describeLag (nodes: Node[], final: Array<NodeState | null>, reachedAt: Map<string, number>): string {
  return final.map((s, i) => reachedAt.has(nodes[i].name)
    ? `${nodes[i].name} ok`
    : `${nodes[i].name} ${s === null ? 'no answer' : (s.writers ?? []).map(w => `${w.key.slice(0, 8)} ${w.indexed}/${w.length}${w.lastError === null ? '' : ` (${w.lastError})`}`).join(', ')}`).join('; ')
}

/** Rows are compared by their key; for a row held by both, the columns that differ. */
const ROW_KEY: Record<string, string[]> = { features: ['id'], tracks: ['id'], spikes: ['id'], conflicts: ['resource_id', 'field', 'event_a', 'event_b'] }

/** Which replicated tables differ from n0's, and how, to say what diverged. */
function diffDatabases (nodes: Node[]): string[] {
  const read = (node: Node, table: string): Map<string, Record<string, unknown>> => {
    const db = new BetterSqlite3(join(node.storage, 'crosscast.db'), { readonly: true })
    try {
      const rows = db.prepare(`SELECT * FROM ${table}`).all() as Array<Record<string, unknown>>
      return new Map(rows.map(row => {
        delete row.cursor
        return [(ROW_KEY[table] ?? ['event_id']).map(k => String(row[k])).join(' '), row]
      }))
    } finally {
      db.close()
    }
  }
  const out: string[] = []
  for (const table of REPLICATED_TABLES) {
    const base = read(nodes[0], table)
    for (const node of nodes.slice(1)) {
      const rows = read(node, table)
      const lines: string[] = []
      for (const [key, row] of base) {
        const other = rows.get(key)
        if (other === undefined) lines.push(`  only on ${nodes[0].name}: ${key}`)
        else {
          for (const column of Object.keys(row)) {
            if (JSON.stringify(row[column]) === JSON.stringify(other[column])) continue
            const sameEntries = column === 'clocks' && sortedJson(row[column]) === sortedJson(other[column])
            lines.push(`  ${key}.${column}: ${nodes[0].name}=${String(row[column]).slice(0, 160)} ${node.name}=${String(other[column]).slice(0, 160)}${sameEntries ? ' (same entries, other key order)' : ''}`)
          }
        }
      }
      for (const key of rows.keys()) if (!base.has(key)) lines.push(`  only on ${node.name}: ${key}`)
      if (lines.length === 0) continue
      out.push(`${table}: ${nodes[0].name} and ${node.name} differ (${lines.length} differences), e.g.`, ...lines.slice(0, 4))
    }
  }
  return out
}

function sortedJson (value: unknown): string {
  return JSON.stringify(Object.entries(JSON.parse(String(value)) as Record<string, unknown>).sort(([a], [b]) => a < b ? -1 : 1))
}

/**
 * Bounded memory: no sample over RSS_CAP_MB, and in each node's longest-lived
 * process the peak of the last third of its samples is at most twice the peak
 * of the first third plus 64 MB (a leak keeps climbing; caches level off).
 */
function memoryInvariant (t: Assert, nodes: Node[]): void {
  for (const node of nodes) {
    const byIncarnation = new Map<number, number[]>()
    for (const s of node.rss) byIncarnation.set(s.incarnation, [...(byIncarnation.get(s.incarnation) ?? []), s.mb])
    const longest = [...byIncarnation.values()].sort((a, b) => b.length - a.length)[0] ?? []
    const peak = Math.max(0, ...node.rss.map(s => s.mb))
    const third = Math.floor(longest.length / 3)
    const early = Math.max(0, ...longest.slice(0, Math.max(1, third)))
    const late = Math.max(0, ...longest.slice(longest.length - Math.max(1, third)))
    t.comment(`${node.name}: RSS ${node.rss.length} samples over ${byIncarnation.size} processes; peak ${peak.toFixed(0)} MB; longest process: early peak ${early.toFixed(0)} MB, late peak ${late.toFixed(0)} MB over ${longest.length} samples`)
    t.ok(peak <= RSS_CAP_MB && late <= early * 2 + 64, `${node.name}: memory bounded (peak ${peak.toFixed(0)} MB <= ${RSS_CAP_MB}; late ${late.toFixed(0)} <= 2 x early ${early.toFixed(0)} + 64)`)
  }
}
