// While a node catches up on a room's history (a new machine, a session that was
// offline for long), a terminal shows how far it is, with the same progress bar
// as `crosscast reindex`. Nothing is drawn when stderr is not a terminal.

import cliProgress from 'cli-progress'
import type { Crosscast } from '../index.ts'

/** Below this many blocks behind, catching up takes well under a second: no bar. */
const MIN_BLOCKS_BEHIND = 100
const SAMPLE_MS = 100

/** Starts watching; returns how to stop (idempotent). */
export function showCatchUp (cc: Crosscast, stream: NodeJS.WriteStream = process.stderr): () => void {
  if (stream.isTTY !== true) return () => {}
  let bar: cliProgress.SingleBar | null = null
  let indexedAtStart = 0
  const timer = setInterval(() => {
    if (cc.closed) return stop()
    const { writers, lag } = cc.status()
    const indexed = writers.reduce((n, w) => n + w.indexed, 0)
    if (bar === null) {
      if (lag < MIN_BLOCKS_BEHIND) return
      indexedAtStart = indexed
      bar = new cliProgress.SingleBar({ stream, format: 'catching up [{bar}] {percentage}% | {value}/{total} blocks | ETA {eta_formatted}', hideCursor: true, barsize: 30 }, cliProgress.Presets.shades_classic)
      bar.start(lag, 0)
      return
    }
    const done = indexed - indexedAtStart
    bar.setTotal(done + lag)
    bar.update(done)
    if (lag === 0) {
      bar.stop()
      bar = null
    }
  }, SAMPLE_MS)
  timer.unref()
  function stop (): void {
    clearInterval(timer)
    bar?.stop()
    bar = null
  }
  return stop
}
