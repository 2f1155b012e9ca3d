// The contract between the harness (bench/run.ts) and every benchmark module,
// crosscast's own (bench/local.ts, bench/replication.ts, bench/gateway.ts) and
// the alternatives' (bench/alt/*.ts). See the comment at the top of run.ts.
import type { Figure } from './stats.ts'

/** The work every system is given, so a ratio compares the same job. */
export interface Workload {
  /** Bytes of one event (JSON text, see sampleEvent in stats.ts). */
  eventBytes: number
  replication: {
    /** Idle single-event latency: samples per run, with a pause between them so each is idle. */
    latencySamples: number
    latencyGapMs: number
    /** Sustained throughput, batched: events per block and events in total. */
    eventsPerBlock: number
    batchedEvents: number
    /** Sustained throughput, one event per block. */
    unbatchedEvents: number
  }
  multiwriter: {
    writers: number
    eventsPerWriter: number
    /** Each writer keeps at most this many appends in flight (lets group commit / autobase batching work, bounded). */
    appendWindow: number
    latencySamples: number
    latencyGapMs: number
  }
  fanout: {
    clients: number
    /** Client connections are spread over this many OS processes (never the server's). */
    clientProcesses: number
    /** Events posted per run; each gives one set of per-client latencies. */
    postsPerRun: number
  }
  sync: {
    /** Small map updates (a status change) made one by one on peer A, all awaited on peer B. */
    changes: number
  }
  connect: {
    /** Two sessions open at the same instant, fresh storage each round (BENCH_CONNECT_ROUNDS, at least 20). */
    rounds: number
    /** Events a peer holds before a late joiner opens. */
    catchUpEvents: number
  }
}

export interface BenchContext {
  /** Samples per figure (BENCH_RUNS, default 5). */
  runs: number
  /** BENCH_QUICK=1: smoke sizes. */
  quick: boolean
  workload: Workload
  /** Progress lines for humans; modules must not print their own. */
  log: (line: string) => void
}

/**
 * Figures keyed by figure id (see FIGURES). A module returns only the ids it
 * measures. Every Figure must be a median over ctx.runs samples (use repeat /
 * repeatMany from stats.ts).
 */
export type FigureSet = Partial<Record<FigureId, Figure>> & { [extraId: string]: Figure | undefined }

export interface BenchModule {
  /** System name shown in the table, e.g. 'crosscast', 'hypercore (raw)', 'Autobase 7'. */
  readonly system: string
  run (ctx: BenchContext): Promise<FigureSet>
}

export interface FigureSpec {
  title: string
  unit: string
  lowerIsBetter: boolean
  /** Which comparison of issue 6 it belongs to. */
  group: 'replication' | 'multiwriter' | 'fanout' | 'sync' | 'connect'
}

/** Every figure id a module may report, with how to read it. */
export const FIGURES = {
  'replication.latency_ms': { group: 'replication', title: 'single event, append on A to readable on B (separate processes, loopback)', unit: 'ms', lowerIsBetter: true },
  'replication.batched_events_per_s': { group: 'replication', title: 'sustained throughput, batched blocks', unit: 'events/s', lowerIsBetter: false },
  'replication.batched_blocks_per_s': { group: 'replication', title: 'sustained throughput, batched blocks', unit: 'blocks/s', lowerIsBetter: false },
  'replication.unbatched_events_per_s': { group: 'replication', title: 'sustained throughput, one event per block', unit: 'events/s', lowerIsBetter: false },
  'multiwriter.converge_ms': { group: 'multiwriter', title: 'N writers x M events, until every peer holds all', unit: 'ms', lowerIsBetter: true },
  'multiwriter.converge_events_per_s': { group: 'multiwriter', title: 'N writers x M events, total events / time to converge', unit: 'events/s', lowerIsBetter: false },
  'multiwriter.latency_ms': { group: 'multiwriter', title: 'idle single event, writer to every other peer (max over peers)', unit: 'ms', lowerIsBetter: true },
  'fanout.p50_ms': { group: 'fanout', title: 'one event to every client, p50 over clients', unit: 'ms', lowerIsBetter: true },
  'fanout.p99_ms': { group: 'fanout', title: 'one event to every client, p99 over clients', unit: 'ms', lowerIsBetter: true },
  'fanout.server_rss_per_client_kb': { group: 'fanout', title: 'server RSS per connected client', unit: 'KiB', lowerIsBetter: true },
  'fanout.server_heap_per_client_kb': { group: 'fanout', title: 'server JS heap + external per connected client (steadier than RSS)', unit: 'KiB', lowerIsBetter: true },
  'fanout.client_rss_per_client_kb': { group: 'fanout', title: 'client-process RSS per connection', unit: 'KiB', lowerIsBetter: true },
  'sync.changes_per_s': { group: 'sync', title: 'small changes streamed A to B until B has all', unit: 'changes/s', lowerIsBetter: false },
  'sync.bytes_per_change': { group: 'sync', title: 'bytes on the wire per change (both directions)', unit: 'B', lowerIsBetter: true },
  'connect.first_peer_p50_ms': { group: 'connect', title: 'two sessions opened at once (separate processes, loopback DHT, fresh storage): open to first authenticated peer, p50 over rounds', unit: 'ms', lowerIsBetter: true },
  'connect.first_peer_p99_ms': { group: 'connect', title: 'the same, p99 over rounds (target <= 1.5 s)', unit: 'ms', lowerIsBetter: true },
  'connect.catchup_ms': { group: 'connect', title: 'late joiner: open to holding all events already written by a peer (workload.connect.catchUpEvents)', unit: 'ms', lowerIsBetter: true }
} as const satisfies Record<string, FigureSpec>

export type FigureId = keyof typeof FIGURES

export function envInt (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got '${raw}'`)
  return n
}

export function workloadFromEnv (quick: boolean): Workload {
  return {
    eventBytes: 100,
    replication: {
      latencySamples: quick ? 10 : 50,
      latencyGapMs: 10,
      eventsPerBlock: 500,
      batchedEvents: quick ? 20_000 : 200_000,
      unbatchedEvents: quick ? 1_000 : 10_000
    },
    multiwriter: {
      writers: 3,
      eventsPerWriter: envInt('BENCH_MW_EVENTS', quick ? 500 : 10_000),
      appendWindow: 500,
      latencySamples: quick ? 5 : 20,
      latencyGapMs: 50
    },
    fanout: {
      clients: envInt('BENCH_CLIENTS', quick ? 100 : 1000),
      clientProcesses: 2,
      postsPerRun: quick ? 3 : 5
    },
    sync: {
      changes: envInt('BENCH_CHANGES', quick ? 500 : 5000)
    },
    connect: {
      rounds: Math.max(20, envInt('BENCH_CONNECT_ROUNDS', quick ? 20 : 50)),
      catchUpEvents: 600
    }
  }
}

export function contextFromEnv (log: (line: string) => void = (l) => console.error(l)): BenchContext {
  const quick = process.env.BENCH_QUICK === '1'
  return { runs: envInt('BENCH_RUNS', quick ? 3 : 5), quick, workload: workloadFromEnv(quick), log }
}
