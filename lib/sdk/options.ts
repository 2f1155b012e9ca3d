import { CrosscastError } from '../errors.ts'
import { validateLabel, DEFAULT_MAX_PAYLOAD_BYTES } from '../events/validate.ts'
import { silentLogger, type Logger } from '../logger.ts'
import { HARD_MAX_PAYLOAD_BYTES } from '../events/codec.ts'

export type BootstrapNode = string | { host: string, port: number }

export interface LanOptionsInput {
  /** Network interface address to send and receive multicast on. */
  interface?: string
  [key: string]: unknown
}

export interface CrosscastOptions {
  /** Directory holding the logs (corestore) and crosscast.db. */
  storage: string
  /** Room name: sessions in the same room (and with the same secret) sync with each other. */
  room?: string
  /** Optional room secret; peers without it never get past the room handshake. */
  secret?: string
  /** Name of the agent writing (claude, copilot, ...). */
  agent?: string
  /** This session's id; the same id reopens the same log. */
  sessionId?: string
  /** Discover peers over the Hyperswarm DHT (default true). */
  swarm?: boolean
  /** DHT bootstrap nodes ('host:port' or {host, port}); default: the public DHT. */
  bootstrap?: BootstrapNode[]
  /**
   * Also meet peers by room name alone (default true), so a peer with a different
   * secret is reported at both ends (`status().rejected`, 'wrong room secret') instead
   * of the room looking empty. Anyone who knows the room name can then see that nodes
   * are in it (their addresses and node keys, never the secret or any data); false
   * keeps even that private.
   */
  reportWrongSecret?: boolean
  /** Discover peers on the local network by mDNS (default true). */
  lan?: boolean | LanOptionsInput
  /** Relay for peers that cannot punch through their NATs (a node on a reachable address); announced to room peers, which then use it. */
  relay?: boolean
  /** Relays (64-hex-digit keys, e.g. printed by `crosscast bootstrap --relay`) to go through when a direct connection cannot be punched. */
  relayThrough?: string[]
  /**
   * Connections at which this node stops dialling (Hyperswarm's maxPeers, default 64;
   * 2 to 1024); when set, it also accepts at most this many, so it holds at most twice
   * as many. A room larger than this is not a full mesh: every log still reaches
   * everyone, relayed by the nodes in between. (Hyperswarm alone would accept every
   * connection, so the nodes found first became hubs: 19 accepted at maxPeers 8 in a
   * room of 32.) A group of maxPeers + 1 nodes that fill each other's budget before
   * meeting anyone else stays apart from the rest until one of them loses a connection:
   * the smaller the cap, the likelier (with 1, rooms of 12 split in 2 of 5 runs), hence
   * at least 2.
   */
  maxPeers?: number
  /** Only these writers' events are projected (hex public keys); others are ignored and reported. */
  writers?: string[]
  /** Cap on one event's payload, in bytes (default 64 KiB). */
  maxPayloadBytes?: number
  /** Group commit caps. */
  maxBlockEvents?: number
  maxBlockBytes?: number
  /** A log that is caught up and quiet this long is closed, and opened again when someone is behind on it (default 10 000 ms; 0 keeps every opened log open). */
  writerIdleMs?: number
  logger?: Logger
}

export interface ResolvedOptions {
  storage: string
  room: string
  secret: string | undefined
  agent: string
  sessionId: string
  swarm: boolean
  reportWrongSecret: boolean
  bootstrap: BootstrapNode[] | undefined
  lan: boolean | LanOptionsInput
  relay: boolean
  relayThrough: string[] | undefined
  maxPeers: number | undefined
  writers: string[] | undefined
  maxPayloadBytes: number
  maxBlockEvents: number | undefined
  maxBlockBytes: number | undefined
  writerIdleMs: number
  logger: Logger
}

const KNOWN = ['storage', 'room', 'secret', 'agent', 'sessionId', 'swarm', 'reportWrongSecret', 'bootstrap', 'lan', 'relay', 'relayThrough', 'maxPeers', 'writers', 'maxPayloadBytes', 'maxBlockEvents', 'maxBlockBytes', 'writerIdleMs', 'logger']

// On: a node that caught up on thousands of logs keeps none of them open once
// they are quiet. The full-size replication run that once saw an idle event not
// arrive with it on (then off by default) matches a race since fixed: a reopened
// log whose replication took longer than 2 x writerIdleMs to come up under load
// was closed again and waited for an announcement that never came
// (test/writer-lifecycle.test.ts reproduces it at 1 ms).
export const DEFAULT_WRITER_IDLE_MS = 10_000

function bad (field: string, message: string): never {
  throw new CrosscastError('INVALID_OPTION', `${field} ${message}`, { field })
}

function positiveInt (value: unknown, field: string, max: number, min = 1): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) bad(field, `must be an integer from ${min} to ${max}, got ${String(value)}`)
  return value
}

export function resolveOptions (input: CrosscastOptions): ResolvedOptions {
  if (input === null || typeof input !== 'object') bad('options', 'must be an object with at least { storage }')
  for (const key of Object.keys(input)) {
    if (!KNOWN.includes(key)) throw new CrosscastError('INVALID_OPTION', `unknown option ${key}; allowed: ${KNOWN.join(', ')}`, { field: key, allowed: KNOWN })
  }
  if (typeof input.storage !== 'string' || input.storage.length === 0) bad('storage', 'must be a directory path')
  const room = input.room ?? 'default'
  if (typeof room !== 'string' || room.length === 0 || room.length > 256) bad('room', 'must be a non-empty string of at most 256 characters')
  if (input.secret !== undefined && (typeof input.secret !== 'string' || input.secret.length === 0)) bad('secret', 'must be a non-empty string when given')
  for (const flag of ['swarm', 'reportWrongSecret', 'relay'] as const) {
    if (input[flag] !== undefined && typeof input[flag] !== 'boolean') bad(flag, 'must be true or false')
  }
  if (input.lan !== undefined && typeof input.lan !== 'boolean' && (typeof input.lan !== 'object' || input.lan === null)) bad('lan', 'must be true, false or an options object')
  if (input.bootstrap !== undefined && !Array.isArray(input.bootstrap)) bad('bootstrap', 'must be an array of "host:port" strings or { host, port } objects')
  if (input.relayThrough !== undefined && (!Array.isArray(input.relayThrough) || input.relayThrough.some(k => typeof k !== 'string' || !/^[0-9a-f]{64}$/i.test(k)))) bad('relayThrough', 'must be an array of relay public keys (64 hex digits each)')
  let writers: string[] | undefined
  if (input.writers !== undefined) {
    if (!Array.isArray(input.writers)) bad('writers', 'must be an array of 64-hex-digit writer keys')
    writers = input.writers.map((w, i) => {
      if (typeof w !== 'string' || !/^[0-9a-f]{64}$/i.test(w)) bad(`writers[${i}]`, `must be a 64-hex-digit writer key, got ${JSON.stringify(w)}`)
      return w.toLowerCase()
    })
  }
  const logger = input.logger ?? silentLogger
  for (const level of ['debug', 'info', 'warn', 'error'] as const) {
    if (typeof logger[level] !== 'function') bad('logger', `must be pino-shaped (missing ${level}())`)
  }
  return {
    storage: input.storage,
    room,
    secret: input.secret,
    agent: validateLabel(input.agent ?? 'agent', 'agent'),
    sessionId: validateLabel(input.sessionId ?? 'default', 'sessionId'),
    swarm: input.swarm ?? true,
    reportWrongSecret: input.reportWrongSecret ?? true,
    bootstrap: input.bootstrap,
    lan: input.lan ?? true,
    relay: input.relay ?? false,
    relayThrough: input.relayThrough,
    // With 1, nodes pair off and a room of 12 split for good in 2 of 5 runs.
    maxPeers: positiveInt(input.maxPeers, 'maxPeers', 1024, 2),
    writers,
    maxPayloadBytes: positiveInt(input.maxPayloadBytes, 'maxPayloadBytes', HARD_MAX_PAYLOAD_BYTES) ?? DEFAULT_MAX_PAYLOAD_BYTES,
    maxBlockEvents: positiveInt(input.maxBlockEvents, 'maxBlockEvents', 4096),
    maxBlockBytes: positiveInt(input.maxBlockBytes, 'maxBlockBytes', 4 * 1024 * 1024),
    writerIdleMs: input.writerIdleMs === 0 ? 0 : positiveInt(input.writerIdleMs, 'writerIdleMs', 24 * 3600_000) ?? DEFAULT_WRITER_IDLE_MS,
    logger
  }
}
