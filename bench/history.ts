// Long history (issue 12 §2): one node holding HISTORY_EVENTS events
// (1,000,000; 100,000 with BENCH_QUICK=1) on HISTORY_ITEMS features (10,000):
//   - p99 of features.list, an events({ since }) page, GET /api/events and
//     GET /api/features, each from random positions, with the CPU time per call
//     (mean and p99) of the feature pages (client and server share this
//     process: p99 of wall time on a shared machine is mostly stalls) and two floors
//     in the same run: the page's rows read by raw better-sqlite3, and an HTTP
//     round trip that reads nothing (GET /healthz)
//   - SQLite and log bytes per event
//   - reindex events/s (with its progress callbacks counted), beside raw
//     better-sqlite3 inserts of the same number of rows in the same run
// The history is built fast: large blocks appended through the session's own
// append (one block per call), a few in flight. Storage is under the OS temp
// dir and deleted after.
//
//   npx tsx bench/history.ts      (BENCH_RUNS=3 or BENCH_QUICK=1; HISTORY_EVENTS / HISTORY_ITEMS override)

import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Crosscast } from '../lib/index.ts'
import { createGateway } from '../lib/gateway/index.ts'
import type { EventDraft } from '../lib/events/types.ts'
import { duBytes, percentile, summarize, fmtFigure, type Figure } from './lib/stats.ts'
import { contextFromEnv, type BenchContext, type FigureSet } from './lib/contract.ts'
import { openDatabase, rawInsertRate } from './lib/projector-load.ts'

export const system = 'crosscast'

const EVENTS_PER_APPEND = 512
const APPENDS_IN_FLIGHT = 4
const READ_SAMPLES = 300
const PAGE = 100
const STATUSES = ['todo', 'in_progress', 'blocked', 'done'] as const

function itemId (i: number): string {
  return `feat-${i.toString(16).padStart(8, '0')}`
}

/** `items` features, then status changes round-robin until `total` events, EVENTS_PER_APPEND per block. */
async function build (cc: Crosscast, total: number, items: number, log: (line: string) => void): Promise<number> {
  const started = process.hrtime.bigint()
  let next = 0
  let written = 0
  const draft = (n: number): EventDraft => n < items
    ? { event_type: 'feature_created', resource_id: itemId(n), payload: { title: `feature ${n}`, status: 'todo' } }
    : { event_type: 'status_changed', resource_id: itemId(n % items), payload: { old_status: null, new_status: STATUSES[n % 4] } }
  const worker = async (): Promise<void> => {
    while (next < total) {
      const from = next
      const count = Math.min(EVENTS_PER_APPEND, total - from)
      next += count
      await cc.append(Array.from({ length: count }, (_, i) => draft(from + i)))
      written += count
      if (Math.floor(written / 100_000) !== Math.floor((written - count) / 100_000)) log(`history: ${written} of ${total} events written`)
    }
  }
  await Promise.all(Array.from({ length: APPENDS_IN_FLIGHT }, worker))
  return total / (Number(process.hrtime.bigint() - started) / 1e9)
}

interface Latency { p99: number, cpuMs: number, cpuP99: number }

/**
 * The p99 of `samples` sequential calls, and the process CPU time per call:
 * mean and p99 (time spent descheduled on a busy machine is not CPU time).
 * The medians are logged beside them, to tell a slow path from a noisy machine.
 */
async function latency (samples: number, fn: () => Promise<unknown> | unknown, what: string, log: (line: string) => void): Promise<Latency> {
  const times: number[] = []
  const cpuTimes: number[] = []
  for (let i = 0; i < samples; i++) {
    const cpu0 = process.cpuUsage()
    const t0 = process.hrtime.bigint()
    await fn()
    times.push(Number(process.hrtime.bigint() - t0) / 1e6)
    const cpu = process.cpuUsage(cpu0)
    cpuTimes.push((cpu.user + cpu.system) / 1000)
  }
  const cpuMs = cpuTimes.reduce((a, b) => a + b, 0) / samples
  log(`history: ${what}: p50 ${percentile(times, 50).toFixed(2)} ms, p99 ${percentile(times, 99).toFixed(2)} ms; CPU per call ${cpuMs.toFixed(2)} ms, p50 ${percentile(cpuTimes, 50).toFixed(2)}, p99 ${percentile(cpuTimes, 99).toFixed(2)}`)
  return { p99: percentile(times, 99), cpuMs, cpuP99: percentile(cpuTimes, 99) }
}

async function p99 (samples: number, fn: () => Promise<unknown> | unknown, what: string, log: (line: string) => void): Promise<number> {
  return (await latency(samples, fn, what, log)).p99
}

async function getJson (url: string): Promise<unknown> {
  const res = await fetch(url)
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`)
  return await res.json()
}

export async function run (ctx: BenchContext): Promise<FigureSet> {
  const total = Number(process.env.HISTORY_EVENTS ?? (ctx.quick ? 100_000 : 1_000_000))
  const items = Number(process.env.HISTORY_ITEMS ?? 10_000)
  const storage = mkdtempSync(join(tmpdir(), 'crosscast-history-'))
  const f: Record<string, number[]> = {}
  const push = (id: string, v: number): void => { (f[id] ??= []).push(v) }
  let cc: Crosscast | null = null
  try {
    cc = await Crosscast.open({ storage, room: 'history', agent: 'bench', sessionId: 'history-1', swarm: false, lan: false })
    ctx.log(`history: writing ${total} events on ${items} features`)
    const writeRate = await build(cc, total, items, ctx.log)
    const stored = cc.status().events.total
    if (stored !== total) throw new Error(`history: ${stored} events projected, expected ${total}`)
    cc.db.pragma('wal_checkpoint(TRUNCATE)')
    push('history.build_events_per_s', writeRate)
    push('history.sqlite_bytes_per_event', statSync(join(storage, 'crosscast.db')).size / total)
    push('history.log_bytes_per_event', duBytes(join(storage, 'cores')) / total)

    const gateway = await createGateway(cc, { port: 0 })
    try {
      const node = cc
      const randomCursor = (): number => Math.floor(Math.random() * (total - PAGE))
      const randomItem = (): string => itemId(Math.floor(Math.random() * items))
      // The floor under features.list: the same page's rows, nothing else, through a prepared statement.
      const rawPage = node.db.prepare(`SELECT * FROM features WHERE (created_hlc, id) > (SELECT created_hlc, id FROM features WHERE id = ?)
        ORDER BY created_hlc, id LIMIT ${PAGE}`)
      for (let r = 0; r < ctx.runs; r++) {
        ctx.log(`history: reads, run ${r + 1}/${ctx.runs}`)
        push('history.raw_features_page_p99_ms', await p99(READ_SAMPLES, () => rawPage.all(randomItem()), 'raw page of feature rows', ctx.log))
        const page = await latency(READ_SAMPLES, () => node.features.list({ limit: PAGE, after: randomItem() }), 'features.list page', ctx.log)
        push('history.features_list_page_p99_ms', page.p99)
        push('history.features_list_page_cpu_ms', page.cpuMs)
        push('history.features_list_page_cpu_p99_ms', page.cpuP99)
        push('history.events_page_p99_ms', await p99(READ_SAMPLES, async () => {
          let n = 0
          for await (const _event of node.events({ since: randomCursor() })) if (++n === PAGE) break
        }, 'events({ since }) page', ctx.log))
        push('history.list_events_page_p99_ms', await p99(READ_SAMPLES, () => node.listEvents({ since: randomCursor(), limit: PAGE }), 'listEvents page', ctx.log))
        push('history.http_events_page_p99_ms', await p99(READ_SAMPLES, () => getJson(`${gateway.url}/api/events?since=${randomCursor()}&limit=${PAGE}`), 'GET /api/events page', ctx.log))
        push('history.http_floor_p99_ms', await p99(READ_SAMPLES, () => getJson(`${gateway.url}/healthz`), 'GET /healthz', ctx.log))
        const httpPage = await latency(READ_SAMPLES, () => getJson(`${gateway.url}/api/features?limit=${PAGE}&after=${randomItem()}`), 'GET /api/features page', ctx.log)
        push('history.http_features_page_p99_ms', httpPage.p99)
        push('history.http_features_page_cpu_ms', httpPage.cpuMs)
        push('history.http_features_page_cpu_p99_ms', httpPage.cpuP99)
        // The unpaged lists last: the garbage of 10,000 features would otherwise be collected during the pages after them.
        push('history.features_list_p99_ms', await p99(READ_SAMPLES / 10, () => node.features.list(), 'features.list', ctx.log))
        push('history.http_features_p99_ms', await p99(READ_SAMPLES / 10, () => getJson(`${gateway.url}/api/features`), 'GET /api/features', ctx.log))
      }
    } finally {
      await gateway.close()
    }

    for (let r = 0; r < ctx.runs; r++) {
      ctx.log(`history: reindex, run ${r + 1}/${ctx.runs}`)
      let progress = 0
      const t0 = process.hrtime.bigint()
      await cc.reindex(() => { progress++ })
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9
      if (cc.status().events.total !== total) throw new Error('history: reindex lost events')
      push('history.reindex_events_per_s', total / seconds)
      push('history.reindex_progress_calls', progress)
      const dir = mkdtempSync(join(tmpdir(), 'crosscast-history-raw-'))
      try {
        const db = openDatabase(join(dir, 'raw.db'))
        const raw = rawInsertRate(db, total, EVENTS_PER_APPEND * 128, items)
        db.close()
        push('history.raw_sqlite_rows_per_s', raw.wall)
        push('history.reindex_ratio_vs_raw', total / seconds / raw.wall)
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    }
  } finally {
    await cc?.close()
    rmSync(storage, { recursive: true, force: true })
  }

  const size = `${total.toLocaleString('en')} events, ${items.toLocaleString('en')} features`
  // A note ending in "target <= N" or "target >= N" gets the verdict on the median appended.
  const fig = (id: string, unit: string, lower: boolean, note: string): Figure => {
    const figure = summarize(f[id], unit, lower, note)
    const target = /target ([<>]=) ([\d,.]+)/.exec(note)
    if (target === null) return figure
    const bound = Number(target[2].replace(/,/g, ''))
    const met = target[1] === '<=' ? figure.median <= bound : figure.median >= bound
    return { ...figure, note: `${note}: ${met ? 'met' : 'missed'}` }
  }
  return {
    'history.build_events_per_s': fig('history.build_events_per_s', 'events/s', false, `${size}: written ${EVENTS_PER_APPEND} per append, ${APPENDS_IN_FLIGHT} in flight, until projected`),
    'history.sqlite_bytes_per_event': fig('history.sqlite_bytes_per_event', 'B', true, 'crosscast.db after a WAL checkpoint / events; target <= 300 B'),
    'history.log_bytes_per_event': fig('history.log_bytes_per_event', 'B', true, 'corestore directory / events; target <= 200 B'),
    'history.features_list_p99_ms': fig('history.features_list_p99_ms', 'ms', true, `features.list() of all ${items.toLocaleString('en')}; target <= 5 ms`),
    'history.features_list_page_p99_ms': fig('history.features_list_page_p99_ms', 'ms', true, `features.list({ limit: ${PAGE}, after }) after a random feature; target <= 5 ms`),
    'history.features_list_page_cpu_ms': fig('history.features_list_page_cpu_ms', 'ms', true, 'the same page: process CPU time per call, mean'),
    'history.features_list_page_cpu_p99_ms': fig('history.features_list_page_cpu_p99_ms', 'ms', true, 'the same page: p99 of the process CPU time per call (what the p99 would be without other work on the machine)'),
    'history.raw_features_page_p99_ms': fig('history.raw_features_page_p99_ms', 'ms', true, `floor, same run: the page's ${PAGE} feature rows by a prepared better-sqlite3 statement, nothing else`),
    'history.events_page_p99_ms': fig('history.events_page_p99_ms', 'ms', true, `${PAGE} events from events({ since }) at a random cursor; target <= 5 ms`),
    'history.list_events_page_p99_ms': fig('history.list_events_page_p99_ms', 'ms', true, `listEvents({ since, limit: ${PAGE} }) at a random cursor`),
    'history.http_events_page_p99_ms': fig('history.http_events_page_p99_ms', 'ms', true, `GET /api/events?since=&limit=${PAGE} at a random cursor; target <= 5 ms`),
    'history.http_features_p99_ms': fig('history.http_features_p99_ms', 'ms', true, `GET /api/features (all ${items.toLocaleString('en')}); target <= 5 ms`),
    'history.http_features_page_p99_ms': fig('history.http_features_page_p99_ms', 'ms', true, `GET /api/features?limit=${PAGE}&after= a random feature, each with its comments and claim; target <= 5 ms`),
    'history.http_features_page_cpu_ms': fig('history.http_features_page_cpu_ms', 'ms', true, 'the same request: process CPU time per call, mean (client and server share the process)'),
    'history.http_features_page_cpu_p99_ms': fig('history.http_features_page_cpu_p99_ms', 'ms', true, 'the same request: p99 of the process CPU time per call'),
    'history.http_floor_p99_ms': fig('history.http_floor_p99_ms', 'ms', true, 'floor, same run: GET /healthz, an HTTP round trip that reads nothing'),
    'history.reindex_events_per_s': fig('history.reindex_events_per_s', 'events/s', false, `reindex of ${size}; target >= 50,000/s`),
    'history.reindex_progress_calls': fig('history.reindex_progress_calls', 'calls', false, 'onProgress calls during one reindex'),
    'history.raw_sqlite_rows_per_s': fig('history.raw_sqlite_rows_per_s', 'rows/s', false, 'raw baseline: as many broadcast_events rows over as many features, plain inserts, 65,536 per transaction'),
    'history.reindex_ratio_vs_raw': fig('history.reindex_ratio_vs_raw', 'x', false, 'reindex events/s ÷ raw rows/s, same run')
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const figures = await run(contextFromEnv())
  for (const [id, figure] of Object.entries(figures) as Array<[string, Figure]>) {
    console.log(`${id.padEnd(40)} ${fmtFigure(figure)}${figure.note === undefined ? '' : '  — ' + figure.note}`)
  }
  process.exit(0)
}
