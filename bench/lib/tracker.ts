// Records the monotonic time at which a growing length (of a core, a view, a
// counter) first reached each value, so a waiter asking late still gets the
// true arrival time and IPC delay never inflates a latency.

export class LengthTracker {
  // One mark per growth (not per unit of length): a million-event run keeps a
  // few thousand marks instead of a million bigints for the GC to walk.
  private readonly marks: Array<{ length: number, ns: bigint }> = []
  private readonly waiters = new Set<{ length: number, resolve: (ns: bigint) => void }>()
  private current = 0

  get length (): number { return this.current }

  record (length: number): void {
    if (length <= this.current) return
    const now = process.hrtime.bigint()
    this.marks.push({ length, ns: now })
    this.current = length
    for (const w of this.waiters) {
      if (this.current >= w.length) {
        this.waiters.delete(w)
        w.resolve(this.timeOf(w.length))
      }
    }
  }

  /** Monotonic ns when length first reached `length` (waits, bounded by timeoutMs). */
  when (length: number, timeoutMs: number): Promise<bigint> {
    if (length <= 0) return Promise.resolve(process.hrtime.bigint())
    if (this.current >= length) return Promise.resolve(this.timeOf(length))
    return new Promise<bigint>((resolve, reject) => {
      const waiter = {
        length,
        resolve: (ns: bigint) => { clearTimeout(timer); resolve(ns) }
      }
      const timer = setTimeout(() => {
        this.waiters.delete(waiter)
        reject(new Error(`length ${length} not reached within ${timeoutMs} ms (at ${this.current})`))
      }, timeoutMs)
      this.waiters.add(waiter)
    })
  }

  /** The time of the first mark whose length reached `length` (binary search: marks grow). */
  private timeOf (length: number): bigint {
    let lo = 0
    let hi = this.marks.length - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (this.marks[mid].length >= length) hi = mid
      else lo = mid + 1
    }
    return this.marks[lo].ns
  }
}
