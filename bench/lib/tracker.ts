// Records the monotonic time at which a growing length (of a core, a view, a
// counter) first reached each value, so a waiter asking late still gets the
// true arrival time and IPC delay never inflates a latency.

export class LengthTracker {
  private readonly times: bigint[] = []
  private readonly waiters = new Set<{ length: number, resolve: (ns: bigint) => void }>()
  private current = 0

  get length (): number { return this.current }

  record (length: number): void {
    if (length <= this.current) return
    const now = process.hrtime.bigint()
    for (let i = this.current; i < length; i++) this.times[i] = now
    this.current = length
    for (const w of this.waiters) {
      if (this.current >= w.length) {
        this.waiters.delete(w)
        w.resolve(this.times[w.length - 1])
      }
    }
  }

  /** Monotonic ns when length first reached `length` (waits, bounded by timeoutMs). */
  when (length: number, timeoutMs: number): Promise<bigint> {
    if (length <= 0) return Promise.resolve(process.hrtime.bigint())
    if (this.current >= length) return Promise.resolve(this.times[length - 1])
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
}
