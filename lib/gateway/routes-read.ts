// REST reads: current state (features, tracks, spikes), the audit trail
// (broadcast_events, paginated by cursor), metrics and health.

import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import type { EventType } from '../events/types.ts'
import type { Crosscast } from '../index.ts'
import {
  ErrorResponse, FeatureParams, TrackParams, SpikeParams, FeatureJson, FeatureListQuery, FeatureListResponse,
  EventsQuery, EventsResponse, AnyObject
} from './schemas.ts'
import { notFound, type GatewayContext } from './context.ts'
import { collectMetrics, prometheusText } from './metrics.ts'

const errors = { 400: ErrorResponse, 401: ErrorResponse, 404: ErrorResponse }

interface IdRequest { params: { id: string } }

/**
 * Features as every route returns them: fields and links, plus comments and
 * live claim, each read for the whole list in one query.
 */
export function featuresJson (cc: Crosscast, features: ReadonlyArray<{ id: string, toJSON (): object }>): Array<Record<string, unknown>> {
  const ids = features.map(f => f.id)
  const comments = cc.state.commentsOf(ids)
  const claims = cc._claims.holdersOf(ids)
  return features.map(f => {
    // toJSON() hands out a fresh object; adding to it is several times cheaper than a spread.
    const json = f.toJSON() as Record<string, unknown>
    json.comments = comments.get(f.id) ?? []
    json.claim = claims.get(f.id) ?? null
    return json
  })
}


/** Read schemas document the SDK's objects; they are not used to serialize, so nothing gets dropped. */
function readSchema (summary: string, parts: Record<string, unknown>): Record<string, unknown> {
  return { summary, ...parts }
}

export function registerReadRoutes (app: FastifyInstance, ctx: GatewayContext): void {
  const { cc } = ctx
  const newestCursor = cc.db.prepare('SELECT coalesce(max(cursor), 0) AS cursor FROM broadcast_events')

  app.get('/api/features', {
    schema: readSchema('list features (optionally by status or track)', { querystring: FeatureListQuery }),
    config: { responses: { 200: FeatureListResponse, ...errors } }
  }, async (req) => {
    const query = req.query as { status?: string, track?: string }
    // Read the cursor before the state: replaying from it can only repeat, never miss.
    const { cursor } = newestCursor.get() as { cursor: number }
    const features = await cc.features.list(query as Parameters<typeof cc.features.list>[0])
    return { features: featuresJson(cc, features), count: features.length, cursor }
  })

  app.get('/api/features/:id', {
    schema: readSchema('one feature', { params: FeatureParams }),
    config: { responses: { 200: FeatureJson, ...errors } }
  }, async (req) => {
    const { id } = (req as FastifyRequest & IdRequest).params
    const feature = await cc.features.get(id)
    if (feature === null) throw notFound('feature', id)
    return featuresJson(cc, [feature])[0]
  })

  // Tracks and spikes: the same two routes over each collection.
  for (const item of [
    { kind: 'track', plural: 'tracks', params: TrackParams, collection: cc.tracks },
    { kind: 'spike', plural: 'spikes', params: SpikeParams, collection: cc.spikes }
  ] as const) {
    app.get(`/api/${item.plural}`, {
      schema: readSchema(`list ${item.plural}`, {}),
      config: { responses: { 200: Type.Object({ [item.plural]: Type.Array(AnyObject), count: Type.Integer() }), ...errors } }
    }, async () => {
      const list: Array<{ toJSON (): unknown }> = await item.collection.list()
      return { [item.plural]: list.map(x => x.toJSON()), count: list.length }
    })

    app.get(`/api/${item.plural}/:id`, {
      schema: readSchema(`one ${item.kind}`, { params: item.params }),
      config: { responses: { 200: AnyObject, ...errors } }
    }, async (req) => {
      const { id } = (req as FastifyRequest & IdRequest).params
      const found: { toJSON (): object } | null = await item.collection.get(id)
      if (found === null) throw notFound(item.kind, id)
      return { ...found.toJSON(), claim: cc.claimOf(id) }
    })
  }

  app.get('/api/events', {
    schema: readSchema('the audit trail (broadcast_events) in cursor order; pass next_cursor back as since for the next page', { querystring: EventsQuery }),
    config: { responses: { 200: EventsResponse, ...errors } }
  }, async (req) => {
    const q = req.query as { type?: EventType, resource_id?: string, since?: number, limit?: number }
    return cc.listEvents({ type: q.type, resourceId: q.resource_id, since: q.since, limit: q.limit })
  })

  app.get('/api/metrics', {
    schema: readSchema('gateway and node metrics as JSON', {}),
    config: { responses: { 200: AnyObject } }
  }, async () => collectMetrics(cc, ctx.hub.snapshot(), ctx.counters))

  app.get('/metrics', {
    schema: readSchema('the same metrics in Prometheus text format', {}),
    config: { responses: { 200: Type.String() } }
  }, async (_req, reply) => {
    reply.type('text/plain; version=0.0.4; charset=utf-8')
    return prometheusText(collectMetrics(cc, ctx.hub.snapshot(), ctx.counters))
  })

  app.get('/healthz', {
    schema: readSchema('liveness', {}),
    config: { responses: { 200: Type.Object({ ok: Type.Boolean(), room: Type.String(), session_id: Type.String() }) } }
  }, async () => ({ ok: true, room: cc.room, session_id: cc.sessionId }))
}
