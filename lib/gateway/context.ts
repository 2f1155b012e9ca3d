// What every route module shares: the node, the WebSocket hub, the counters,
// and the one way a REST request writes (as its X-Agent-ID in its X-Session-ID's log).

import type { FastifyRequest } from 'fastify'
import type { Crosscast, BroadcastEvent, EventDraft } from '../index.ts'
import { CrosscastError } from '../errors.ts'
import { validateLabel, validateDraft, resourceTypeOf } from '../events/validate.ts'
import { conflict } from '../sdk/resources.ts'
import type { BroadcastHub } from './ws-hub.ts'
import type { GatewayCounters } from './metrics.ts'
import type { Logger } from './logger.ts'
import type { GatewaySessions } from './sessions.ts'

/** Sessions remembered for the active-sessions metric. */
const WRITE_SESSIONS_MEMORY = 10_000

export interface GatewayContext {
  cc: Crosscast
  hub: BroadcastHub
  sessions: GatewaySessions
  counters: GatewayCounters
  logger: Logger
}

export interface Writer {
  agent: string
  sessionId: string
  /** If-Match: the item version the client read ('*': any, as long as the item exists), or null. */
  ifMatch?: string | null
}

export interface WriteResult {
  success: true
  feature_id?: string
  resource_id: string
  event_id: string
  event_ids: string[]
  clients_notified: number
  timestamp: string
}

function header (req: FastifyRequest, name: string, display: string): string {
  const raw = req.headers[name]
  try {
    return validateLabel(Array.isArray(raw) ? undefined : raw, display)
  } catch {
    const problem = raw === undefined ? 'is required on writes' : 'must be 1 to 128 characters of letters, digits and . _ : @ + - (starting with a letter or digit)'
    throw new CrosscastError('INVALID_HEADER', `header ${display} ${problem}`, { field: display })
  }
}

function ifMatchOf (req: FastifyRequest): string | null {
  const raw = req.headers['if-match']
  if (raw === undefined) return null
  // Quotes are optional (an ETag is quoted, a version pasted from JSON is not); a weak W/ prefix means the same here.
  const value = typeof raw === 'string' ? raw.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1') : ''
  if (!/^[\x21-\x7e]{1,128}$/.test(value)) {
    throw new CrosscastError('INVALID_HEADER', 'header If-Match must be one item version as read (its `version` field, quotes optional) or *', { field: 'If-Match' })
  }
  return value
}

/** Checked before the body so a request with a bad header is refused for its header. */
export function writerOf (req: FastifyRequest): Writer {
  return { agent: header(req, 'x-agent-id', 'X-Agent-ID'), sessionId: header(req, 'x-session-id', 'X-Session-ID'), ifMatch: ifMatchOf(req) }
}

/** The item as a read route returns it, for a CONFLICT body. */
function currentItem (cc: Crosscast, id: string): unknown {
  const type = resourceTypeOf(id)
  return type === 'feature' ? cc.state.feature(id) : type === 'track' ? cc.state.track(id) : cc.state.spike(id)
}

/**
 * If-Match: the version is compared and the append started in one step, and
 * conditional writes to one item run one after another on this node, so two
 * requests holding the same version cannot both succeed.
 */
async function appendIfMatch (ctx: GatewayContext, drafts: EventDraft[], ifMatch: string, append: () => Promise<BroadcastEvent[]>): Promise<BroadcastEvent[]> {
  const ids = new Set(drafts.map(d => d.resource_id))
  if (ids.size !== 1) throw new CrosscastError('INVALID_HEADER', 'header If-Match applies to the routes of one item (/api/broadcast/features/:id and below, tracks/:id, spikes/:id)', { field: 'If-Match' })
  const [id] = ids
  return await ctx.cc.state.serialize(id, async () => {
    const now = ctx.cc.state.version(id)
    if (now === null) throw new CrosscastError('CONFLICT', `${id} does not exist, so it cannot be at version ${ifMatch}`, { field: 'If-Match', current: null })
    if (ifMatch !== '*' && now !== ifMatch) throw conflict(id, ifMatch, now, currentItem(ctx.cc, id))
    return await append()
  })
}

/** Appends all drafts in one block of the writer's own session log (all or nothing). */
export async function writeAs (ctx: GatewayContext, writer: Writer, drafts: EventDraft[]): Promise<BroadcastEvent[]> {
  // Checked before the session is opened: a refused request must not leave a new session log behind.
  // Checked once: the session's write path takes them as checked here (session.append would check them again).
  const valid = drafts.map(d => validateDraft({ ...d, agent_id: writer.agent }, ctx.cc.maxPayloadBytes))
  const events = await ctx.sessions.with(writer.sessionId, writer.agent, async (session) => {
    const append = (): Promise<BroadcastEvent[]> => ctx.cc._write(session, valid)
    return writer.ifMatch === undefined || writer.ifMatch === null ? await append() : await appendIfMatch(ctx, drafts, writer.ifMatch, append)
  })
  ctx.counters.restWrites++
  // Most recent last, so the map stays bounded even when no one reads the metrics that prune it.
  ctx.counters.writeSessions.delete(writer.sessionId)
  ctx.counters.writeSessions.set(writer.sessionId, Date.now())
  if (ctx.counters.writeSessions.size > WRITE_SESSIONS_MEMORY) ctx.counters.writeSessions.delete(ctx.counters.writeSessions.keys().next().value as string)
  return events
}

/** The seed's response; clients_notified counts the WebSocket clients the fan-out reached. */
export async function writeResult (ctx: GatewayContext, events: BroadcastEvent[], resourceId: string): Promise<WriteResult> {
  // Fan-out to subscribers runs as the block is projected; let it finish before counting.
  await new Promise(resolve => setImmediate(resolve))
  const ids = events.map(e => e.event_id)
  // The seed's field order first, then what crosscast adds.
  return {
    success: true,
    ...(resourceId.startsWith('feat-') ? { feature_id: resourceId } : {}),
    event_id: ids[0],
    clients_notified: ctx.hub.notifiedBy(ids),
    timestamp: events[0].timestamp,
    resource_id: resourceId,
    event_ids: ids
  }
}

export function notFound (kind: string, id: string, field = 'id'): CrosscastError {
  return new CrosscastError('NOT_FOUND', `${kind} ${id} does not exist (or was deleted)`, { field })
}
