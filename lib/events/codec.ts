// The block format of a session log. One hypercore block holds 1..N events of
// one session (group commit). Blocks from peers are untrusted: decode checks
// every byte and every field, and throws DECODE_FAILED rather than guessing.
//
// block   = version:uint8 (1 or 2) · session_id:string · count:uint · event*count
// block v3 = 3 · session_id:string · count:uint · event*count · flags:uint (1: the session ended its log; count may then be 0)
// event   = type:uint8 · flags:uint8 · resource · agent_id:string
//           · hlc:uint · [parent:fixed16 if flags&1] · payload:buffer (JSON, raw-deflated if flags&2)
// resource = prefix:uint8 · (label:string if flags&4, else uint32: an 8-hex-digit label, the shape ids were generated in before)

import c from 'compact-encoding'
import { deflateRawSync, inflateRawSync } from 'node:zlib'
import { CrosscastError } from '../errors.ts'
import { EVENT_TYPES, type WireEvent, type EventType } from './types.ts'
import { validatePayload, validateLabel, isResourceId, DEFAULT_MAX_PAYLOAD_BYTES } from './validate.ts'

/**
 * The newest block version this crosscast writes and reads. Version 2 added
 * claim_added and claim_released (event types 8 and 9) and nothing else, so a
 * block is written as version 1 unless it holds a claim event: older peers keep
 * reading every block they can understand, and a version-1 block can never
 * carry a type that did not exist then.
 */
export const BLOCK_VERSION = 3
/**
 * Event types a block of each version may hold (an index bound into EVENT_TYPES).
 * Version 3 added only the trailing block flags (the session's end marker): it is
 * written for that marker alone, so an older peer holds the writer there, after
 * every event of the log, and nothing it could read is behind the hold.
 */
const TYPES_IN_VERSION: Record<number, number> = { 1: 8, 2: 10, 3: 10 }
const BLOCK_FLAG_ENDED = 1
const KNOWN_BLOCK_FLAGS = BLOCK_FLAG_ENDED
/** Payloads at least this big are compressed; smaller ones would not shrink enough to pay for it. */
export const COMPRESS_THRESHOLD = 1024
/** A block holds at most this many events; the writer's cap is lower, this one bounds what a peer can make us allocate. */
export const MAX_EVENTS_PER_BLOCK = 4096

const FLAG_PARENT = 1
const FLAG_COMPRESSED = 2
// A label travels as a string; one of 8 hex digits (the shape generated ids had before they
// carried their creation time) keeps the 4-byte form, so blocks written before labels existed
// decode unchanged. Today's generated ids are labels: older peers read them as they are.
const FLAG_LABEL_ID = 4
const KNOWN_FLAGS = FLAG_PARENT | FLAG_COMPRESSED | FLAG_LABEL_ID
const GENERATED_SUFFIX = /^[0-9a-f]{8}$/
const ID_PREFIXES = ['feat', 'trk', 'spk'] as const
const parentEncoding = c.fixed(16)

export interface DecodedBlock {
  sessionId: string
  events: WireEvent[]
  /** The session's last block: it ended its log (see encodeEndBlock). */
  ended?: boolean
}

interface EncodedEvent {
  type: number
  flags: number
  prefix: number
  suffix: number
  label: string
  agent: string
  hlc: number
  parent: Uint8Array | null
  payload: Uint8Array
}

function prepare (event: WireEvent, payloadJson: string | undefined): EncodedEvent {
  const dash = event.resource_id.indexOf('-')
  const json = Buffer.from(payloadJson ?? JSON.stringify(event.payload))
  const compress = json.byteLength >= COMPRESS_THRESHOLD
  const label = event.resource_id.slice(dash + 1)
  const generated = GENERATED_SUFFIX.test(label)
  let flags = 0
  if (event.parent !== null) flags |= FLAG_PARENT
  if (compress) flags |= FLAG_COMPRESSED
  if (!generated) flags |= FLAG_LABEL_ID
  return {
    type: EVENT_TYPES.indexOf(event.event_type),
    flags,
    prefix: ID_PREFIXES.indexOf(event.resource_id.slice(0, dash) as typeof ID_PREFIXES[number]),
    suffix: generated ? parseInt(label, 16) : 0,
    label,
    agent: event.agent_id,
    hlc: event.hlc,
    parent: event.parent === null ? null : Buffer.from(event.parent, 'hex'),
    payload: compress ? deflateRawSync(json) : json
  }
}

/** Encodes events that were already validated by the writer; `payloads`: each one's payload already serialized (JSON.stringify). */
export function encodeBlock (sessionId: string, events: WireEvent[], payloads?: string[]): Buffer {
  const prepared = events.map((event, i) => prepare(event, payloads?.[i]))
  // Version 3 adds nothing an event block needs: events go out as version 1 or 2, which older peers read.
  const version = prepared.every(e => e.type < TYPES_IN_VERSION[1]) ? 1 : 2
  const state = c.state()
  c.uint8.preencode(state, version)
  c.string.preencode(state, sessionId)
  c.uint.preencode(state, prepared.length)
  for (const e of prepared) {
    state.end += 3 // type, flags, prefix
    if ((e.flags & FLAG_LABEL_ID) !== 0) c.string.preencode(state, e.label)
    else c.uint32.preencode(state, e.suffix)
    c.string.preencode(state, e.agent)
    c.uint.preencode(state, e.hlc)
    if (e.parent !== null) parentEncoding.preencode(state, e.parent)
    c.buffer.preencode(state, e.payload)
  }
  state.buffer = Buffer.allocUnsafe(state.end)
  c.uint8.encode(state, version)
  c.string.encode(state, sessionId)
  c.uint.encode(state, prepared.length)
  for (const e of prepared) {
    c.uint8.encode(state, e.type)
    c.uint8.encode(state, e.flags)
    c.uint8.encode(state, e.prefix)
    if ((e.flags & FLAG_LABEL_ID) !== 0) c.string.encode(state, e.label)
    else c.uint32.encode(state, e.suffix)
    c.string.encode(state, e.agent)
    c.uint.encode(state, e.hlc)
    if (e.parent !== null) parentEncoding.encode(state, e.parent)
    c.buffer.encode(state, e.payload)
  }
  return state.buffer as Buffer
}

/**
 * The signed last block of a session that ended: no events, only the flag. A
 * node closes a log that ends here once it is projected and opens it again
 * only when someone is behind on it.
 */
export function encodeEndBlock (sessionId: string): Buffer {
  const state = c.state()
  c.uint8.preencode(state, 3)
  c.string.preencode(state, sessionId)
  c.uint.preencode(state, 0)
  c.uint.preencode(state, BLOCK_FLAG_ENDED)
  state.buffer = Buffer.allocUnsafe(state.end)
  c.uint8.encode(state, 3)
  c.string.encode(state, sessionId)
  c.uint.encode(state, 0)
  c.uint.encode(state, BLOCK_FLAG_ENDED)
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
    const typeCount = TYPES_IN_VERSION[version]
    if (typeCount === undefined) fail(`unknown version ${version} (this crosscast reads versions 1 to ${BLOCK_VERSION})`)
    const sessionId = validateLabel(c.string.decode(state), 'session_id')
    const count = c.uint.decode(state)
    // Only an end marker may be empty; checked against its flags below.
    if ((count < 1 && version < 3) || count > MAX_EVENTS_PER_BLOCK) fail(`event count ${count} outside 1..${MAX_EVENTS_PER_BLOCK}`)
    const events: WireEvent[] = new Array(count)
    // Not understood only if the block is otherwise well formed: random bytes must not pass for a newer version.
    let unknown: string | null = null
    for (let i = 0; i < count; i++) {
      const type = c.uint8.decode(state)
      const flags = c.uint8.decode(state)
      const prefix = c.uint8.decode(state)
      const label = (flags & FLAG_LABEL_ID) !== 0 ? c.string.decode(state) : c.uint32.decode(state).toString(16).padStart(8, '0')
      // A type this node knows but the block's version predates: no writer produces that.
      if (type >= typeCount && type < EVENT_TYPES.length) fail(`unknown event type ${type} in a version ${version} block`)
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
      const resourceId = `${ID_PREFIXES[prefix]}-${label}`
      // A label in the generated shape must use the 4-byte form: one id, one encoding, so no two blocks differ only there.
      if (!isResourceId(resourceId) || ((flags & FLAG_LABEL_ID) !== 0 && GENERATED_SUFFIX.test(label))) fail(`invalid resource id ${JSON.stringify(resourceId.slice(0, 80))}`)
      const json = (flags & FLAG_COMPRESSED) !== 0 ? inflate(raw, maxPayloadBytes) : raw
      const eventType: EventType = EVENT_TYPES[type]
      let parsed: unknown
      try {
        parsed = JSON.parse(Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8'))
      } catch (err) {
        fail('payload is not JSON', err)
      }
      const payload = validatePayload(eventType, resourceId, parsed, maxPayloadBytes)
      events[i] = { event_type: eventType, resource_id: resourceId, agent_id: agent, hlc, parent, payload }
    }
    const blockFlags = version >= 3 ? c.uint.decode(state) : 0
    if (state.start !== state.end) fail(`${state.end - state.start} trailing bytes`)
    if ((blockFlags & ~KNOWN_BLOCK_FLAGS) !== 0) notUnderstood(`block flags ${blockFlags} are unknown to this version; upgrade`)
    const ended = (blockFlags & BLOCK_FLAG_ENDED) !== 0
    if (count === 0 && !ended) fail('an empty block that is not an end marker')
    if (unknown !== null) notUnderstood(unknown)
    return ended ? { sessionId, events, ended } : { sessionId, events }
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
