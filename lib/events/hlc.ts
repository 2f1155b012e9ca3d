// Hybrid logical clock packed into one safe integer: wall milliseconds * 1000 +
// a counter. Integers compare fast in SQLite and JS and encode as one varint.
// The counter wraps into the next millisecond, so a burst never stalls.

const COUNTER_SPAN = 1000
/** A remote clock further ahead than this is not adopted: a peer cannot drag ours into the future. */
export const MAX_CLOCK_SKEW_MS = 60_000

export class HybridLogicalClock {
  private last = 0
  private readonly wallClock: () => number

  constructor (wallClock: () => number = Date.now) {
    this.wallClock = wallClock
  }

  /** A new timestamp, greater than every one issued or observed before. */
  now (): number {
    const physical = this.wallClock() * COUNTER_SPAN
    this.last = physical > this.last ? physical : this.last + 1
    return this.last
  }

  /** Moves the clock past a timestamp seen on a peer's event, within the skew bound. */
  observe (remote: number): void {
    if (remote > this.last && remote <= (this.wallClock() + MAX_CLOCK_SKEW_MS) * COUNTER_SPAN) this.last = remote
  }
}

export function hlcToMillis (hlc: number): number {
  return Math.floor(hlc / COUNTER_SPAN)
}

export function hlcToIso (hlc: number): string {
  return new Date(hlcToMillis(hlc)).toISOString()
}
