// Each resource's current state as the projector keeps it: its table, the
// fields events write to it, and which events move its version. The state
// rules, the readers and the schema migration all take these from here.

import { EVENT_TYPES, type EventType, type ResourceType } from '../events/types.ts'
import { resourceTypeOf } from '../events/validate.ts'

export const STATE_TABLE: Record<ResourceType, string> = { feature: 'features', track: 'tracks', spike: 'spikes' }

export const STATE_FIELDS: Record<ResourceType, readonly string[]> = {
  feature: ['title', 'status', 'description', 'tags', 'priority', 'track_id'],
  track: ['title', 'description'],
  spike: ['title', 'findings']
}

/** Comments and claims sit beside an item: an update made without seeing them overwrites nothing of theirs. */
const VERSIONLESS: readonly EventType[] = ['comment_added', 'claim_added', 'claim_released']

/**
 * Whether an event moves its item's `version`: the id of the last such event
 * applied to the item on this node, in this node's order of application (the
 * cursor). Two nodes may name different versions of the same content, so the
 * column is local, like the cursor.
 */
export function movesVersion (type: EventType): boolean {
  return !VERSIONLESS.includes(type)
}

/** SQL over broadcast_events' stored type code: the event moves its item's version. */
export const MOVES_VERSION_SQL = `type_code NOT IN (${VERSIONLESS.map(t => EVENT_TYPES.indexOf(t)).join(', ')})`

/** The state table of a resource id (by its prefix), or null for an id that names none. */
export function stateTableOf (id: string): string | null {
  const type = resourceTypeOf(id)
  return Object.hasOwn(STATE_TABLE, type) ? STATE_TABLE[type] : null
}
