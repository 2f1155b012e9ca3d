// REST for claims, ready work and presence: claim and release any item as the
// request's X-Session-ID, list features ready to start, list who is online.

import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify'
import {
  WriteHeaders, ErrorResponse, FeatureParams, TrackParams, SpikeParams, ClaimBody, ClaimResponse, ReleaseResponse,
  ReadyQuery, ReadyResponse, PresenceResponse
} from './schemas.ts'
import { writerOf, type GatewayContext, type Writer } from './context.ts'
import { featuresJson } from './routes-read.ts'

const errors = { 400: ErrorResponse, 401: ErrorResponse, 404: ErrorResponse, 409: ErrorResponse }

interface IdRequest { params: { id: string } }

export function registerClaimRoutes (app: FastifyInstance, ctx: GatewayContext): void {
  const { cc } = ctx
  const preValidation = async (req: FastifyRequest): Promise<void> => { (req as FastifyRequest & { writer: Writer }).writer = writerOf(req) }
  const sessionOf = async (req: FastifyRequest) => {
    const w = (req as FastifyRequest & { writer: Writer }).writer
    return await cc.session({ sessionId: w.sessionId, agent: w.agent })
  }

  for (const item of [
    { plural: 'features', params: FeatureParams },
    { plural: 'tracks', params: TrackParams },
    { plural: 'spikes', params: SpikeParams }
  ] as const) {
    app.post(`/api/broadcast/${item.plural}/:id/claim`, {
      schema: {
        summary: `claim a ${item.plural.slice(0, -1)} for X-Session-ID (claim_added); 409 CLAIMED names the holder. POST again to renew; only the node's own session is renewed automatically`,
        headers: WriteHeaders,
        params: item.params,
        body: ClaimBody,
        response: { 200: ClaimResponse, ...errors }
      },
      preValidation: async (req) => {
        await preValidation(req)
        // `curl -X POST …/claim` with no body at all means the defaults.
        req.body ??= {}
      }
    }, async (req) => {
      const { id } = (req as FastifyRequest & IdRequest).params
      const body = req.body as { ttl_s?: number }
      const session = await sessionOf(req)
      // A REST client may go away without a word: its claims lapse after ttl_s unless it claims again.
      return await session.claim(id, { ttlS: body.ttl_s, renew: session.sessionId === cc.sessionId })
    })

    app.delete(`/api/broadcast/${item.plural}/:id/claim`, {
      schema: {
        summary: `release X-Session-ID's claim on a ${item.plural.slice(0, -1)} (claim_released; nothing is written when it holds none)`,
        headers: WriteHeaders,
        params: item.params,
        response: { 200: ReleaseResponse, ...errors }
      },
      preValidation
    }, async (req) => {
      const { id } = (req as FastifyRequest & IdRequest).params
      const session = await sessionOf(req)
      await session.release(id)
      return { success: true, holder: cc.claimOf(id) }
    })
  }

  app.get('/api/ready', {
    schema: { summary: 'features ready to start: todo, dependencies done, no live claim; by priority then age', querystring: ReadyQuery } as FastifySchema,
    config: { responses: { 200: ReadyResponse, ...errors } }
  }, async (req) => {
    const { limit } = req.query as { limit?: number }
    const features = featuresJson(cc, cc.ready({ limit }))
    return { features, count: features.length }
  })

  app.get('/api/presence', {
    schema: { summary: 'sessions online now (this node\'s first), with the items each holds' } as FastifySchema,
    config: { responses: { 200: PresenceResponse } }
  }, async () => ({ sessions: cc.presence() }))
}
