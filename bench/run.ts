// `npm run bench`: every benchmark, crosscast's and the alternatives', in one
// process run on one machine, written to bench/results/latest.{md,json}.
//
// ─── Plug-in contract for crosscast's own figures ──────────────────────────
//
// bench/local.ts, bench/append.ts, bench/replication.ts, bench/gateway.ts, bench/agents.ts and bench/history.ts are loaded when
// they exist. Each exports
//
//     export async function run (ctx: BenchContext): Promise<FigureSet>
//     export const system = 'crosscast'            // optional, shown in logs
//
// (types from bench/lib/contract.ts; helpers from bench/lib/stats.ts).
//
// - ctx.runs      samples per figure (BENCH_RUNS, default 5; 3 with BENCH_QUICK=1)
// - ctx.quick     BENCH_QUICK=1: smoke sizes
// - ctx.workload  THE SAME WORK the alternatives get: read sizes from here,
//                 never hard-code them, or the ratio compares different jobs
// - ctx.log(line) progress to stderr; a module prints nothing itself
//
// A FigureSet maps a figure id to a Figure { median, min, max, runs, unit,
// lowerIsBetter, note? }; build it with summarize(samples, unit, lowerIsBetter, note)
// or repeat()/repeatMany() from bench/lib/stats.ts. Ids listed in FIGURES
// (bench/lib/contract.ts) are put beside the alternatives' figures with the
// same id and a ratio is computed; any other id is listed as crosscast-only.
// How to measure each id so it matches the alternative:
//
//   replication.latency_ms            writer and reader sessions in separate OS processes
//                                     on 127.0.0.1; one event appended on A (idle, spaced
//                                     workload.replication.latencyGapMs) until B can read it
//                                     (projected into SQLite, if that is what a user sees);
//                                     per run the median of latencySamples appends
//   replication.batched_events_per_s  workload.replication.batchedEvents events of
//   replication.batched_blocks_per_s  eventBytes, written as fast as the SDK accepts them,
//                                     until B has all; blocks/s = crosscast's blocks
//   replication.unbatched_events_per_s  unbatchedEvents events, each awaited before the next
//   multiwriter.converge_ms           workload.multiwriter.writers sessions (processes), each
//   multiwriter.converge_events_per_s writes eventsPerWriter events with at most appendWindow
//                                     in flight; from the first write until every session's
//                                     SQLite holds all writers x eventsPerWriter events
//   multiwriter.latency_ms            one event from one session until every other session has it
//   fanout.p50_ms / fanout.p99_ms     use measureFanout('seed-ws', startGateway, ctx.workload.fanout)
//   fanout.server_rss_per_client_kb   from bench/lib/fanout.ts, once per run, then summarize():
//   fanout.client_rss_per_client_kb   startGateway() starts the gateway in ITS OWN process and
//                                     returns a FanoutTarget { url: 'ws://127.0.0.1:PORT/ws/broadcasts',
//                                     pid, rss?, post(marker), close() }; post() publishes one event
//                                     (e.g. POST a feature update whose title is `marker`) whose
//                                     broadcast frame contains the marker. The clients send the
//                                     seed's text 'subscribe' then 'ping' and count themselves
//                                     subscribed at the 'pong' frame ({"type":"pong"} or bare 'pong').
//                                     Latency: post() call to frame received, per client.
//                                     bench/alt/fanout.ts (startRelay) is the worked example.
//   connect.first_peer_p50_ms / _p99  bench/connect.ts: two sessions (processes) open at once on a
//   connect.catchup_ms                loopback DHT, fresh storage, workload.connect.rounds rounds; a
//                                     late joiner's open() to holding workload.connect.catchUpEvents.
//                                     Its alternative is itself on another hyperdht, listed only when
//                                     BENCH_HYPERDHT_BASELINE names a dir where hyperdht@6.34.0 is installed
//   sync.changes_per_s                workload.sync.changes status changes on session A, one per
//   sync.bytes_per_change             event-loop turn, until session B has the last; bytes counted
//                                     on the connection, both directions, / changes
//
// The reference implementations of the same measurements are in bench/alt/
// (fanout.ts, autobase.ts, hypercore.ts, automerge.ts) and their peers in
// bench/alt/peers/; crosscast's side can reuse bench/lib/proc.ts + peer.ts
// (spawnPeer / servePeer) and bench/lib/tracker.ts the same way.
//
// Env: BENCH_RUNS, BENCH_QUICK=1, BENCH_ONLY=crosscast,hypercore,autobase,ws,socketio,automerge
// (any subset; a crosscast module also by its name: local, append, replication, gateway, claims, connect, agents, history, room, writers, nat,
// or by its key, e.g. crosscast:gateway.ts), BENCH_CLIENTS, BENCH_LARGE_CLIENTS, BENCH_CPU_PROF (bench/gateway.ts),
// BENCH_MW_EVENTS, BENCH_CHANGES, BENCH_CONNECT_ROUNDS, BENCH_HYPERDHT_BASELINE, HISTORY_EVENTS, HISTORY_ITEMS,
// BENCH_ROOM_NODES, BENCH_ROOM_PROCESSES, BENCH_ROOM_MAX_PEERS, BENCH_ROOM_EVENTS, BENCH_ROOM_RUNS, BENCH_ROOM_MESH=0,
// BENCH_ROOM_CPU_PROF (bench/room.ts).
// A BENCH_ONLY run writes bench/results/only-<names>.{md,json}; only a full run writes latest.*.
// ────────────────────────────────────────────────────────────────────────────
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { contextFromEnv, type BenchContext, type FigureSet } from './lib/contract.ts'
import { killAllPeers, withTimeout } from './lib/stats.ts'
import { buildRows, machine, markdown, printFigures } from './lib/report.ts'
import * as hypercoreAlt from './alt/hypercore.ts'
import * as autobaseAlt from './alt/autobase.ts'
import * as fanoutAlt from './alt/fanout.ts'
import * as automergeAlt from './alt/automerge.ts'
import { baselines as connectBaselines } from './connect.ts'

interface Entry { key: string, system: string, run: (ctx: BenchContext) => Promise<FigureSet> }

const CROSSCAST_MODULES = ['local.ts', 'append.ts', 'replication.ts', 'gateway.ts', 'claims.ts', 'connect.ts', 'agents.ts', 'history.ts', 'room.ts', 'writers.ts', 'nat.ts']
const MODULE_TIME_LIMIT_MS = 45 * 60_000

async function crosscastEntries (errors: string[]): Promise<Entry[]> {
  const entries: Entry[] = []
  for (const file of CROSSCAST_MODULES) {
    const url = new URL(`./${file}`, import.meta.url)
    if (!existsSync(fileURLToPath(url))) continue
    let mod: { run?: unknown, system?: unknown }
    try {
      mod = await import(pathToFileURL(fileURLToPath(url)).href) as { run?: unknown, system?: unknown }
    } catch (err) {
      errors.push(`crosscast:${file}: failed to load: ${(err as Error).message.split('\n')[0]}`)
      continue
    }
    if (typeof mod.run !== 'function') {
      errors.push(`crosscast:${file}: exports no run(ctx) function, skipped (see the contract at the top of bench/run.ts)`)
      continue
    }
    entries.push({ key: `crosscast:${file}`, system: typeof mod.system === 'string' ? mod.system : 'crosscast', run: mod.run as Entry['run'] })
  }
  return entries
}

const ALTERNATIVES: Entry[] = [
  { key: 'hypercore', system: hypercoreAlt.system, run: hypercoreAlt.run },
  { key: 'autobase', system: autobaseAlt.system, run: autobaseAlt.run },
  { key: 'ws', system: fanoutAlt.wsRelay.system, run: fanoutAlt.wsRelay.run },
  { key: 'socketio', system: fanoutAlt.socketIo.system, run: fanoutAlt.socketIo.run },
  { key: 'automerge', system: automergeAlt.system, run: automergeAlt.run },
  ...connectBaselines()
]

const METHOD_NOTES = [
  'Every peer, server and client group is its own OS process; all traffic is TCP on 127.0.0.1. Latencies use CLOCK_MONOTONIC (process.hrtime), which is shared by all processes on the machine, so no message round trip is added to a one-way time.',
  'Raw hypercore and Autobase peers connect over a plain TCP socket wrapped in @hyperswarm/secret-stream (the Noise transport Hyperswarm uses), without DHT discovery. Storage is on disk (corestore/RocksDB in a temp dir).',
  'Raw hypercore writes are sequential awaited core.append calls: "batched" puts eventsPerBlock events in one block, "unbatched" one event per block (that figure is bounded by the writer\'s ~1 ms per awaited append, not by replication).',
  'Autobase: bootstrap writer adds the others with an addWriter op applied in apply() (as indexers, as its README shows); the view is a hypercore appending every op; a fresh 3-process mesh per run.',
  'Fan-out: the relay stores each posted event in SQLite (better-sqlite3, WAL, the seed\'s broadcast_events table) and re-broadcasts it; the event is posted by one of the clients over its own connection. Socket.IO clients use the websocket transport only. Client-process latency includes that process draining its own sockets, as any real client host would.',
  'automerge-repo ships no socket network adapter in its core package; bench/alt/peers/automerge-tcp.ts is a minimal one (CBOR frames on TCP). Repos keep documents in memory (no storage adapter), which favours automerge-repo against anything that persists.',
  'The machine has 2 cores and may be shared with other work while the benchmark runs (see load average); compare ratios from one run rather than absolute numbers across runs.'
]

async function main (): Promise<void> {
  const ctx = contextFromEnv()
  const only = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((s) => s.trim())) : null
  // A crosscast module is also picked by its name alone (BENCH_ONLY=claims); 'connect' also selects its hyperdht baseline (connect-baseline).
  const moduleName = (key: string): string => key.replace(/^crosscast:/, '').replace(/\.ts$/, '').replace(/-baseline$/, '')
  const wanted = (key: string): boolean => !only || only.has(key) || only.has(moduleName(key)) || (key.startsWith('crosscast:') && only.has('crosscast'))
  const started = Date.now()
  const m = machine()
  ctx.log(`bench: ${ctx.runs} runs per figure${ctx.quick ? ', QUICK sizes' : ''}; ${m.cpu}, ${m.cores} cores, load ${m.loadavg.join(' ')}`)

  const crosscast: Array<{ source: string, system: string, figures: FigureSet }> = []
  const alternatives: Array<{ system: string, figures: FigureSet }> = []
  const errors: string[] = []
  const entries = [...await crosscastEntries(errors), ...ALTERNATIVES].filter((e) => wanted(e.key))

  for (const entry of entries) {
    const t0 = Date.now()
    try {
      const figures = await withTimeout(entry.run(ctx), MODULE_TIME_LIMIT_MS, entry.key)
      printFigures(`${entry.system}  [${entry.key}, ${((Date.now() - t0) / 1000).toFixed(0)} s]`, figures)
      if (entry.key.startsWith('crosscast:')) crosscast.push({ source: entry.key.slice('crosscast:'.length), system: entry.system, figures })
      else alternatives.push({ system: entry.system, figures })
    } catch (err) {
      const msg = `${entry.key}: ${(err as Error).message.split('\n')[0]}`
      errors.push(msg)
      ctx.log(`bench: FAILED ${msg}`)
    } finally {
      // a failed module must not leave peers running into the next one
      await killAllPeers()
    }
  }

  const rows = buildRows(crosscast, alternatives)
  const outDir = fileURLToPath(new URL('./results/', import.meta.url))
  mkdirSync(outDir, { recursive: true })
  const json = {
    machine: m,
    runs: ctx.runs,
    quick: ctx.quick,
    workload: ctx.workload,
    durationS: Math.round((Date.now() - started) / 1000),
    crosscast,
    alternatives,
    rows,
    notes: METHOD_NOTES,
    errors
  }
  const replacer = (_k: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : typeof v === 'number' && !Number.isFinite(v) ? null : v)
  // A subset run (BENCH_ONLY) gets its own files, so it never replaces the full run's figures.
  const name = only === null ? 'latest' : `only-${[...only].sort().join('-').replace(/[^a-z0-9-]+/gi, '_')}`
  writeFileSync(`${outDir}${name}.json`, JSON.stringify(json, replacer, 2) + '\n')
  writeFileSync(`${outDir}${name}.md`, markdown(m, ctx.runs, ctx.quick, rows, METHOD_NOTES, errors))
  ctx.log(`bench: wrote bench/results/${name}.md and ${name}.json in ${json.durationS} s${errors.length ? `, ${errors.length} module(s) failed` : ''}`)
  if (errors.length) process.exitCode = 1
}

await main()
