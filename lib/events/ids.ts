import { randomBytes } from 'node:crypto'
import { ID_PREFIXES, type ResourceType } from './types.ts'

/**
 * An event's id is where it sits: 16 hex digits of its writer's key, then the
 * block (12 hex digits) and its index in the block (4). Every peer computes the
 * same id and none travels on the wire; it cannot be forged because the
 * position is signed by the writer. Ids of one writer sort in log order, so
 * inserts into the primary key and the parent index append to the same few
 * pages instead of landing on a random page each (a hash id made every commit
 * rewrite hundreds of scattered index pages).
 */
export function eventIdOf (writerKey: Uint8Array, seq: number, idx: number): string {
  return eventIdAt(eventIdPrefix(writerKey), seq, idx)
}

/** The id at a position, from the writer's prefix (computed once per writer on hot paths). */
export function eventIdAt (prefix: string, seq: number, idx: number): string {
  return prefix + seq.toString(16).padStart(12, '0') + idx.toString(16).padStart(4, '0')
}

/** The part of an event id its writer gives (16 hex digits). */
export function eventIdPrefix (writerKey: Uint8Array): string {
  return Buffer.from(writerKey.buffer, writerKey.byteOffset, 8).toString('hex')
}

/**
 * Generated resource ids: the prefix, then 16 characters of lowercase base32
 * (0-9 and a-z without i, l, o, u, so they sort in ASCII order): 9 for the
 * creation time in milliseconds (good until the year 3084), then 7 for a 35-bit
 * number drawn at random for each new millisecond and counted up within it,
 * e.g. `feat-1kc4m0x2b7h3qz9d`.
 *
 * Why this shape: ids made later sort later, so each new item lands at the
 * right edge of the indexes keyed by id (the seed's resource_id index on
 * broadcast_events, the features table's key) and a commit of hundreds of
 * creates dirties a few pages there instead of one random page per create
 * (fully random ids made about a third of a create's CPU the commit of those
 * pages). Counting up within a millisecond keeps one process's ids strictly
 * increasing, also when the wall clock steps back (the last time is kept until
 * the clock passes it). Two peers collide only by creating in the same
 * millisecond from overlapping runs of the same 35-bit range (chance about
 * n / 2^35 per such millisecond for n ids in it), where 8 random hex digits
 * collided with even odds after ~77,000 ids in a room. The label is valid
 * under the seed's id rule, and user-chosen ids (feat-123, feat-auth) stay valid.
 */
export const GENERATED_ID_LABEL = /^[0-9a-hjkmnp-tv-z]{16}$/

const BASE32 = '0123456789abcdefghjkmnpqrstvwxyz'
const TIME_CHARS = 9
const COUNTER_CHARS = 7
const COUNTER_LIMIT = 2 ** (COUNTER_CHARS * 5)

// Random bytes drawn in bulk: one call into the CSPRNG per 1,024 new milliseconds.
const POOL_BYTES = 4096
let pool = randomBytes(POOL_BYTES)
let poolOffset = 0
let lastMs = 0
let counter = 0

/** A fresh counter start for a new millisecond: 34 random bits, so at least 2^34 ids fit in it before it carries. */
function randomStart (): number {
  if (poolOffset + 5 > POOL_BYTES) {
    pool = randomBytes(POOL_BYTES)
    poolOffset = 0
  }
  const value = (pool[poolOffset] & 0x03) * 2 ** 32 + pool.readUInt32BE(poolOffset + 1)
  poolOffset += 5
  return value
}

function base32 (value: number, chars: number): string {
  let out = ''
  for (let i = 0; i < chars; i++) {
    out = BASE32[value % 32] + out
    value = Math.floor(value / 32)
  }
  return out
}

export function newResourceId (type: ResourceType): string {
  const now = Date.now()
  if (now > lastMs) {
    lastMs = now
    counter = randomStart()
  } else if (++counter >= COUNTER_LIMIT) {
    // The millisecond's range is used up (or the clock stepped back that far): borrow the next one.
    lastMs++
    counter = randomStart()
  }
  return `${ID_PREFIXES[type]}-${base32(lastMs, TIME_CHARS)}${base32(counter, COUNTER_CHARS)}`
}
