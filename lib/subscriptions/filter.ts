// One filter, two evaluations that must agree: in memory for live events and
// as SQL for replays from a cursor.

import { CrosscastError } from '../errors.ts'
import { EVENT_TYPES, RESOURCE_TYPES, type BroadcastEvent, type EventType, type ResourceType } from '../events/types.ts'
import { validateEventType, validateId, validateLabel } from '../events/validate.ts'

export interface SubscriptionFilter {
  eventTypes?: EventType[]
  resourceTypes?: ResourceType[]
  resourceIds?: string[]
  /** Events of this track and of the features that belong to it. */
  track?: string
  agents?: string[]
  sessions?: string[]
  excludeSessions?: string[]
  /** Leaves out events written by this node's own sessions. */
  excludeOwn?: boolean
}

export interface CompiledFilter {
  matches (event: BroadcastEvent): boolean
  sql: string
  params: unknown[]
  usesTrack: boolean
}

function list<T> (value: unknown, field: string, check: (v: unknown, f: string) => T): T[] | undefined {
  if (value === undefined || value === null) return undefined
  if (!Array.isArray(value)) throw new CrosscastError('INVALID_OPTION', `filter.${field} must be an array`, { field: `filter.${field}` })
  return value.map((v, i) => check(v, `filter.${field}[${i}]`))
}

export function validateFilter (filter: unknown): SubscriptionFilter {
  if (filter === undefined || filter === null) return {}
  if (typeof filter !== 'object' || Array.isArray(filter)) throw new CrosscastError('INVALID_OPTION', 'filter must be an object', { field: 'filter' })
  const f = filter as Record<string, unknown>
  const known = ['eventTypes', 'resourceTypes', 'resourceIds', 'track', 'agents', 'sessions', 'excludeSessions', 'excludeOwn']
  for (const key of Object.keys(f)) {
    if (!known.includes(key)) throw new CrosscastError('INVALID_OPTION', `filter.${key} is not a filter field; allowed: ${known.join(', ')}`, { field: `filter.${key}`, allowed: known })
  }
  const out: SubscriptionFilter = {}
  const eventTypes = list(f.eventTypes, 'eventTypes', validateEventType)
  if (eventTypes !== undefined) out.eventTypes = eventTypes
  const resourceTypes = list(f.resourceTypes, 'resourceTypes', (v, field) => {
    if (typeof v !== 'string' || !(RESOURCE_TYPES as readonly string[]).includes(v)) {
      throw new CrosscastError('INVALID_OPTION', `${field} must be one of ${RESOURCE_TYPES.join(', ')}`, { field, allowed: RESOURCE_TYPES })
    }
    return v as ResourceType
  })
  if (resourceTypes !== undefined) out.resourceTypes = resourceTypes
  const resourceIds = list(f.resourceIds, 'resourceIds', (v, field) => validateId(v, field))
  if (resourceIds !== undefined) out.resourceIds = resourceIds
  if (f.track !== undefined && f.track !== null) out.track = validateId(f.track, 'filter.track', 'track')
  for (const key of ['agents', 'sessions', 'excludeSessions'] as const) {
    const labels = list(f[key], key, validateLabel)
    if (labels !== undefined) out[key] = labels
  }
  if (f.excludeOwn !== undefined) {
    if (typeof f.excludeOwn !== 'boolean') throw new CrosscastError('INVALID_OPTION', 'filter.excludeOwn must be a boolean', { field: 'filter.excludeOwn' })
    out.excludeOwn = f.excludeOwn
  }
  return out
}

/**
 * `trackOf` answers which track a feature belongs to now; `ownWriters` are the
 * writer keys of this node's sessions (for excludeOwn).
 */
export function compileFilter (filter: SubscriptionFilter, trackOf: (featureId: string) => string | null, ownWriters: () => ReadonlySet<string>): CompiledFilter {
  const where: string[] = []
  const params: unknown[] = []
  const checks: Array<(e: BroadcastEvent) => boolean> = []
  const inList = (column: string, values: readonly unknown[]): void => {
    where.push(`${column} IN (${values.map(() => '?').join(', ')})`)
    params.push(...values)
  }
  if (filter.eventTypes !== undefined && filter.eventTypes.length < EVENT_TYPES.length) {
    const set = new Set<string>(filter.eventTypes)
    checks.push(e => set.has(e.event_type))
    inList('event_type', filter.eventTypes)
  }
  if (filter.resourceTypes !== undefined) {
    const set = new Set<string>(filter.resourceTypes)
    checks.push(e => set.has(e.resource_type))
    inList('resource_type', filter.resourceTypes)
  }
  if (filter.resourceIds !== undefined) {
    const set = new Set(filter.resourceIds)
    checks.push(e => set.has(e.resource_id))
    inList('resource_id', filter.resourceIds)
  }
  if (filter.track !== undefined) {
    const track = filter.track
    checks.push(e => e.resource_id === track || (e.resource_type === 'feature' && trackOf(e.resource_id) === track))
    where.push('(resource_id = ? OR resource_id IN (SELECT id FROM features WHERE track_id = ?))')
    params.push(track, track)
  }
  if (filter.agents !== undefined) {
    const set = new Set(filter.agents)
    checks.push(e => set.has(e.agent_id))
    inList('agent_id', filter.agents)
  }
  if (filter.sessions !== undefined) {
    const set = new Set(filter.sessions)
    checks.push(e => set.has(e.session_id))
    inList('session_id', filter.sessions)
  }
  if (filter.excludeSessions !== undefined && filter.excludeSessions.length > 0) {
    const set = new Set(filter.excludeSessions)
    checks.push(e => !set.has(e.session_id))
    where.push(`session_id NOT IN (${filter.excludeSessions.map(() => '?').join(', ')})`)
    params.push(...filter.excludeSessions)
  }
  if (filter.excludeOwn === true) {
    checks.push(e => !ownWriters().has(e.writer))
    where.push('writer NOT IN (SELECT key FROM writers WHERE local = 1)')
  }
  return {
    matches: checks.length === 0 ? () => true : (e) => checks.every(check => check(e)),
    sql: where.length === 0 ? '1' : where.join(' AND '),
    params,
    usesTrack: filter.track !== undefined
  }
}
