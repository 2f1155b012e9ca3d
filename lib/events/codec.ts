// The block format of a session log. One hypercore block holds 1..N events of
// one session (group commit). Blocks from peers are untrusted: decode checks
// every byte and every field, and throws DECODE_FAILED rather than guessing.
//
// block   = version:uint8 (1) · session_id:string · count:uint · event*count
// event   = type:uint8 · flags:uint8 · resource:(prefix:uint8 · uint32) · agent_id:string
//           · hlc:uint · [parent:fixed16 if flags&1] · payload:buffer (JSON, raw-deflated if flags&2)

import c from 'compact-encoding'
import { deflateRawSync, inflateRawSync } from 'node:zlib'
import { CrosscastError } from '../errors.ts'
import { EVENT_TYPES, type WireEvent, type EventType } from './types.ts'
import { validatePayload, validateLabel, DEFAULT_MAX_PAYLOAD_BYTES } from './validate.ts'

export const BLOCK_VERSION = 1
/** Payloads at least this big are compressed; smaller ones would not shrink enough to pay for it. */
export const COMPRESS_THRESHOLD = 1024
/** A block holds at most this many events; the writer's cap is lower, this one bounds what a peer can make us allocate. */
export const MAX_EVENTS_PER_BLOCK = 4096

const FLAG_PARENT = 1
const FLAG_COMPRESSED = 2
const KNOWN_FLAGS = FLAG_PARENT | FLAG_COMPRESSED
const ID_PREFIXES = ['feat', 'trk', 'spk'] as const
const parentEncoding = c.fixed(16)

export interface DecodedBlock {
  sessionId: string
  events: WireEvent[]
}

interface EncodedEvent {
  type: number
  flags: number
  prefix: number
  suffix: number
  agent: string
  hlc: number
  parent: Uint8Array | null
  payload: Uint8Array
}

function prepare (event: WireEvent): EncodedEvent {
  const dash = event.resource_id.indexOf('-')
  const json = Buffer.from(JSON.stringify(event.payload))
  const compress = json.byteLength >= COMPRESS_THRESHOLD
  let flags = 0
  if (event.parent !== null) flags |= FLAG_PARENT
  if (compress) flags |= FLAG_COMPRESSED
  return {
    type: EVENT_TYPES.indexOf(event.event_type),
    flags,
    prefix: ID_PREFIXES.indexOf(event.resource_id.slice(0, dash) as typeof ID_PREFIXES[number]),
    suffix: parseInt(event.resource_id.slice(dash + 1), 16),
    agent: event.agent_id,
    hlc: event.hlc,
    parent: event.parent === null ? null : Buffer.from(event.parent, 'hex'),
    payload: compress ? deflateRawSync(json) : json
  }
}

/** Encodes events that were already validated by the writer. */
export function encodeBlock (sessionId: string, events: WireEvent[]): Buffer {
  const prepared = events.map(prepare)
  const state = c.state()
  c.uint8.preencode(state, BLOCK_VERSION)
  c.string.preencode(state, sessionId)
  c.uint.preencode(state, prepared.length)
  for (const e of prepared) {
    state.end += 3 + 4 // type, flags, prefix, uint32 suffix
    c.string.preencode(state, e.agent)
    c.uint.preencode(state, e.hlc)
    if (e.parent !== null) parentEncoding.preencode(state, e.parent)
    c.buffer.preencode(state, e.payload)
  }
  state.buffer = Buffer.allocUnsafe(state.end)
  c.uint8.encode(state, BLOCK_VERSION)
  c.string.encode(state, sessionId)
  c.uint.encode(state, prepared.length)
  for (const e of prepared) {
    c.uint8.encode(state, e.type)
    c.uint8.encode(state, e.flags)
    c.uint8.encode(state, e.prefix)
    c.uint32.encode(state, e.suffix)
    c.string.encode(state, e.agent)
    c.uint.encode(state, e.hlc)
    if (e.parent !== null) parentEncoding.encode(state, e.parent)
    c.buffer.encode(state, e.payload)
  }
  return state.buffer as Buffer
}

/** No node accepts a payload above this, whatever its configuration: past it a block is malformed, not merely over a cap. */
export const HARD_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024

function fail (reason: string, cause?: unknown): never {
  throw new CrosscastError('DECODE_FAILED', `invalid block: ${reason}`, cause === undefined ? {} : { cause })
}

const NOT_UNDERSTOOD = new WeakSet<Error>()

/**
 * A block that may be valid for a newer version or another configuration (an
 * unknown event type, a payload over this node's cap): the reader must hold
 * its writer there rather than skip it, and retry after an upgrade.
 */
function notUnderstood (reason: string, cause?: unknown): never {
  const err = new CrosscastError('DECODE_FAILED', `not understood by this node: ${reason}`, cause === undefined ? {} : { cause })
  NOT_UNDERSTOOD.add(err)
  throw err
}

/** True for a decode failure that an upgrade or a larger cap may cure (see notUnderstood). */
export function isNotUnderstood (err: unknown): boolean {
  return err instanceof Error && NOT_UNDERSTOOD.has(err)
}

/**
 * Decodes and validates a block from any writer. `maxPayloadBytes` bounds what
 * a compressed payload may inflate to, so a small block cannot become a huge one.
 */
export function decodeBlock (block: Uint8Array, maxPayloadBytes = DEFAULT_MAX_PAYLOAD_BYTES): DecodedBlock {
  const state = c.state(0, block.byteLength, block)
  try {
    const version = c.uint8.decode(state)
    if (version > BLOCK_VERSION) notUnderstood(`block version ${version} is newer than this crosscast reads (${BLOCK_VERSION}); upgrade`)
    if (version !== BLOCK_VERSION) fail(`unknown version ${version} (this crosscast reads version ${BLOCK_VERSION})`)
    const sessionId = validateLabel(c.string.decode(state), 'session_id')
    const count = c.uint.decode(state)
    if (count < 1 || count > MAX_EVENTS_PER_BLOCK) fail(`event count ${count} outside 1..${MAX_EVENTS_PER_BLOCK}`)
    const events: WireEvent[] = new Array(count)
    // Not understood only if the block is otherwise well formed: random bytes must not pass for a newer version.
    let unknown: string | null = null
    for (let i = 0; i < count; i++) {
      const type = c.uint8.decode(state)
      const flags = c.uint8.decode(state)
      const prefix = c.uint8.decode(state)
      const suffix = c.uint32.decode(state)
      const agent = validateLabel(c.string.decode(state), 'agent_id')
      const hlc = c.uint.decode(state)
      if (!Number.isSafeInteger(hlc)) fail('clock out of range')
      const parent = (flags & FLAG_PARENT) !== 0 ? Buffer.from(parentEncoding.decode(state)).toString('hex') : null
      const raw = c.buffer.decode(state)
      if (raw === null) fail('missing payload')
      if (raw.byteLength > HARD_MAX_PAYLOAD_BYTES) fail(`payload of ${raw.byteLength} bytes over the largest any node accepts (${HARD_MAX_PAYLOAD_BYTES})`)
      const reason = type >= EVENT_TYPES.length
        ? `event type ${type} is unknown to this version; upgrade`
        : (flags & ~KNOWN_FLAGS) !== 0
            ? `event flags ${flags} are unknown to this version; upgrade`
            : prefix >= ID_PREFIXES.length
              ? `id prefix ${prefix} is unknown to this version; upgrade`
              : raw.byteLength > maxPayloadBytes ? `payload of ${raw.byteLength} bytes over this node's cap of ${maxPayloadBytes} (maxPayloadBytes)` : null
      if (reason !== null) {
        unknown ??= reason
        continue
      }
      const json = (flags & FLAG_COMPRESSED) !== 0 ? inflate(raw, maxPayloadBytes) : raw
      const eventType: EventType = EVENT_TYPES[type]
      const resourceId = `${ID_PREFIXES[prefix]}-${suffix.toString(16).padStart(8, '0')}`
      let parsed: unknown
      try {
        parsed = JSON.parse(Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8'))
      } catch (err) {
        fail('payload is not JSON', err)
      }
      const payload = validatePayload(eventType, resourceId, parsed, maxPayloadBytes)
      events[i] = { event_type: eventType, resource_id: resourceId, agent_id: agent, hlc, parent, payload }
    }
    if (state.start !== state.end) fail(`${state.end - state.start} trailing bytes`)
    if (unknown !== null) notUnderstood(unknown)
    return { sessionId, events }
  } catch (err) {
    if (err instanceof CrosscastError && err.code === 'DECODE_FAILED') throw err
    if (err instanceof CrosscastError && err.code === 'PAYLOAD_TOO_LARGE') notUnderstood(`${err.message} (maxPayloadBytes)`, err)
    if (err instanceof CrosscastError) fail(err.message, err)
    fail((err as Error).message, err)
  }
}

function inflate (raw: Uint8Array, maxBytes: number): Buffer {
  try {
    return inflateRawSync(raw, { maxOutputLength: maxBytes })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' && maxBytes < HARD_MAX_PAYLOAD_BYTES) notUnderstood(`compressed payload inflates past this node's cap of ${maxBytes} (maxPayloadBytes)`, err)
    fail('compressed payload is corrupt or inflates past the cap', err)
  }
}
