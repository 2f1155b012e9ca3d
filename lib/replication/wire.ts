// The crosscast/room/v1 channel: message layouts and the connection MAC.
// Everything decoded here came from an unauthenticated or untrusted peer.
import { createHmac, timingSafeEqual } from 'node:crypto'
import c from 'compact-encoding'
import { validateLabel } from '../events/validate.ts'

export const ROOM_PROTOCOL = 'crosscast/room/v1'
export const MAC_BYTES = 32
/** A writers message above this count is ignored whole: no honest peer sends one (we send WRITERS_PER_MESSAGE). */
export const MAX_WRITERS_PER_MESSAGE = 10_000
export const WRITERS_PER_MESSAGE = 1024

/**
 * A writer as gossiped. `length`, `fork` and `ended` (the length of its log the
 * sender holds, and whether the log ends there) travel only to peers that
 * announced FEATURE_LENGTHS; from an older peer they are absent.
 */
export interface WriterInfo { key: Buffer, sessionId: string, agentId: string, length?: number, fork?: number, ended?: boolean }

/**
 * The room channel's open message carries a feature bitfield (an older peer
 * sends none and ignores ours; protomux drops message types a channel does
 * not define, so each side sends only what the other announced).
 * FEATURE_LENGTHS: writers travel with their lengths (message 2) instead of
 * bare keys (message 1).
 */
export const FEATURE_LENGTHS = 1
export const OUR_FEATURES = FEATURE_LENGTHS

/** Absent (an older peer's open message): no features. */
type CState = ReturnType<typeof c.state>

export const featuresEncoding = {
  preencode (state: CState, features: number): void { c.uint.preencode(state, features) },
  encode (state: CState, features: number): void { c.uint.encode(state, features) },
  decode (state: CState): number {
    if (state.start >= state.end) return 0
    const features = c.uint.decode(state)
    // Whatever a newer version appends after the bitfield is its own business.
    state.start = state.end
    return features
  }
}

const MAC_DOMAIN = Buffer.from('crosscast/room/v1 auth')

/**
 * Both ends share one Noise handshake hash, so the MAC also binds the sender's
 * Noise role: otherwise an intruder could reflect our own auth message back to us.
 */
export function connectionMac (authKey: Buffer, handshakeHash: Buffer, senderIsInitiator: boolean): Buffer {
  return createHmac('sha256', authKey)
    .update(MAC_DOMAIN)
    .update(Buffer.from([senderIsInitiator ? 1 : 0]))
    .update(handshakeHash)
    .digest()
}

export function macEquals (received: Buffer, expected: Buffer): boolean {
  return received.byteLength === expected.byteLength && timingSafeEqual(received, expected)
}

export function isValidWriterInfo (info: unknown): info is WriterInfo {
  if (typeof info !== 'object' || info === null) return false
  const { key, sessionId, agentId } = info as Partial<WriterInfo>
  return Buffer.isBuffer(key) && key.byteLength === 32 && isLabel(sessionId) && isLabel(agentId)
}

export function isLabel (value: unknown): boolean {
  try {
    validateLabel(value, 'label')
    return true
  } catch {
    return false
  }
}

/** Message 1 (bare keys) or, `withLengths`, message 2 (each with the length of its log the sender holds). */
export function encodeWriters (infos: readonly WriterInfo[], withLengths = false): Buffer {
  const state = c.state()
  c.uint.preencode(state, infos.length)
  for (const info of infos) {
    c.fixed32.preencode(state, info.key)
    c.string.preencode(state, info.sessionId)
    c.string.preencode(state, info.agentId)
    if (!withLengths) continue
    c.uint.preencode(state, info.length ?? 0)
    c.uint.preencode(state, info.fork ?? 0)
    c.uint.preencode(state, entryFlags(info))
  }
  state.buffer = Buffer.allocUnsafe(state.end)
  c.uint.encode(state, infos.length)
  for (const info of infos) {
    c.fixed32.encode(state, info.key)
    c.string.encode(state, info.sessionId)
    c.string.encode(state, info.agentId)
    if (!withLengths) continue
    c.uint.encode(state, info.length ?? 0)
    c.uint.encode(state, info.fork ?? 0)
    c.uint.encode(state, entryFlags(info))
  }
  return state.buffer as Buffer
}

export type DecodedWriters =
  | { ok: true, writers: WriterInfo[], invalid: number }
  | { ok: false, reason: 'too-many', count: number }

/** Throws on malformed bytes; invalid entries (bad labels, lengths past 2^53) are counted and skipped. */
export function decodeWriters (buffer: Buffer, withLengths = false): DecodedWriters {
  const state = { start: 0, end: buffer.byteLength, buffer }
  const count = c.uint.decode(state)
  if (count > MAX_WRITERS_PER_MESSAGE) return { ok: false, reason: 'too-many', count }
  const writers: WriterInfo[] = []
  let invalid = 0
  for (let i = 0; i < count; i++) {
    // Copy: the decoded slice would otherwise pin the whole frame in memory.
    const key = Buffer.from(c.fixed32.decode(state))
    const sessionId = c.string.decode(state)
    const agentId = c.string.decode(state)
    let info: WriterInfo = { key, sessionId, agentId }
    if (withLengths) {
      const length = c.uint.decode(state)
      const fork = c.uint.decode(state)
      const flags = c.uint.decode(state)
      if (!Number.isSafeInteger(length) || !Number.isSafeInteger(fork)) {
        invalid++
        continue
      }
      if ((flags & HAS_LENGTH) !== 0) info = { key, sessionId, agentId, length, fork, ended: (flags & ENDED) !== 0 }
    }
    if (isValidWriterInfo(info)) writers.push(info)
    else invalid++
  }
  if (state.start !== state.end) throw new Error('trailing bytes after writers message')
  return { ok: true, writers, invalid }
}

const ENDED = 1
/** The sender knows the log's length (a node relaying an older peer's gossip may not). */
const HAS_LENGTH = 2

function entryFlags (info: WriterInfo): number {
  if (info.length === undefined) return 0
  return HAS_LENGTH | (info.ended === true ? ENDED : 0)
}
