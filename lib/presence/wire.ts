// The crosscast/presence/v1 channel: one message, JSON, from an authenticated
// but untrusted peer. Decode checks every field and caps every size.

import { isLabel } from '../replication/wire.ts'

export const PRESENCE_PROTOCOL = 'crosscast/presence/v1'
/** A message above this is ignored whole: an honest node sends a few entries of ~300 bytes. */
export const MAX_PRESENCE_MESSAGE_BYTES = 256 * 1024
export const MAX_ENTRIES_PER_MESSAGE = 1000
/** Connections an announcement lists as reached at first hand, at most (the origin's own key first). */
export const MAX_REACHED = 64
/** Hex digits of a Noise key kept in `reached`: enough to tell a room's nodes apart. */
export const REACHED_KEY_HEX = 16

/**
 * A session that says it is online. `seq` orders one session's announcements
 * (its node's wall clock in ms at sending): a relayed copy older than what is
 * held is dropped, so announcements cannot loop.
 */
export interface WireEntry {
  agent_id: string
  session_id: string
  /** The session's writer key (hex): its identity. */
  writer: string
  /** The writer key of the node's own session: which node hosts it. */
  node: string
  /** When the session came online (ms since the epoch, its node's clock). */
  since: number
  seq: number
  /**
   * The origin node's Noise key and those of the connections it sent this seq
   * to itself (prefixes of REACHED_KEY_HEX hex digits). A relay skips them: in a
   * full mesh nobody relays at all. Absent from older peers: relayed to all.
   */
  reached?: string[]
  /** The origin node's relay key (hex) when it relays for peers that cannot punch through (relay: true). */
  relay?: string
}

/** A session that went offline (its node closed), as of `seq`. */
export interface WireGone { writer: string, seq: number }

export interface PresenceMessage { entries: WireEntry[], gone: WireGone[] }

const HEX_KEY = /^[0-9a-f]{64}$/
const REACHED_KEY = new RegExp(`^[0-9a-f]{${REACHED_KEY_HEX}}$`)

function isReached (value: unknown): value is string[] | undefined {
  return value === undefined || (Array.isArray(value) && value.length <= MAX_REACHED && value.every(k => typeof k === 'string' && REACHED_KEY.test(k)))
}

function isTime (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function isEntry (value: unknown): value is WireEntry {
  if (value === null || typeof value !== 'object') return false
  const e = value as Record<string, unknown>
  return isLabel(e.agent_id) && isLabel(e.session_id) && typeof e.writer === 'string' && HEX_KEY.test(e.writer) &&
    typeof e.node === 'string' && HEX_KEY.test(e.node) && isTime(e.since) && isTime(e.seq) && isReached(e.reached) &&
    (e.relay === undefined || (typeof e.relay === 'string' && HEX_KEY.test(e.relay)))
}

function isGone (value: unknown): value is WireGone {
  if (value === null || typeof value !== 'object') return false
  const g = value as Record<string, unknown>
  return typeof g.writer === 'string' && HEX_KEY.test(g.writer) && isTime(g.seq)
}

export function encodePresence (message: PresenceMessage): Buffer {
  return Buffer.from(JSON.stringify(message))
}

/** Throws on bytes that are not a presence message; entries that do not check out are dropped, counted. */
export function decodePresence (buffer: Buffer): { message: PresenceMessage, invalid: number } {
  if (buffer.byteLength > MAX_PRESENCE_MESSAGE_BYTES) throw new Error(`presence message of ${buffer.byteLength} bytes is over ${MAX_PRESENCE_MESSAGE_BYTES}`)
  const raw = JSON.parse(buffer.toString('utf8')) as unknown
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('presence message is not an object')
  const { entries, gone } = raw as Record<string, unknown>
  if (!Array.isArray(entries) || !Array.isArray(gone) || entries.length + gone.length > MAX_ENTRIES_PER_MESSAGE) {
    throw new Error('presence message needs entries and gone arrays of at most ' + MAX_ENTRIES_PER_MESSAGE + ' items together')
  }
  const good = entries.filter(isEntry).map(e => {
    const entry: WireEntry = { agent_id: e.agent_id, session_id: e.session_id, writer: e.writer, node: e.node, since: e.since, seq: e.seq }
    if (e.reached !== undefined) entry.reached = e.reached
    if (e.relay !== undefined) entry.relay = e.relay
    return entry
  })
  const left = gone.filter(isGone).map(g => ({ writer: g.writer, seq: g.seq }))
  return { message: { entries: good, gone: left }, invalid: entries.length - good.length + gone.length - left.length }
}
