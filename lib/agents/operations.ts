// The operations agents use, one definition each: the MCP tools, the CLI and
// the gateway's /api/agents routes all run these, so every interface has the
// same arguments, results and errors. Arguments are checked here (not by the
// MCP SDK's schema) so a bad one is refused with crosscast's code and message.

import { CrosscastError } from '../errors.ts'
import { STATUSES, LINK_TYPES, PRIORITIES, RESOURCE_TYPES, type BroadcastEvent, type EventDraft, type LinkType, type Priority, type ResourceType, type Status } from '../events/types.ts'
import { validateId, validateStatus, validateLinkType, resourceTypeOf, MIN_CLAIM_TTL_S, MAX_CLAIM_TTL_S } from '../events/validate.ts'
import { EVENT_COLUMNS, rowToEvent } from '../projection/queries.ts'
import type { Crosscast, CrosscastSession } from '../sdk/crosscast.ts'
import type { ClaimHolder } from '../sdk/claims.ts'

export interface Param {
  type: 'string' | 'integer' | 'boolean' | 'cursor'
  description: string
  required?: boolean
  enum?: readonly string[]
  /** Domain check with crosscast's own code (INVALID_STATUS, INVALID_ID, ...); returns the value to use. */
  check?: (value: unknown, field: string) => unknown
  min?: number
  max?: number
}

export interface OperationContext {
  cc: Crosscast
  sessionId: string
  agent: string
  /** The session's log, opened on the first write (a read must not create a log). */
  session: () => Promise<CrosscastSession>
  /** Each session's last `changes` cursor, kept by the node. */
  cursors: Map<string, number>
}

type Args = Record<string, unknown>

export interface Operation {
  name: string
  description: string
  params: Record<string, Param>
  /** Writes nothing: safe to answer from any node. */
  readOnly: boolean
  run: (ctx: OperationContext, args: Args) => Promise<unknown> | unknown
}

const KINDS = RESOURCE_TYPES
const DEFAULT_LIST_LIMIT = 100
const DEFAULT_CHANGES_LIMIT = 100

function invalid (field: string, message: string, allowed?: readonly string[]): CrosscastError {
  return new CrosscastError('INVALID_FIELD', `${field} ${message}`, { field, allowed })
}

function notFound (id: string): CrosscastError {
  return new CrosscastError('NOT_FOUND', `${resourceTypeOf(id)} ${id} does not exist (or was deleted)`, { field: 'id' })
}

const anyId = (v: unknown, f: string): string => validateId(v, f)
const featureId = (v: unknown, f: string): string => validateId(v, f, 'feature')

function oneOf (allowed: readonly string[], code: 'INVALID_FIELD' | 'INVALID_STATUS' | 'INVALID_LINK_TYPE' = 'INVALID_FIELD') {
  return (value: unknown, field: string): string => {
    if (code === 'INVALID_STATUS') return validateStatus(value, field)
    if (code === 'INVALID_LINK_TYPE') return validateLinkType(value, field)
    if (typeof value !== 'string' || !allowed.includes(value)) throw invalid(field, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`, allowed)
    return value
  }
}

/** Checks arguments against an operation's parameters; unknown ones are refused, naming the allowed ones. */
export function checkArgs (op: Operation, input: unknown): Args {
  if (input === undefined || input === null) input = {}
  if (typeof input !== 'object' || Array.isArray(input)) throw invalid('arguments', 'must be an object')
  const args = input as Args
  const names = Object.keys(op.params)
  for (const key of Object.keys(args)) {
    if (!(key in op.params)) throw new CrosscastError('INVALID_FIELD', `${op.name} has no argument ${key}; its arguments: ${names.join(', ') || '(none)'}`, { field: key, allowed: names })
  }
  const out: Args = {}
  for (const [name, p] of Object.entries(op.params)) {
    let value = args[name]
    if (value === undefined || value === null) {
      if (p.required === true) throw new CrosscastError('MISSING_FIELD', `${op.name} needs ${name}: ${p.description}`, { field: name })
      continue
    }
    if (p.type === 'string' && (typeof value !== 'string' || (p.required === true && value.trim() === ''))) throw invalid(name, `must be a non-empty string, got ${JSON.stringify(value)}`)
    if (p.type === 'boolean' && typeof value !== 'boolean') throw invalid(name, `must be true or false, got ${JSON.stringify(value)}`)
    if (p.type === 'integer') {
      if (typeof value === 'string' && /^\d+$/.test(value)) value = Number(value)
      if (typeof value !== 'number' || !Number.isInteger(value) || value < (p.min ?? 0) || value > (p.max ?? Number.MAX_SAFE_INTEGER)) {
        throw invalid(name, `must be an integer from ${p.min ?? 0} to ${p.max ?? Number.MAX_SAFE_INTEGER}, got ${JSON.stringify(value)}`)
      }
    }
    out[name] = p.check === undefined ? value : p.check(value, name)
  }
  return out
}

// ---- reads ----

function record (cc: Crosscast, id: string): Record<string, unknown> | null {
  const kind = resourceTypeOf(id)
  const r = kind === 'feature' ? cc.state.feature(id) : kind === 'track' ? cc.state.track(id) : cc.state.spike(id)
  return r === null ? null : { kind, ...r }
}

/** An item as agents see it: its fields (links on features) and version, comments and claim. */
export function itemView (cc: Crosscast, id: string): Record<string, unknown> {
  const r = record(cc, id)
  if (r === null) throw notFound(id)
  return { ...r, comments: cc.state.comments(id).map(c => ({ event_id: c.event_id, text: c.comment_text, author: c.author, agent_id: c.agent_id, session_id: c.session_id, created_at: c.created_at })), claim: cc.claimOf(id) }
}

function listItems (cc: Crosscast, args: Args): { items: Array<Record<string, unknown>>, count: number } {
  const kind = args.kind as ResourceType | undefined
  if (kind !== undefined && kind !== 'feature' && (args.status !== undefined || args.track_id !== undefined)) {
    throw invalid(args.status !== undefined ? 'status' : 'track_id', `filters features only; ${kind}s have none`)
  }
  let items: Array<Record<string, unknown>> = []
  if (kind === undefined || kind === 'feature') {
    for (const f of cc.state.features({ status: args.status as string | undefined, track: args.track_id as string | undefined })) items.push({ kind: 'feature', ...f })
  }
  const featuresOnly = args.status !== undefined || args.track_id !== undefined
  if (!featuresOnly && (kind === undefined || kind === 'track')) for (const t of cc.state.tracks()) items.push({ kind: 'track', ...t })
  if (!featuresOnly && (kind === undefined || kind === 'spike')) for (const s of cc.state.spikes()) items.push({ kind: 'spike', ...s })
  const holders = cc._claims.holders()
  items = items.map(i => ({ ...i, claim: holders.get(i.id as string) ?? null }))
  if (args.claimed_by !== undefined) {
    const who = args.claimed_by as string
    items = items.filter(i => { const h = i.claim as ClaimHolder | null; return h !== null && (h.agent_id === who || h.session_id === who) })
  }
  const limit = (args.limit as number | undefined) ?? DEFAULT_LIST_LIMIT
  return { items: items.slice(0, limit), count: items.length }
}

// ---- cursors ----

function epochOf (cc: Crosscast): string | null {
  // The core stream adds cc.epoch (a database's identity); until then cursors carry none.
  const epoch = (cc as unknown as { epoch?: unknown }).epoch
  return typeof epoch === 'string' ? epoch : null
}

function formatCursor (cc: Crosscast, n: number): string {
  const epoch = epochOf(cc)
  return epoch === null ? String(n) : `${epoch}:${n}`
}

function parseCursor (value: unknown, field: string): { epoch: string | null, n: number } {
  const bad = (): never => { throw new CrosscastError('INVALID_CURSOR', `${field} must be a cursor returned by changes (e.g. "${'3f2a9c1e'}:42" or 42), got ${JSON.stringify(value)}`, { field }) }
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? { epoch: null, n: value } : bad()
  if (typeof value !== 'string') return bad()
  const m = /^(?:([A-Za-z0-9_-]{1,128}):)?(\d{1,16})$/.exec(value)
  if (m === null) return bad()
  return { epoch: m[1] ?? null, n: Number(m[2]) }
}

function compactEvent (e: BroadcastEvent): Record<string, unknown> {
  return { cursor: e.cursor, event_id: e.event_id, event_type: e.event_type, resource_id: e.resource_id, agent_id: e.agent_id, session_id: e.session_id, payload: e.payload, timestamp: e.timestamp }
}

function changes (ctx: OperationContext, args: Args): Record<string, unknown> {
  const { cc, sessionId } = ctx
  const epoch = epochOf(cc)
  let since: number
  let reset: Record<string, unknown> | undefined
  if (args.since !== undefined) {
    const parsed = parseCursor(args.since, 'since')
    since = parsed.n
    if (parsed.epoch !== null && parsed.epoch !== epoch) {
      reset = { stale_epoch: parsed.epoch, epoch, message: `cursor ${String(args.since)} belongs to another database (epoch ${parsed.epoch}, this node's is ${String(epoch)}): replaying from the start` }
      since = 0
    }
  } else {
    since = ctx.cursors.get(sessionId) ?? 0
  }
  const limit = (args.limit as number | undefined) ?? DEFAULT_CHANGES_LIMIT
  const includeOwn = args.include_own === true
  const newest = (cc.db.prepare('SELECT coalesce(max(cursor), 0) AS c FROM broadcast_events').get() as { c: number }).c
  const rows = cc.db.prepare(`SELECT ${EVENT_COLUMNS} FROM broadcast_events WHERE cursor > ? AND (? OR session_id != ?) ORDER BY cursor LIMIT ?`)
    .all(since, includeOwn ? 1 : 0, sessionId, limit + 1) as Array<Record<string, unknown>>
  const more = rows.length > limit
  if (more) rows.length = limit
  const events = rows.map(rowToEvent)
  const next = more ? events[events.length - 1].cursor : Math.max(since, newest)
  ctx.cursors.set(sessionId, next)
  const out: Record<string, unknown> = { events: events.map(compactEvent), cursor: formatCursor(cc, next), more }
  if (reset !== undefined) out.reset = reset
  if (epoch === null) out.note = 'cursors are positions in this node\'s database; a cursor from another node or from before a reindex cannot be told apart yet'
  return out
}

// ---- writes ----

async function append (ctx: OperationContext, drafts: EventDraft[]): Promise<BroadcastEvent[]> {
  return await (await ctx.session()).append(drafts)
}

function written (cc: Crosscast, id: string, events: BroadcastEvent[]): { id: string, event_ids: string[], version: string | null } {
  // The item's version as read here now: the id to pass back as if_version.
  return { id, event_ids: events.map(e => e.event_id), version: cc.state.version(id) }
}

function requireItem (cc: Crosscast, id: string): Record<string, unknown> {
  const r = record(cc, id)
  if (r === null) throw notFound(id)
  return r
}

function onlyFor (kind: ResourceType, args: Args, fields: Record<ResourceType, readonly string[]>): void {
  for (const field of Object.keys(args)) {
    if (field === 'kind' || field === 'id' || field === 'if_version') continue
    if (!fields[kind].includes(field)) {
      const owners = KINDS.filter(k => fields[k].includes(field))
      throw invalid(field, `applies to ${owners.map(k => k + 's').join(' and ')}, not to ${kind}s`)
    }
  }
}

const CREATE_FIELDS: Record<ResourceType, readonly string[]> = {
  feature: ['title', 'status', 'description', 'priority', 'track_id'],
  track: ['title', 'description'],
  spike: ['title', 'findings']
}

async function createItem (ctx: OperationContext, args: Args): Promise<unknown> {
  const kind = args.kind as ResourceType
  onlyFor(kind, args, CREATE_FIELDS)
  const { cc } = ctx
  const session = await ctx.session()
  if (kind === 'feature') {
    const b = session.features.create(args.title as string)
    if (args.status !== undefined) b.setStatus(args.status as Status)
    if (args.description !== undefined) b.setDescription(args.description as string)
    if (args.priority !== undefined) b.setPriority(args.priority as Priority)
    if (args.track_id !== undefined) b.setTrack(args.track_id as string)
    const f = await b.save()
    return written(cc, f.id, f.lastEvents)
  }
  if (kind === 'track') {
    const b = session.tracks.create(args.title as string)
    if (args.description !== undefined) b.setDescription(args.description as string)
    const t = await b.save()
    return written(cc, t.id, t.lastEvents)
  }
  const b = session.spikes.create(args.title as string)
  if (args.findings !== undefined) b.setFindings(args.findings as string)
  const s = await b.save()
  return written(cc, s.id, s.lastEvents)
}

/** The SDK checks the version and appends in one step; its CONFLICT is re-worded for agents, with the whole current item. */
async function ifVersion<T> (cc: Crosscast, id: string, save: () => Promise<T>): Promise<T> {
  try {
    return await save()
  } catch (err) {
    if (!(err instanceof CrosscastError) || err.code !== 'CONFLICT') throw err
    throw new CrosscastError('CONFLICT', `${id} changed since the version you read (now ${String(cc.state.version(id))}): look at current, then retry with its version`, { field: 'if_version', current: itemView(cc, id) })
  }
}

async function updateItem (ctx: OperationContext, args: Args): Promise<unknown> {
  const { cc } = ctx
  const id = args.id as string
  const kind = resourceTypeOf(id)
  onlyFor(kind, args, { feature: [...CREATE_FIELDS.feature], track: CREATE_FIELDS.track, spike: CREATE_FIELDS.spike })
  requireItem(cc, id)
  const opts = { ifVersion: args.if_version as string | undefined }
  const session = await ctx.session()
  if (kind === 'feature') {
    const f = (await session.features.get(id))!
    if (args.title !== undefined) f.title = args.title as string
    if (args.status !== undefined) f.status = args.status as Status
    if (args.description !== undefined) f.description = args.description as string
    if (args.priority !== undefined) f.priority = args.priority as Priority
    if (args.track_id !== undefined) f.trackId = args.track_id as string
    await ifVersion(cc, id, async () => await f.save(opts))
    return written(cc, id, f.lastEvents)
  }
  const item = kind === 'track' ? (await session.tracks.get(id))! : (await session.spikes.get(id))!
  if (args.title !== undefined) item.title = args.title as string
  if (args.description !== undefined) (item as { description: string | null }).description = args.description as string
  if (args.findings !== undefined) (item as { findings: string | null }).findings = args.findings as string
  await ifVersion(cc, id, async () => await item.save(opts))
  return written(cc, id, item.lastEvents)
}

function featureOnly (id: string, what: string): void {
  const kind = resourceTypeOf(id)
  if (kind !== 'feature') throw new CrosscastError('INVALID_ID', `${what} applies to features only; ${id} is a ${kind}`, { field: 'id', allowed: ['feat-xxxxxxxx'] })
}

// ---- the operations ----

const statusParam = (required: boolean): Param => ({ type: 'string', enum: STATUSES, required, check: oneOf(STATUSES, 'INVALID_STATUS'), description: `feature status: ${STATUSES.join(', ')}` })
const priorityParam: Param = { type: 'string', enum: PRIORITIES, check: oneOf(PRIORITIES), description: `feature priority: ${PRIORITIES.join(', ')}` }
const trackParam: Param = { type: 'string', check: (v, f) => validateId(v, f, 'track'), description: 'the track (trk-xxxxxxxx) a feature belongs to' }
const idParam = (description = 'the item: feat-, trk- or spk- and its label'): Param => ({ type: 'string', required: true, check: anyId, description })

export const OPERATIONS: Operation[] = [
  {
    name: 'create_item',
    description: 'Create a feature, track or spike. Returns {id, event_ids, version}.',
    readOnly: false,
    params: {
      kind: { type: 'string', enum: KINDS, required: true, check: oneOf(KINDS), description: 'feature, track or spike' },
      title: { type: 'string', required: true, description: 'a short title' },
      status: statusParam(false),
      description: { type: 'string', description: 'features and tracks: longer text' },
      priority: priorityParam,
      track_id: trackParam,
      findings: { type: 'string', description: 'spikes: what was found' }
    },
    run: createItem
  },
  {
    name: 'update_item',
    description: 'Change fields of an item. With if_version (the version you read), refused with CONFLICT and the current item when it changed since.',
    readOnly: false,
    params: {
      id: idParam(),
      title: { type: 'string', description: 'new title' },
      description: { type: 'string', description: 'features and tracks: new description' },
      status: statusParam(false),
      priority: priorityParam,
      track_id: trackParam,
      findings: { type: 'string', description: 'spikes: new findings' },
      if_version: { type: 'string', description: 'only update when the item is still at this version (from get_item, list_items or a write)' }
    },
    run: updateItem
  },
  {
    name: 'set_status',
    description: 'Move a feature to another status (todo, in_progress, blocked, done).',
    readOnly: false,
    params: { id: idParam('the feature (feat-xxxxxxxx)'), status: statusParam(true) },
    run: async (ctx, args) => {
      const id = args.id as string
      featureOnly(id, 'status')
      const current = requireItem(ctx.cc, id) as { status: Status }
      const events = await append(ctx, [{ event_type: 'status_changed', resource_id: id, payload: { old_status: current.status, new_status: args.status as Status } }])
      return written(ctx.cc, id, events)
    }
  },
  {
    name: 'link_items',
    description: 'Link a feature to another feature: depends_on, blocks or related.',
    readOnly: false,
    params: {
      id: idParam('the feature to link from (feat-xxxxxxxx)'),
      linked_id: { type: 'string', required: true, check: featureId, description: 'the feature to link to (feat-xxxxxxxx)' },
      link_type: { type: 'string', enum: LINK_TYPES, required: true, check: oneOf(LINK_TYPES, 'INVALID_LINK_TYPE'), description: `${LINK_TYPES.join(', ')}` }
    },
    run: async (ctx, args) => {
      const id = args.id as string
      featureOnly(id, 'links')
      requireItem(ctx.cc, id)
      if (record(ctx.cc, args.linked_id as string) === null) throw new CrosscastError('NOT_FOUND', `feature ${String(args.linked_id)} does not exist (or was deleted)`, { field: 'linked_id' })
      const events = await append(ctx, [{ event_type: 'link_added', resource_id: id, payload: { linked_feature_id: args.linked_id as string, link_type: args.link_type as LinkType } }])
      return written(ctx.cc, id, events)
    }
  },
  {
    name: 'comment',
    description: 'Comment on a feature, track or spike.',
    readOnly: false,
    params: { id: idParam(), text: { type: 'string', required: true, description: 'the comment' } },
    run: async (ctx, args) => {
      const id = args.id as string
      requireItem(ctx.cc, id)
      const events = await append(ctx, [{ event_type: 'comment_added', resource_id: id, payload: { comment_text: args.text as string, author: ctx.agent } }])
      return written(ctx.cc, id, events)
    }
  },
  {
    name: 'delete_item',
    description: 'Delete a feature (tracks and spikes cannot be deleted).',
    readOnly: false,
    params: { id: idParam('the feature (feat-xxxxxxxx)') },
    run: async (ctx, args) => {
      const id = args.id as string
      featureOnly(id, 'delete')
      requireItem(ctx.cc, id)
      const event = await (await ctx.session()).features.delete(id)
      return { id, event_ids: [event.event_id], deleted: true }
    }
  },
  {
    name: 'get_item',
    description: 'One item with its links, comments and version.',
    readOnly: true,
    params: { id: idParam() },
    run: (ctx, args) => itemView(ctx.cc, args.id as string)
  },
  {
    name: 'list_items',
    description: 'List items, optionally of one kind, status or track. Returns {items, count}.',
    readOnly: true,
    params: {
      kind: { type: 'string', enum: KINDS, check: oneOf(KINDS), description: 'feature, track or spike (default: all)' },
      status: statusParam(false),
      track_id: trackParam,
      claimed_by: { type: 'string', description: 'only items with a live claim by this agent or session id' },
      limit: { type: 'integer', min: 1, max: 1000, description: `at most this many items (default ${DEFAULT_LIST_LIMIT})` }
    },
    run: (ctx, args) => listItems(ctx.cc, args)
  },
  {
    name: 'ready',
    description: 'Features ready to work on: todo, every depends_on target done, no live claim; by priority, then age.',
    readOnly: true,
    params: { limit: { type: 'integer', min: 1, max: 1000, description: `at most this many (default ${DEFAULT_LIST_LIMIT})` } },
    run: (ctx, args) => {
      const items = ctx.cc.ready({ limit: (args.limit as number | undefined) ?? DEFAULT_LIST_LIMIT }).map(f => ({ kind: 'feature', ...f.toJSON() }))
      return { items, count: items.length }
    }
  },
  {
    name: 'claim',
    description: 'Claim an item before working on it: {won, holder, expires_at}. Refused with CLAIMED (naming the holder) when another session holds it. Renewed while this session runs; lapses ttl_s after it stops.',
    readOnly: false,
    params: {
      id: idParam(),
      ttl_s: { type: 'integer', min: MIN_CLAIM_TTL_S, max: MAX_CLAIM_TTL_S, description: 'seconds the claim lasts unless renewed (default 300)' }
    },
    run: async (ctx, args) => await (await ctx.session()).claim(args.id as string, args.ttl_s === undefined ? {} : { ttlS: args.ttl_s as number })
  },
  {
    name: 'release',
    description: 'Give up this session\'s claim on an item.',
    readOnly: false,
    params: { id: idParam() },
    run: async (ctx, args) => {
      await (await ctx.session()).release(args.id as string)
      return { id: args.id, released: true, holder: ctx.cc.claimOf(args.id as string) }
    }
  },
  {
    name: 'changes',
    description: 'Events from other sessions since a cursor (default: where this session last looked), and the cursor to pass next time.',
    readOnly: true,
    params: {
      since: { type: 'cursor', description: 'a cursor from an earlier changes call (default: this session\'s last one; the first call starts at the beginning)' },
      limit: { type: 'integer', min: 1, max: 1000, description: `at most this many events (default ${DEFAULT_CHANGES_LIMIT}); more: true when there are more` },
      include_own: { type: 'boolean', description: 'include this session\'s own events (default false)' }
    },
    run: changes
  },
  {
    name: 'who',
    description: 'Sessions online now: agent, session, the items each holds, since when.',
    readOnly: true,
    params: {},
    run: (ctx) => ({ sessions: ctx.cc.presence().map(p => ({ agent_id: p.agent_id, session_id: p.session_id, claims: p.claims, since: p.since, last_seen: p.last_seen, self: p.session_id === ctx.sessionId && p.self })) })
  }
]

export const OPERATION_NAMES = OPERATIONS.map(op => op.name)

export function operation (name: string): Operation {
  const op = OPERATIONS.find(o => o.name === name)
  if (op === undefined) throw new CrosscastError('NOT_FOUND', `no operation ${name}; operations: ${OPERATION_NAMES.join(', ')}`, { field: 'operation', allowed: OPERATION_NAMES })
  return op
}

export async function runOperation (ctx: OperationContext, name: string, input: unknown): Promise<unknown> {
  const op = operation(name)
  return await op.run(ctx, checkArgs(op, input))
}

/** The JSON body of a failed operation: crosscast's code and message, and the current item on CONFLICT. */
export function errorBody (err: unknown): Record<string, unknown> {
  if (err instanceof CrosscastError) {
    return err.toJSON()
  }
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) }
}

const nodeCursors = new WeakMap<Crosscast, Map<string, number>>()

/** The node's per-session `changes` cursors, shared by its MCP server and its socket. */
export function cursorsOf (cc: Crosscast): Map<string, number> {
  let map = nodeCursors.get(cc)
  if (map === undefined) nodeCursors.set(cc, map = new Map())
  return map
}
