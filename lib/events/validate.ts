// Validation shared by every entry point: SDK calls, gateway requests and blocks
// decoded from peers. A value that passes here is safe to store and to project.

import { CrosscastError } from '../errors.ts'
import {
  EVENT_TYPES, STATUSES, LINK_TYPES, PRIORITIES, ID_PREFIXES,
  type EventType, type ResourceType, type AnyPayload, type EventDraft, type Status
} from './types.ts'

export const DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024
export const MAX_TITLE_LENGTH = 512
export const MAX_TAGS = 64
export const MAX_TAG_LENGTH = 64
export const MAX_LABEL_LENGTH = 128
/** Claims last from 1 second to 1 day; a longer hold is a renewal away. */
export const MIN_CLAIM_TTL_S = 1
export const MAX_CLAIM_TTL_S = 86_400

export const MAX_ID_LABEL_LENGTH = 64
/** What follows `prefix-` in an id: the seed's short labels (feat-123, feat-auth) as well as generated ids (16 base32 digits, see newResourceId). */
export const ID_LABEL_PATTERN = `[A-Za-z0-9][A-Za-z0-9_-]{0,${MAX_ID_LABEL_LENGTH - 1}}`
const ID_PATTERN = new RegExp(`^(${Object.values(ID_PREFIXES).join('|')})-${ID_LABEL_PATTERN}$`)
const LONE_SURROGATE = /\p{Surrogate}/u
const LABEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:@+-]*$/
const PREFIX_TO_TYPE: Record<string, ResourceType> = { feat: 'feature', trk: 'track', spk: 'spike' }

const EVENT_RESOURCE_TYPE: Record<EventType, ResourceType | null> = {
  feature_created: 'feature',
  feature_updated: 'feature',
  feature_deleted: 'feature',
  status_changed: 'feature',
  link_added: 'feature',
  track_updated: 'track',
  spike_updated: 'spike',
  comment_added: null, // any resource can be commented on
  claim_added: null, // and claimed
  claim_released: null
}

function list (values: readonly string[]): string {
  return values.join(', ')
}

export function isResourceId (value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value)
}

export function resourceTypeOf (id: string): ResourceType {
  return PREFIX_TO_TYPE[id.slice(0, id.indexOf('-'))]
}

export function validateId (value: unknown, field: string, expected?: ResourceType): string {
  const prefixes = expected === undefined ? Object.values(ID_PREFIXES) : [ID_PREFIXES[expected]]
  if (!isResourceId(value) || (expected !== undefined && resourceTypeOf(value) !== expected)) {
    throw new CrosscastError('INVALID_ID', `${field} must be ${idShape(prefixes)}, got ${describe(value)}`, { field, allowed: prefixes.map(p => `${p}-<label>`) })
  }
  return value
}

/** The one wording of the id rule, for every error that refuses an id. */
export function idShape (prefixes: readonly string[] = Object.values(ID_PREFIXES)): string {
  return `${prefixes.map(p => `${p}-`).join(', ').replace(/, ([^,]*)$/, ' or $1')} followed by 1 to ${MAX_ID_LABEL_LENGTH} letters, digits, _ or - (starting with a letter or digit), e.g. ${prefixes[0]}-123`
}

/** Agent ids and session ids: short printable labels, safe in headers, file names and SQL. */
export function validateLabel (value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_LABEL_LENGTH || !LABEL_PATTERN.test(value)) {
    throw new CrosscastError('INVALID_FIELD', `${field} must be 1 to ${MAX_LABEL_LENGTH} characters of letters, digits and . _ : @ + - (starting with a letter or digit), got ${describe(value)}`, { field })
  }
  return value
}

export function validateEventType (value: unknown, field = 'event_type'): EventType {
  if (typeof value !== 'string' || !(EVENT_TYPES as readonly string[]).includes(value)) {
    throw new CrosscastError('INVALID_EVENT_TYPE', `${field} must be one of ${list(EVENT_TYPES)}, got ${describe(value)}`, { field, allowed: EVENT_TYPES })
  }
  return value as EventType
}

export function validateStatus (value: unknown, field = 'status'): Status {
  if (typeof value !== 'string' || !(STATUSES as readonly string[]).includes(value)) {
    throw new CrosscastError('INVALID_STATUS', `${field} must be one of ${list(STATUSES)}, got ${describe(value)}`, { field, allowed: STATUSES })
  }
  return value as Status
}

export function validateLinkType (value: unknown, field = 'link_type'): string {
  if (typeof value !== 'string' || !(LINK_TYPES as readonly string[]).includes(value)) {
    throw new CrosscastError('INVALID_LINK_TYPE', `${field} must be one of ${list(LINK_TYPES)}, got ${describe(value)}`, { field, allowed: LINK_TYPES })
  }
  return value
}

export function validateClaimTtl (value: unknown, field: string): number {
  if (value === undefined || value === null) throw new CrosscastError('MISSING_FIELD', `${field} is required`, { field })
  if (typeof value !== 'number' || !Number.isInteger(value) || value < MIN_CLAIM_TTL_S || value > MAX_CLAIM_TTL_S) {
    throw new CrosscastError('INVALID_FIELD', `${field} must be an integer number of seconds from ${MIN_CLAIM_TTL_S} to ${MAX_CLAIM_TTL_S}, got ${describe(value)}`, { field })
  }
  return value
}

function text (value: unknown, field: string, opts: { required: boolean, max?: number }): string | undefined {
  if (value === undefined || value === null) {
    if (opts.required) throw new CrosscastError('MISSING_FIELD', `${field} is required`, { field })
    return undefined
  }
  if (typeof value !== 'string') throw new CrosscastError('INVALID_FIELD', `${field} must be a string, got ${describe(value)}`, { field })
  if (opts.required && value.trim().length === 0) throw new CrosscastError('MISSING_FIELD', `${field} must not be empty`, { field })
  // A lone surrogate has no UTF-8 encoding: SQLite would store bytes no reader can decode.
  if (LONE_SURROGATE.test(value)) throw new CrosscastError('INVALID_FIELD', `${field} must be valid Unicode text (it holds an unpaired surrogate)`, { field })
  if (opts.max !== undefined && value.length > opts.max) {
    throw new CrosscastError('INVALID_FIELD', `${field} must be at most ${opts.max} characters, got ${value.length}`, { field })
  }
  return value
}

function tags (value: unknown, field: string): string[] | undefined {
  if (value === undefined || value === null) return undefined
  if (!Array.isArray(value) || value.length > MAX_TAGS) {
    throw new CrosscastError('INVALID_FIELD', `${field} must be an array of at most ${MAX_TAGS} strings, got ${describe(value)}`, { field })
  }
  return value.map((tag, i) => text(tag, `${field}[${i}]`, { required: true, max: MAX_TAG_LENGTH }) as string)
}

function priority (value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'string' || !(PRIORITIES as readonly string[]).includes(value)) {
    throw new CrosscastError('INVALID_FIELD', `${field} must be one of ${list(PRIORITIES)}, got ${describe(value)}`, { field, allowed: PRIORITIES })
  }
  return value
}

function onlyKnownFields (payload: Record<string, unknown>, allowed: readonly string[], eventType: EventType): void {
  for (const key of Object.keys(payload)) {
    if (!allowed.includes(key)) {
      throw new CrosscastError('INVALID_FIELD', `payload.${key} is not a field of ${eventType}; allowed fields: ${list(allowed)}`, { field: `payload.${key}`, allowed })
    }
  }
}

function put (out: Record<string, unknown>, key: string, value: unknown): void {
  if (value !== undefined) out[key] = value
}

const FEATURE_FIELDS = ['title', 'status', 'description', 'tags', 'priority', 'track_id'] as const
const ALLOWED_FIELDS: Record<EventType, readonly string[]> = {
  feature_created: FEATURE_FIELDS,
  feature_updated: FEATURE_FIELDS,
  feature_deleted: ['feature_id'],
  track_updated: ['title', 'description'],
  spike_updated: ['title', 'findings'],
  status_changed: ['old_status', 'new_status'],
  link_added: ['linked_feature_id', 'link_type'],
  comment_added: ['comment_text', 'author'],
  claim_added: ['ttl_s'],
  claim_released: []
}

function featureFields (p: Record<string, unknown>, out: Record<string, unknown>, creating: boolean): void {
  put(out, 'title', text(p.title, 'payload.title', { required: creating, max: MAX_TITLE_LENGTH }))
  if (p.status !== undefined && p.status !== null) out.status = validateStatus(p.status, 'payload.status')
  else if (creating) out.status = 'todo'
  put(out, 'description', text(p.description, 'payload.description', { required: false }))
  put(out, 'tags', tags(p.tags, 'payload.tags'))
  put(out, 'priority', priority(p.priority, 'payload.priority'))
  if (p.track_id !== undefined && p.track_id !== null) out.track_id = validateId(p.track_id, 'payload.track_id', 'track')
}

function requireSomeField (out: Record<string, unknown>, eventType: EventType): void {
  if (Object.keys(out).length === 0) {
    throw new CrosscastError('MISSING_FIELD', `${eventType} needs at least one of ${list(ALLOWED_FIELDS[eventType])}`, { field: 'payload', allowed: ALLOWED_FIELDS[eventType] })
  }
}

/**
 * Checks a payload against its event type and returns a clean copy holding only
 * the known fields, with defaults applied. Throws a CrosscastError naming the field.
 */
export function validatePayload (eventType: EventType, resourceId: string, payload: unknown, maxBytes = DEFAULT_MAX_PAYLOAD_BYTES): AnyPayload {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    throw new CrosscastError('INVALID_FIELD', `payload must be a JSON object, got ${describe(payload)}`, { field: 'payload' })
  }
  const p = payload as Record<string, unknown>
  onlyKnownFields(p, ALLOWED_FIELDS[eventType], eventType)
  const out: Record<string, unknown> = {}
  switch (eventType) {
    case 'feature_created':
      featureFields(p, out, true)
      break
    case 'feature_updated':
      featureFields(p, out, false)
      requireSomeField(out, eventType)
      break
    case 'feature_deleted':
      out.feature_id = validateId(p.feature_id ?? resourceId, 'payload.feature_id', 'feature')
      if (out.feature_id !== resourceId) throw new CrosscastError('INVALID_FIELD', `payload.feature_id must equal the resource id ${resourceId}`, { field: 'payload.feature_id' })
      break
    case 'track_updated':
      put(out, 'title', text(p.title, 'payload.title', { required: false, max: MAX_TITLE_LENGTH }))
      put(out, 'description', text(p.description, 'payload.description', { required: false }))
      requireSomeField(out, eventType)
      break
    case 'spike_updated':
      put(out, 'title', text(p.title, 'payload.title', { required: false, max: MAX_TITLE_LENGTH }))
      put(out, 'findings', text(p.findings, 'payload.findings', { required: false }))
      requireSomeField(out, eventType)
      break
    case 'status_changed':
      out.old_status = p.old_status === undefined || p.old_status === null ? null : validateStatus(p.old_status, 'payload.old_status')
      out.new_status = validateStatus(p.new_status, 'payload.new_status')
      break
    case 'link_added':
      out.linked_feature_id = validateId(p.linked_feature_id, 'payload.linked_feature_id', 'feature')
      out.link_type = validateLinkType(p.link_type, 'payload.link_type')
      if (out.linked_feature_id === resourceId) throw new CrosscastError('INVALID_FIELD', 'payload.linked_feature_id must differ from the feature it links from', { field: 'payload.linked_feature_id' })
      break
    case 'comment_added':
      out.comment_text = text(p.comment_text, 'payload.comment_text', { required: true })
      out.author = text(p.author, 'payload.author', { required: true, max: MAX_LABEL_LENGTH })
      break
    case 'claim_added':
      out.ttl_s = validateClaimTtl(p.ttl_s, 'payload.ttl_s')
      break
    case 'claim_released':
      break
  }
  const bytes = Buffer.byteLength(JSON.stringify(out))
  if (bytes > maxBytes) {
    throw new CrosscastError('PAYLOAD_TOO_LARGE', `payload is ${bytes} bytes, over the cap of ${maxBytes} bytes`, { field: 'payload' })
  }
  return out as unknown as AnyPayload
}

/** Validates what a caller asks to write and returns the normalized draft. */
export function validateDraft (draft: EventDraft, maxBytes = DEFAULT_MAX_PAYLOAD_BYTES): EventDraft {
  const eventType = validateEventType(draft.event_type)
  const resourceId = validateId(draft.resource_id, 'resource_id', EVENT_RESOURCE_TYPE[eventType] ?? undefined)
  const payload = validatePayload(eventType, resourceId, draft.payload, maxBytes)
  const out: EventDraft = { event_type: eventType, resource_id: resourceId, payload }
  if (draft.agent_id !== undefined) out.agent_id = validateLabel(draft.agent_id, 'agent_id')
  return out
}

function describe (value: unknown): string {
  if (value === undefined) return 'nothing'
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value)
  if (Array.isArray(value)) return 'an array'
  if (value === null) return 'null'
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`
}
