// TypeBox schemas for every gateway route. TypeBox 1 builds plain JSON Schema, so
// fastify's own ajv validates with them and the OpenAPI document reuses them as is.

import { Type } from 'typebox'
import { STATUSES, LINK_TYPES, PRIORITIES, EVENT_TYPES, RESOURCE_TYPES } from '../events/types.ts'
import { MAX_TITLE_LENGTH, MAX_TAGS, MAX_TAG_LENGTH, MAX_LABEL_LENGTH, MIN_CLAIM_TTL_S, MAX_CLAIM_TTL_S, ID_LABEL_PATTERN, idShape } from '../events/validate.ts'
import { MAX_FEATURE_PAGE } from '../sdk/state.ts'

const LABEL_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:@+-]*$'

export const FeatureId = Type.String({ pattern: `^feat-${ID_LABEL_PATTERN}$`, description: idShape(['feat']) })
export const TrackId = Type.String({ pattern: `^trk-${ID_LABEL_PATTERN}$`, description: idShape(['trk']) })
export const SpikeId = Type.String({ pattern: `^spk-${ID_LABEL_PATTERN}$`, description: idShape(['spk']) })
export const AnyResourceId = Type.String({ pattern: `^(feat|trk|spk)-${ID_LABEL_PATTERN}$`, description: idShape() })

export const Status = Type.Enum([...STATUSES], { description: 'feature status' })
export const LinkType = Type.Enum([...LINK_TYPES])
export const Priority = Type.Enum([...PRIORITIES])
export const EventTypeSchema = Type.Enum([...EVENT_TYPES])
export const ResourceTypeSchema = Type.Enum([...RESOURCE_TYPES])

const Label = Type.String({ minLength: 1, maxLength: MAX_LABEL_LENGTH, pattern: LABEL_PATTERN })
const Title = Type.String({ minLength: 1, maxLength: MAX_TITLE_LENGTH })
const Tags = Type.Array(Type.String({ minLength: 1, maxLength: MAX_TAG_LENGTH }), { maxItems: MAX_TAGS })

/** Writes name who writes: the agent and its session, each session gets its own log. */
export const WriteHeaders = Type.Object({
  'x-agent-id': Label,
  'x-session-id': Label,
  'if-match': Type.Optional(Type.String({ description: 'on the routes of one item: its version as read (quotes optional); refused with 409 CONFLICT and the current item if it changed since' }))
}, { required: ['x-agent-id', 'x-session-id'] })

export const ErrorResponse = Type.Object({
  code: Type.String(),
  message: Type.String(),
  field: Type.Optional(Type.String()),
  allowed: Type.Optional(Type.Array(Type.String()))
})

// The seed's fields in its order, then what crosscast adds.
export const WriteResponse = Type.Object({
  success: Type.Boolean(),
  feature_id: Type.Optional(Type.String()),
  event_id: Type.String(),
  clients_notified: Type.Integer({ description: 'WebSocket clients the event was sent to' }),
  timestamp: Type.String(),
  resource_id: Type.String(),
  event_ids: Type.Array(Type.String({ description: 'every event the request wrote, in one block' })),
  old_status: Type.Optional(Type.Union([Status, Type.Null()], { description: 'status route: the status before the change (null when the feature had none)' })),
  new_status: Type.Optional(Status)
})

export const BatchResponse = Type.Object({
  success: Type.Boolean(),
  event_ids: Type.Array(Type.String()),
  resource_ids: Type.Array(Type.String()),
  clients_notified: Type.Integer(),
  timestamp: Type.String()
})

export const FeatureParams = Type.Object({ id: FeatureId })
export const TrackParams = Type.Object({ id: TrackId })
export const SpikeParams = Type.Object({ id: SpikeId })

export const FeatureCreateBody = Type.Object({
  title: Title,
  status: Type.Optional(Status),
  description: Type.Optional(Type.String()),
  tags: Type.Optional(Tags),
  priority: Type.Optional(Priority),
  track_id: Type.Optional(TrackId)
}, { additionalProperties: false })

// The same fields as a create, every one optional: a save sends only what changed.
export const FeatureUpdateBody = Type.Partial(FeatureCreateBody, { additionalProperties: false })

export const StatusBody = Type.Object({ new_status: Status }, { additionalProperties: false })

export const LinkBody = Type.Object({ linked_feature_id: FeatureId, link_type: LinkType }, { additionalProperties: false })

export const CommentBody = Type.Object({
  comment_text: Type.String({ minLength: 1 }),
  author: Type.Optional(Label)
}, { additionalProperties: false })

export const TrackBody = Type.Object({
  title: Type.Optional(Title),
  description: Type.Optional(Type.String())
}, { additionalProperties: false })

export const SpikeBody = Type.Object({
  title: Type.Optional(Title),
  findings: Type.Optional(Type.String())
}, { additionalProperties: false })

export const MAX_BATCH_OPERATIONS = 500

export const BatchOperation = Type.Object({
  event_type: EventTypeSchema,
  resource_id: Type.Optional(AnyResourceId),
  payload: Type.Object({}, { additionalProperties: true })
}, { additionalProperties: false, description: 'an event draft; resource_id may be left out on feature_created (a new id is made), old_status may be left out on status_changed (taken from the current state)' })

export const BatchBody = Type.Object({
  operations: Type.Array(BatchOperation, { minItems: 1, maxItems: MAX_BATCH_OPERATIONS })
}, { additionalProperties: false })

export const ClaimHolderJson = Type.Object({
  agent_id: Type.String(),
  session_id: Type.String(),
  writer: Type.String(),
  expires_at: Type.String(),
  event_id: Type.String({ description: 'the claim_added that started the claim' })
})

const Link = Type.Object({ linked_feature_id: Type.String(), link_type: Type.String(), event_id: Type.String() })
const Comment = Type.Object({ event_id: Type.String(), comment_text: Type.String(), author: Type.String(), agent_id: Type.String(), created_at: Type.String() })

export const FeatureJson = Type.Object({
  id: Type.String(),
  title: Type.String(),
  status: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  tags: Type.Array(Type.String()),
  priority: Type.Union([Type.String(), Type.Null()]),
  track_id: Type.Union([Type.String(), Type.Null()]),
  created_at: Type.Union([Type.String(), Type.Null()]),
  updated_at: Type.Union([Type.String(), Type.Null()]),
  created_by: Type.Union([Type.String(), Type.Null()]),
  links: Type.Array(Link),
  comments: Type.Array(Comment, { description: 'oldest first' }),
  claim: Type.Union([ClaimHolderJson, Type.Null()], { description: 'the live claim on it, if any' }),
  version: Type.String({ description: 'id of the last event applied to the feature on this node; send it back as If-Match' })
}, { additionalProperties: true })

export const FeatureListQuery = Type.Object({
  status: Type.Optional(Status),
  track: Type.Optional(TrackId),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_FEATURE_PAGE, description: 'at most this many features (oldest first)' })),
  after: Type.Optional(Type.String({ ...FeatureId, description: 'the last feature id of the previous page' }))
}, { additionalProperties: false })

export const FeatureListResponse = Type.Object({
  features: Type.Array(FeatureJson),
  count: Type.Integer(),
  cursor: Type.Integer({ description: 'the newest cursor when the list was read: subscribe with since=cursor to follow on without a gap' })
})

export const EventJson = Type.Object({
  event_id: Type.String(),
  event_type: Type.String(),
  resource_id: Type.String(),
  resource_type: Type.String(),
  agent_id: Type.String(),
  session_id: Type.String(),
  payload: Type.Unknown(),
  timestamp: Type.String(),
  cursor: Type.Integer()
}, { additionalProperties: true })

export const EventsQuery = Type.Object({
  type: Type.Optional(EventTypeSchema),
  resource_id: Type.Optional(AnyResourceId),
  since: Type.Optional(Type.Integer({ minimum: 0 })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 }))
}, { additionalProperties: false })

export const EventsResponse = Type.Object({
  events: Type.Array(EventJson),
  next_cursor: Type.Union([Type.Integer(), Type.Null()]),
  /** The database's identity: cursors from another epoch mean nothing here (it was rebuilt). */
  epoch: Type.String()
})

export const StaticParams = Type.Object({
  file: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_-]*\\.(html|js|css|svg|png|ico)$', maxLength: 128 })
})

export const AnyObject = Type.Object({}, { additionalProperties: true })

export const ClaimBody = Type.Object({
  ttl_s: Type.Optional(Type.Integer({ minimum: MIN_CLAIM_TTL_S, maximum: MAX_CLAIM_TTL_S, description: 'seconds the claim lasts unless renewed (default 300)' }))
}, { additionalProperties: false })

export const ClaimResponse = Type.Object({
  won: Type.Boolean(),
  holder: Type.Union([ClaimHolderJson, Type.Null()]),
  expires_at: Type.Union([Type.String(), Type.Null()])
})

export const ReleaseResponse = Type.Object({
  success: Type.Boolean(),
  holder: Type.Union([ClaimHolderJson, Type.Null()], { description: 'who holds the item after the release (null: nobody)' })
})

export const ReadyQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 }))
}, { additionalProperties: false })

export const ReadyResponse = Type.Object({
  features: Type.Array(FeatureJson),
  count: Type.Integer()
})

export const PresenceEntryJson = Type.Object({
  agent_id: Type.String(),
  session_id: Type.String(),
  writer: Type.String(),
  node: Type.String(),
  since: Type.String(),
  last_seen: Type.String(),
  claims: Type.Array(Type.String()),
  self: Type.Boolean()
})

export const PresenceResponse = Type.Object({ sessions: Type.Array(PresenceEntryJson) })
