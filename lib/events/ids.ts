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
  return eventIdPrefix(writerKey) + seq.toString(16).padStart(12, '0') + idx.toString(16).padStart(4, '0')
}

/** The part of an event id its writer gives (16 hex digits). */
export function eventIdPrefix (writerKey: Uint8Array): string {
  return Buffer.from(writerKey.buffer, writerKey.byteOffset, 8).toString('hex')
}

export function newResourceId (type: ResourceType): string {
  return `${ID_PREFIXES[type]}-${randomBytes(4).toString('hex')}`
}
