import { createHash, randomBytes } from 'node:crypto'
import { ID_PREFIXES, type ResourceType } from './types.ts'

/**
 * An event's id is derived from where it sits: its writer's key, the block and
 * its index in the block. Every peer computes the same id, and none travels on
 * the wire; a forged id is impossible because the position is signed.
 */
export function eventIdOf (writerKey: Uint8Array, seq: number, idx: number): string {
  const position = Buffer.allocUnsafe(12)
  position.writeUInt32BE(Math.floor(seq / 0x100000000), 0)
  position.writeUInt32BE(seq >>> 0, 4)
  position.writeUInt32BE(idx, 8)
  return createHash('sha256').update(writerKey).update(position).digest('hex').slice(0, 32)
}

export function newResourceId (type: ResourceType): string {
  return `${ID_PREFIXES[type]}-${randomBytes(4).toString('hex')}`
}
