import { hkdfSync } from 'node:crypto'
import { CrosscastError } from '../errors.ts'

export const MAX_ROOM_NAME_LENGTH = 256
export const MAX_ROOM_SECRET_LENGTH = 4096

// Bumping the salt moves every room to new topics and keys: peers of different
// derivation versions must never meet half-authenticated.
const ROOM_SALT = Buffer.from('crosscast/room/v1')

export interface Room {
  /** The discovery topic: published to the DHT / LAN, reveals neither name nor secret. */
  topic: Buffer
  /** Proves knowledge of name and secret on each connection; never leaves the process. */
  authKey: Buffer
  /**
   * From the name alone: peers with different secrets meet here, fail the room
   * handshake, and so can tell the user "wrong secret" instead of "nobody online".
   */
  probeTopic: Buffer
}

export function deriveRoom (name: string, secret?: string | null): Room {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_ROOM_NAME_LENGTH) {
    throw new CrosscastError('INVALID_OPTION', `room must be a string of 1 to ${MAX_ROOM_NAME_LENGTH} characters`, { field: 'room' })
  }
  if (secret !== undefined && secret !== null && (typeof secret !== 'string' || secret.length === 0 || secret.length > MAX_ROOM_SECRET_LENGTH)) {
    throw new CrosscastError('INVALID_OPTION', `secret must be a string of 1 to ${MAX_ROOM_SECRET_LENGTH} characters when given`, { field: 'secret' })
  }

  const ikm = keyMaterial(name, secret)
  return {
    topic: Buffer.from(hkdfSync('sha256', ikm, ROOM_SALT, 'discovery topic', 32)),
    authKey: Buffer.from(hkdfSync('sha256', ikm, ROOM_SALT, 'connection auth', 32)),
    probeTopic: Buffer.from(hkdfSync('sha256', keyMaterial(name, undefined), ROOM_SALT, 'name-only probe topic', 32))
  }
}

// Length-prefixed fields plus a presence flag, so ("ab", "c") and ("a", "bc"),
// or "no secret" and an empty one, can never collide.
function keyMaterial (name: string, secret: string | null | undefined): Buffer {
  const nameBytes = Buffer.from(name, 'utf8')
  const hasSecret = typeof secret === 'string'
  const secretBytes = Buffer.from(hasSecret ? secret : '', 'utf8')
  const ikm = Buffer.alloc(4 + nameBytes.length + 1 + 4 + secretBytes.length)
  let offset = ikm.writeUInt32BE(nameBytes.length, 0)
  offset += nameBytes.copy(ikm, offset)
  offset = ikm.writeUInt8(hasSecret ? 1 : 0, offset)
  offset = ikm.writeUInt32BE(secretBytes.length, offset)
  secretBytes.copy(ikm, offset)
  return ikm
}
