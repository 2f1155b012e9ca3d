// `crosscast mcp`: a stdio MCP server (official TypeScript SDK) that is one
// agent session's long-lived node. stdout carries the protocol only; logs go
// to stderr. Tools are the agent operations; resources are the board and each
// item, with resources/updated notifications for subscribed ones.

import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import { SubscribeRequestSchema, UnsubscribeRequestSchema } from '@modelcontextprotocol/sdk/types.js'
import * as z from 'zod'
import pino from 'pino'
import type { BroadcastEvent } from '../events/types.ts'
import { isResourceId } from '../events/validate.ts'
import type { Crosscast } from '../sdk/crosscast.ts'
import { OPERATIONS, runOperation, errorBody, cursorsOf, itemView, type Operation, type OperationContext, type Param } from './operations.ts'
import { openAgentNode, type NodeFlags } from './node.ts'

const BOARD_URI = 'crosscast://board'
const itemUri = (id: string): string => `crosscast://items/${id}`
const NOTIFY_DELAY_MS = 50

function jsonSchemaOf (p: Param): Record<string, unknown> {
  const type = p.type === 'cursor' ? ['string', 'integer'] : p.type
  return { type, description: p.description, ...(p.enum === undefined ? {} : { enum: p.enum }) }
}

/**
 * The schema the client sees (types, enums, required) while accepting any
 * value: the operation checks arguments itself, so a bad one comes back as a
 * tool error with crosscast's code rather than the SDK's generic message.
 */
function inputSchema (op: Operation): z.ZodType {
  const shape: Record<string, z.ZodType> = {}
  for (const [name, p] of Object.entries(op.params)) shape[name] = z.unknown().optional().meta(jsonSchemaOf(p))
  const required = Object.entries(op.params).filter(([, p]) => p.required === true).map(([name]) => name)
  return z.looseObject(shape).meta(required.length > 0 ? { required } : {})
}

function text (value: unknown): { type: 'text', text: string } {
  return { type: 'text', text: JSON.stringify(value, null, 2) }
}

function board (cc: Crosscast): Record<string, unknown> {
  const items = [
    ...cc.state.features().map(f => ({ kind: 'feature', id: f.id, title: f.title, status: f.status, priority: f.priority, track_id: f.track_id })),
    ...cc.state.tracks().map(t => ({ kind: 'track', id: t.id, title: t.title })),
    ...cc.state.spikes().map(s => ({ kind: 'spike', id: s.id, title: s.title }))
  ]
  return { room: cc.room, items, count: items.length }
}

export function createMcpServer (ctx: OperationContext, version: string): McpServer {
  const { cc } = ctx
  const server = new McpServer({ name: 'crosscast', version }, {
    capabilities: { tools: {}, resources: { subscribe: true, listChanged: true } },
    instructions: 'crosscast shares work items (features, tracks, spikes) live between the agent sessions of this project. Call changes to see what other sessions did since you last looked, ready for work nobody holds, claim before starting on an item, and pass if_version (from get_item) to update_item so you never overwrite a change you have not seen.'
  })

  for (const op of OPERATIONS) {
    server.registerTool(op.name, {
      description: op.description,
      inputSchema: inputSchema(op) as never,
      annotations: { readOnlyHint: op.readOnly }
    }, (async (args: unknown) => {
      try {
        return { content: [text(await runOperation(ctx, op.name, args))] }
      } catch (err) {
        return { isError: true, content: [text(errorBody(err))] }
      }
    }) as never)
  }

  server.registerResource('board', BOARD_URI, { description: 'every feature, track and spike of the room', mimeType: 'application/json' },
    async (uri) => ({ contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(board(cc), null, 2) }] }))
  server.registerResource('item', new ResourceTemplate('crosscast://items/{id}', {
    list: async () => ({ resources: (board(cc).items as Array<{ id: string, title: string | null }>).map(i => ({ uri: itemUri(i.id), name: `${i.id} ${i.title ?? ''}`.trim(), mimeType: 'application/json' })) })
  }), { description: 'one item with its links, comments and version', mimeType: 'application/json' }, async (uri, vars) => {
    const id = String(vars.id)
    const body = isResourceId(id) ? (() => { try { return itemView(cc, id) } catch (err) { return errorBody(err) } })() : { code: 'INVALID_ID', message: `${id} is not an item id` }
    return { contents: [{ uri: uri.href, mimeType: 'application/json', text: JSON.stringify(body, null, 2) }] }
  })

  // Subscriptions: the SDK routes resources/subscribe to us; we notify from the node's commits.
  const subscribed = new Set<string>()
  server.server.setRequestHandler(SubscribeRequestSchema, async (req) => { subscribed.add(req.params.uri); return {} })
  server.server.setRequestHandler(UnsubscribeRequestSchema, async (req) => { subscribed.delete(req.params.uri); return {} })
  const changed = new Set<string>()
  let listChanged = false
  let timer: NodeJS.Timeout | null = null
  const flush = (): void => {
    timer = null
    if (!server.isConnected()) return
    const send = (uri: string): void => { server.server.sendResourceUpdated({ uri }).catch(() => {}) }
    if (subscribed.has(BOARD_URI)) send(BOARD_URI)
    for (const id of changed) if (subscribed.has(itemUri(id))) send(itemUri(id))
    if (listChanged) server.sendResourceListChanged()
    changed.clear()
    listChanged = false
  }
  const onEvents = (events: BroadcastEvent[]): void => {
    for (const e of events) {
      changed.add(e.resource_id)
      if (e.event_type === 'feature_created' || e.event_type === 'feature_deleted' || e.event_type === 'track_updated' || e.event_type === 'spike_updated') listChanged = true
    }
    timer ??= setTimeout(flush, NOTIFY_DELAY_MS)
  }
  cc.on('events', onEvents)
  server.server.onclose = () => {
    cc.off('events', onEvents)
    if (timer !== null) clearTimeout(timer)
  }
  return server
}

export interface McpFlags extends NodeFlags { logLevel?: string }

/** Runs until stdin closes (the client went away) or a signal; then closes everything and exits. */
export async function runMcp (flags: McpFlags, version: string): Promise<void> {
  const logger = pino({ level: flags.logLevel ?? 'warn' }, pino.destination(2))
  const node = await openAgentNode(flags, logger, { serveSocket: true, kind: 'mcp' })
  const { cc } = node
  const ctx: OperationContext = { cc, sessionId: cc.sessionId, agent: cc.agent, session: async () => await cc.session({ sessionId: cc.sessionId }), cursors: cursorsOf(cc) }
  const server = createMcpServer(ctx, version)
  let stopping = false
  const stop = (reason: string): void => {
    if (stopping) return
    stopping = true
    logger.info({ reason }, 'crosscast mcp stopping')
    const forced = setTimeout(() => process.exit(1), 10_000)
    forced.unref()
    server.close().catch(() => {})
      .then(async () => await node.close())
      .then(() => process.exit(0), (err: unknown) => { logger.error({ err }, 'shutdown failed'); process.exit(1) })
  }
  process.stdin.once('end', () => stop('stdin closed'))
  process.stdin.once('close', () => stop('stdin closed'))
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))
  await server.connect(new StdioServerTransport())
  logger.info({ room: node.identity.room, session: cc.sessionId, agent: cc.agent, storage: cc.storage, socket: node.gateway?.socketPath }, 'crosscast mcp ready')
}
