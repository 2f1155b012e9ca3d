// The product contract's vocabulary (seed document): its eight event types plus
// crosscast's claims, their payloads, statuses, link types and id formats.
// Everything else builds on it.

// The order is the wire: an event's type travels as its index here, so new
// types are only ever appended (see BLOCK_VERSION in codec.ts).
export const EVENT_TYPES = [
  'feature_created',
  'feature_updated',
  'feature_deleted',
  'track_updated',
  'spike_updated',
  'status_changed',
  'link_added',
  'comment_added',
  'claim_added',
  'claim_released'
] as const
export type EventType = typeof EVENT_TYPES[number]

export const STATUSES = ['todo', 'in_progress', 'blocked', 'done'] as const
export type Status = typeof STATUSES[number]

export const LINK_TYPES = ['depends_on', 'blocks', 'related'] as const
export type LinkType = typeof LINK_TYPES[number]

export const PRIORITIES = ['low', 'medium', 'high', 'critical'] as const
export type Priority = typeof PRIORITIES[number]

export const RESOURCE_TYPES = ['feature', 'track', 'spike'] as const
export type ResourceType = typeof RESOURCE_TYPES[number]

export const ID_PREFIXES: Record<ResourceType, string> = { feature: 'feat', track: 'trk', spike: 'spk' }

export interface FeatureCreatedPayload {
  title: string
  status: Status
  description?: string
  tags?: string[]
  priority?: Priority
  track_id?: string
}
export interface FeatureUpdatedPayload {
  title?: string
  status?: Status
  description?: string
  tags?: string[]
  priority?: Priority
  track_id?: string
}
export interface FeatureDeletedPayload { feature_id: string }
export interface TrackUpdatedPayload { title?: string, description?: string }
export interface SpikeUpdatedPayload { title?: string, findings?: string }
export interface StatusChangedPayload { old_status: Status | null, new_status: Status }
export interface LinkAddedPayload { linked_feature_id: string, link_type: LinkType }
export interface CommentAddedPayload { comment_text: string, author: string }
/** The writing session claims the item for ttl_s seconds from the event's clock; a new claim_added by the same session renews it. */
export interface ClaimAddedPayload { ttl_s: number }
/** The writing session gives up its claim on the item. */
export type ClaimReleasedPayload = Record<string, never>

export interface PayloadByType {
  feature_created: FeatureCreatedPayload
  feature_updated: FeatureUpdatedPayload
  feature_deleted: FeatureDeletedPayload
  track_updated: TrackUpdatedPayload
  spike_updated: SpikeUpdatedPayload
  status_changed: StatusChangedPayload
  link_added: LinkAddedPayload
  comment_added: CommentAddedPayload
  claim_added: ClaimAddedPayload
  claim_released: ClaimReleasedPayload
}
export type AnyPayload = PayloadByType[EventType]

/** What a caller asks to write; the log fills in the rest. */
export interface EventDraft<T extends EventType = EventType> {
  event_type: T
  resource_id: string
  payload: PayloadByType[T]
  /** Overrides the writer's default agent for this one event (the gateway's X-Agent-ID). */
  agent_id?: string
}

/** One event as it travels in a block: what the writer decided. */
export interface WireEvent {
  event_type: EventType
  resource_id: string
  agent_id: string
  hlc: number
  parent: string | null
  payload: AnyPayload
}

/**
 * One event as stored and delivered: the seed's snake_case fields plus where it
 * sits (writer, seq, idx), its clock, its causal parent and the local cursor.
 */
export interface BroadcastEvent {
  event_id: string
  event_type: EventType
  resource_id: string
  resource_type: ResourceType
  agent_id: string
  session_id: string
  payload: AnyPayload
  timestamp: string
  hlc: number
  writer: string
  seq: number
  idx: number
  parent: string | null
  /** Position in this node's broadcast_events order; pass it back as `since`. Differs between peers. */
  cursor: number
}
