// crosscast: local-first, peer-to-peer sync of work items between agent sessions.
// The gateway is NOT loaded from here: import it from 'crosscast/gateway'.

export { Crosscast, CrosscastSession, type NodeStatus, type WriterStatus, type ListEventsQuery, type CursorOptions, type ResetInfo } from './sdk/crosscast.ts'
export type { CrosscastOptions, BootstrapNode } from './sdk/options.ts'
export { Feature, FeatureBuilder, FeatureCollection, Track, TrackBuilder, TrackCollection, Spike, SpikeBuilder, SpikeCollection } from './sdk/resources.ts'
export type { FeatureRecord, TrackRecord, SpikeRecord, LinkRecord, CommentRecord, ConflictRecord } from './sdk/state.ts'
export type { PeerStatus } from './sdk/network.ts'
export { CrosscastError, ERROR_CODES, isCrosscastError, type ErrorCode } from './errors.ts'
export {
  EVENT_TYPES, STATUSES, LINK_TYPES, PRIORITIES, RESOURCE_TYPES,
  type EventType, type Status, type LinkType, type Priority, type ResourceType,
  type BroadcastEvent, type EventDraft, type PayloadByType, type AnyPayload
} from './events/types.ts'
export { validateId, validateLabel, validateStatus, validateLinkType, validateEventType, validateDraft, validatePayload, isResourceId, resourceTypeOf, DEFAULT_MAX_PAYLOAD_BYTES } from './events/validate.ts'
export { newResourceId } from './events/ids.ts'
export { validateFilter, type SubscriptionFilter } from './subscriptions/filter.ts'
export { contentHash } from './projection/content-hash.ts'
export { silentLogger, type Logger } from './logger.ts'
