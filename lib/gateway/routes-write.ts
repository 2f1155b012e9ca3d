// REST writes: the seed's three /api/broadcast routes with its request and
// response shapes, and beside them create, delete, comments, tracks, spikes and
// a batch. Every route checks everything first; a failing request writes nothing.

import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { EventDraft } from '../index.ts'
import { CrosscastError } from '../errors.ts'
import { validateDraft, resourceTypeOf } from '../events/validate.ts'
import type { EventType, Status } from '../events/types.ts'
import {
  WriteHeaders, ErrorResponse, WriteResponse, BatchResponse, FeatureParams, TrackParams, SpikeParams,
  FeatureCreateBody, FeatureUpdateBody, StatusBody, LinkBody, CommentBody, TrackBody, SpikeBody, BatchBody
} from './schemas.ts'
import { writerOf, writeAs, writeResult, notFound, type GatewayContext, type Writer } from './context.ts'

const errors = { 400: ErrorResponse, 401: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse, 413: ErrorResponse }

function writeSchema (summary: string, parts: Record<string, unknown>, response: unknown = WriteResponse, okStatus = 200): Record<string, unknown> {
  return { summary, headers: WriteHeaders, ...parts, response: { [okStatus]: response, ...errors } }
}

const FEATURE_FIELDS = ['title', 'status', 'description', 'tags', 'priority', 'track_id'] as const

function pick (body: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const f of fields) if (body[f] !== undefined) out[f] = body[f]
  return out
}

interface IdRequest { params: { id: string } }

export function registerWriteRoutes (app: FastifyInstance, ctx: GatewayContext): void {
  const { cc } = ctx
  // The writer headers are checked before the body is looked at.
  const preValidation = async (req: FastifyRequest): Promise<void> => { (req as FastifyRequest & { writer: Writer }).writer = writerOf(req) }
  const writer = (req: FastifyRequest): Writer => (req as FastifyRequest & { writer: Writer }).writer

  async function existingFeature (id: string): Promise<NonNullable<Awaited<ReturnType<typeof cc.features.get>>>> {
    const feature = await cc.features.get(id)
    if (feature === null) throw notFound('feature', id)
    return feature
  }

  app.post('/api/broadcast/features', {
    schema: writeSchema('create a feature (feature_created)', { body: FeatureCreateBody }, WriteResponse, 201),
    preValidation
  }, async (req, reply) => {
    const id = cc.newId('feature')
    const payload = { status: 'todo', ...pick(req.body as Record<string, unknown>, FEATURE_FIELDS) }
    const events = await writeAs(ctx, writer(req), [{ event_type: 'feature_created', resource_id: id, payload } as EventDraft])
    reply.code(201)
    return await writeResult(ctx, events, id)
  })

  app.post('/api/broadcast/features/:id', {
    schema: writeSchema('update a feature (feature_updated, plus status_changed when the status moves); on an id that does not exist yet, create it (feature_created; title required), as the seed\'s "Update Feature" request expects', { params: FeatureParams, body: FeatureUpdateBody }),
    preValidation
  }, async (req) => {
    const { id } = (req as FastifyRequest & IdRequest).params
    const body = req.body as Record<string, unknown>
    const current = await cc.features.get(id)
    if (current === null) {
      if (body.title === undefined) throw new CrosscastError('MISSING_FIELD', `feature ${id} does not exist yet: title is required to create it`, { field: 'title' })
      const payload = { status: 'todo', ...pick(body, FEATURE_FIELDS) }
      return await writeResult(ctx, await writeAs(ctx, writer(req), [{ event_type: 'feature_created', resource_id: id, payload } as EventDraft]), id)
    }
    const drafts: EventDraft[] = [{ event_type: 'feature_updated', resource_id: id, payload: pick(body, FEATURE_FIELDS) } as EventDraft]
    if (body.status !== undefined && body.status !== current.status) {
      drafts.push({ event_type: 'status_changed', resource_id: id, payload: { old_status: current.status as Status, new_status: body.status as Status } })
    }
    return await writeResult(ctx, await writeAs(ctx, writer(req), drafts), id)
  })

  app.post('/api/broadcast/features/:id/status', {
    schema: writeSchema('change a feature\'s status (status_changed); the response carries old_status and new_status', { params: FeatureParams, body: StatusBody }),
    preValidation
  }, async (req) => {
    const { id } = (req as FastifyRequest & IdRequest).params
    const { new_status: newStatus } = req.body as { new_status: Status }
    const current = await existingFeature(id)
    const change = { old_status: current.status as Status, new_status: newStatus }
    const events = await writeAs(ctx, writer(req), [{ event_type: 'status_changed', resource_id: id, payload: change }])
    return { ...await writeResult(ctx, events, id), ...change }
  })

  app.post('/api/broadcast/features/:id/links', {
    schema: writeSchema('link a feature to another (link_added)', { params: FeatureParams, body: LinkBody }),
    preValidation
  }, async (req) => {
    const { id } = (req as FastifyRequest & IdRequest).params
    await existingFeature(id)
    const events = await writeAs(ctx, writer(req), [{ event_type: 'link_added', resource_id: id, payload: req.body } as EventDraft])
    return await writeResult(ctx, events, id)
  })

  app.post('/api/broadcast/features/:id/comments', {
    schema: writeSchema('comment on a feature (comment_added)', { params: FeatureParams, body: CommentBody }),
    preValidation
  }, async (req) => {
    const { id } = (req as FastifyRequest & IdRequest).params
    const body = req.body as { comment_text: string, author?: string }
    await existingFeature(id)
    const w = writer(req)
    const events = await writeAs(ctx, w, [{ event_type: 'comment_added', resource_id: id, payload: { comment_text: body.comment_text, author: body.author ?? w.agent } }])
    return await writeResult(ctx, events, id)
  })

  app.delete('/api/broadcast/features/:id', {
    schema: writeSchema('delete a feature (feature_deleted)', { params: FeatureParams }),
    preValidation
  }, async (req) => {
    const { id } = (req as FastifyRequest & IdRequest).params
    await existingFeature(id)
    const events = await writeAs(ctx, writer(req), [{ event_type: 'feature_deleted', resource_id: id, payload: { feature_id: id } }])
    return await writeResult(ctx, events, id)
  })

  app.post('/api/broadcast/tracks/:id', {
    schema: writeSchema('create or update a track (track_updated); a new track needs a title', { params: TrackParams, body: TrackBody }),
    preValidation
  }, async (req) => {
    const { id } = (req as FastifyRequest & IdRequest).params
    const body = req.body as { title?: string }
    if (body.title === undefined && (await cc.tracks.get(id)) === null) {
      throw new CrosscastError('MISSING_FIELD', `track ${id} does not exist yet: title is required to create it`, { field: 'title' })
    }
    const events = await writeAs(ctx, writer(req), [{ event_type: 'track_updated', resource_id: id, payload: pick(body, ['title', 'description']) }])
    return await writeResult(ctx, events, id)
  })

  app.post('/api/broadcast/spikes/:id', {
    schema: writeSchema('create or update a spike (spike_updated); a new spike needs a title', { params: SpikeParams, body: SpikeBody }),
    preValidation
  }, async (req) => {
    const { id } = (req as FastifyRequest & IdRequest).params
    const body = req.body as { title?: string }
    if (body.title === undefined && (await cc.spikes.get(id)) === null) {
      throw new CrosscastError('MISSING_FIELD', `spike ${id} does not exist yet: title is required to create it`, { field: 'title' })
    }
    const events = await writeAs(ctx, writer(req), [{ event_type: 'spike_updated', resource_id: id, payload: pick(body, ['title', 'findings']) }])
    return await writeResult(ctx, events, id)
  })

  app.post('/api/broadcast/batch', {
    schema: writeSchema('write many events in one block: all are checked first, then written together or not at all', { body: BatchBody }, BatchResponse),
    preValidation
  }, async (req) => {
    const w = writer(req)
    const { operations } = req.body as { operations: Array<{ event_type: EventType, resource_id?: string, payload: Record<string, unknown> }> }
    const drafts = await batchDrafts(ctx, w, operations)
    const events = await writeAs(ctx, w, drafts)
    const result = await writeResult(ctx, events, drafts[0].resource_id)
    return { success: true, event_ids: result.event_ids, resource_ids: drafts.map(d => d.resource_id), clients_notified: result.clients_notified, timestamp: result.timestamp }
  })
}

/**
 * Turns batch operations into drafts, checking each against the state as the
 * earlier operations of the same batch will have left it.
 */
async function batchDrafts (ctx: GatewayContext, w: Writer, operations: Array<{ event_type: EventType, resource_id?: string, payload: Record<string, unknown> }>): Promise<EventDraft[]> {
  const { cc } = ctx
  // feature id → its status after the operations seen so far; null = deleted in this batch
  const features = new Map<string, Status | null>()
  const statusOf = async (id: string): Promise<Status | null> => {
    if (!features.has(id)) features.set(id, ((await cc.features.get(id))?.status as Status | undefined) ?? null)
    return features.get(id) ?? null
  }
  const upserted = new Set<string>()
  const drafts: EventDraft[] = []
  for (const [i, op] of operations.entries()) {
    const field = `operations[${i}]`
    try {
      if (op.event_type === 'claim_added' || op.event_type === 'claim_released') {
        throw new CrosscastError('INVALID_EVENT_TYPE', `${op.event_type} is written by POST and DELETE /api/broadcast/features/:id/claim (tracks, spikes alike), which check who holds the item`, { field: 'event_type' })
      }
      const payload = { ...op.payload }
      let resourceId = op.resource_id
      if (op.event_type === 'feature_created') {
        resourceId ??= cc.newId('feature')
        if ((await statusOf(resourceId)) !== null) throw new CrosscastError('INVALID_FIELD', `feature ${resourceId} already exists`, { field: 'resource_id' })
      } else if (resourceId === undefined) {
        throw new CrosscastError('MISSING_FIELD', 'resource_id is required except on feature_created', { field: 'resource_id' })
      }
      const draft = validateDraft({ event_type: op.event_type, resource_id: resourceId, payload: op.event_type === 'comment_added' ? { author: w.agent, ...payload } : payload, agent_id: w.agent } as EventDraft)
      const type = resourceTypeOf(resourceId)
      if (op.event_type === 'feature_created') {
        features.set(resourceId, ((draft.payload as { status?: Status }).status ?? 'todo'))
      } else if (type === 'feature') {
        const status = await statusOf(resourceId)
        if (status === null) throw notFound('feature', resourceId, 'resource_id')
        const p = draft.payload as { status?: Status, new_status?: Status, old_status?: Status | null }
        if (op.event_type === 'status_changed') {
          if (op.payload.old_status === undefined) p.old_status = status
          features.set(resourceId, p.new_status as Status)
        } else if (op.event_type === 'feature_updated' && p.status !== undefined) {
          features.set(resourceId, p.status)
        } else if (op.event_type === 'feature_deleted') {
          features.set(resourceId, null)
        }
      } else if (op.event_type === 'track_updated' || op.event_type === 'spike_updated') {
        upserted.add(resourceId)
      } else if (op.event_type === 'comment_added' && !upserted.has(resourceId)) {
        const exists = type === 'track' ? await cc.tracks.get(resourceId) : await cc.spikes.get(resourceId)
        if (exists === null) throw notFound(type, resourceId, 'resource_id')
      }
      drafts.push(draft)
    } catch (err) {
      if (!(err instanceof CrosscastError)) throw err
      const inner = err.field === undefined ? field : `${field}.${err.field}`
      throw new CrosscastError(err.code, `${field}: ${err.message}`, { field: inner, allowed: err.allowed })
    }
  }
  return drafts
}
