// Hybrid logical clock packed into one safe integer: wall milliseconds * 1000 +
// a counter. Integers compare fast in SQLite and JS and encode as one varint.
// The counter wraps into the next millisecond, so a burst never stalls.

const COUNTER_SPAN = 1000

/**
 * The one clock window. A clock (a peer's, or one stored on disk) at most this
 * far ahead of our wall clock is adopted; a block stamped further ahead is held
 * until the wall clock catches up. Because both use the same bound, every block
 * a node accepts is one its clock has moved past, so no accepted write can beat
 * a later write made here.
 */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000

export class HybridLogicalClock {
  private last = 0
  private readonly wallClock: () => number

  // Read through Date.now at each call (not a captured reference), so the clock follows the process's wall clock as it is now.
  constructor (wallClock: () => number = () => Date.now()) {
    this.wallClock = wallClock
  }

  /** A new timestamp, greater than every one issued or observed before. */
  now (): number {
    const physical = this.wallClock() * COUNTER_SPAN
    this.last = physical > this.last ? physical : this.last + 1
    return this.last
  }

  /** Moves the clock past a timestamp seen on an event (a peer's, or one stored before a restart), within the window. */
  observe (remote: number): void {
    if (remote > this.last && !isTooFarAhead(remote, this.wallClock())) this.last = remote
  }
}

/** True when `hlc` is further ahead of `wallMs` than the clock window allows. */
export function isTooFarAhead (hlc: number, wallMs: number = Date.now()): boolean {
  return hlc > (wallMs + MAX_CLOCK_SKEW_MS) * COUNTER_SPAN
}

export function hlcToMillis (hlc: number): number {
  return Math.floor(hlc / COUNTER_SPAN)
}

// Events of one burst share their millisecond: the last conversion is kept.
let lastMillis = -1
let lastIso = ''

export function hlcToIso (hlc: number): string {
  const millis = hlcToMillis(hlc)
  if (millis !== lastMillis) {
    lastIso = new Date(millis).toISOString()
    lastMillis = millis
  }
  return lastIso
}
