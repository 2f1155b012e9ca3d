// The agent operations (lib/agents/operations.ts) over HTTP: what the CLI
// calls on a running node through its local socket, with the same arguments,
// results and errors as the MCP tools. Writes go to the X-Session-ID's log.

import type { FastifyInstance, FastifyRequest, FastifyReply } from 'fastify'
import { Type } from 'typebox'
import { ErrorResponse, WriteHeaders, AnyObject } from './schemas.ts'
import { writerOf, type GatewayContext } from './context.ts'
import { OPERATIONS, runOperation, errorBody, cursorsOf } from '../agents/operations.ts'
import { CrosscastError } from '../errors.ts'
import type { CrosscastSession } from '../sdk/crosscast.ts'

export function registerAgentRoutes (app: FastifyInstance, ctx: GatewayContext): void {
  for (const op of OPERATIONS) {
    app.post(`/api/agents/${op.name}`, {
      schema: { summary: `agent operation ${op.name}: ${op.description}`, headers: WriteHeaders },
      config: { responses: { 200: AnyObject, 400: ErrorResponse, 404: ErrorResponse, 409: Type.Object({ code: Type.String(), message: Type.String(), current: Type.Optional(AnyObject) }) } }
    }, async (req: FastifyRequest, reply: FastifyReply) => {
      const writer = writerOf(req)
      const session = async (): Promise<CrosscastSession> => await ctx.cc.session({ sessionId: writer.sessionId, agent: writer.agent })
      try {
        return await runOperation({ cc: ctx.cc, sessionId: writer.sessionId, agent: writer.agent, session, cursors: cursorsOf(ctx.cc) }, op.name, req.body ?? {})
      } catch (err) {
        if (!(err instanceof CrosscastError) || err.httpStatus >= 500) throw err
        ctx.counters.restErrors++
        return await reply.code(err.httpStatus).send(errorBody(err))
      }
    })
  }
}
