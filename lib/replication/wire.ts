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

export interface WriterInfo { key: Buffer, sessionId: string, agentId: string }

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

export function encodeWriters (infos: readonly WriterInfo[]): Buffer {
  const state = c.state()
  c.uint.preencode(state, infos.length)
  for (const info of infos) {
    c.fixed32.preencode(state, info.key)
    c.string.preencode(state, info.sessionId)
    c.string.preencode(state, info.agentId)
  }
  state.buffer = Buffer.allocUnsafe(state.end)
  c.uint.encode(state, infos.length)
  for (const info of infos) {
    c.fixed32.encode(state, info.key)
    c.string.encode(state, info.sessionId)
    c.string.encode(state, info.agentId)
  }
  return state.buffer as Buffer
}

export type DecodedWriters =
  | { ok: true, writers: WriterInfo[], invalid: number }
  | { ok: false, reason: 'too-many', count: number }

/** Throws on malformed bytes; invalid entries (bad labels) are counted and skipped. */
export function decodeWriters (buffer: Buffer): DecodedWriters {
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
    const info = { key, sessionId, agentId }
    if (isValidWriterInfo(info)) writers.push(info)
    else invalid++
  }
  if (state.start !== state.end) throw new Error('trailing bytes after writers message')
  return { ok: true, writers, invalid }
}
