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

// Random bytes drawn in bulk: one call into the CSPRNG per 1,024 ids instead of one per id.
const POOL_BYTES = 4096
let pool = randomBytes(POOL_BYTES)
let poolOffset = 0

export function newResourceId (type: ResourceType): string {
  if (poolOffset + 4 > POOL_BYTES) {
    pool = randomBytes(POOL_BYTES)
    poolOffset = 0
  }
  const id = pool.toString('hex', poolOffset, poolOffset + 4)
  poolOffset += 4
  return `${ID_PREFIXES[type]}-${id}`
}
