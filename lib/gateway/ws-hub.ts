// The WebSocket side of the gateway: one cc.subscribe per client, so the SDK's
// replay-then-live guarantee (no gap, no duplicate) is what every client gets,
// for local writes and for events from remote peers alike. Memory per client is
// bounded: a client whose unsent backlog passes maxLagBytes is closed, never buffered for.

import { randomBytes } from 'node:crypto'
import type { WebSocket } from 'ws'
import type { Crosscast, BroadcastEvent, SubscriptionFilter } from '../index.ts'
import { CrosscastError } from '../errors.ts'
import { RESOURCE_TYPES, type ResourceType, type EventType } from '../events/types.ts'
import { validateEventType, validateId, validateLabel } from '../events/validate.ts'
import { compileFilter, validateFilter } from '../subscriptions/filter.ts'
import type { Logger } from './logger.ts'

export const CLOSE_LAGGING = 1008
export const CLOSE_GOING_AWAY = 1001
const LAG_CLOSE_GRACE_MS = 5000
const MAX_FILTER_VALUES = 1000
const DELIVERY_MEMORY = 4096
const REPLAY_PAGE = 200
const REPLAY_DRAIN_TIMEOUT_MS = 30_000
const DRAIN_POLL_MS = 10

type Mode = 'all' | 'filtered' | 'none'

interface Client {
  id: string
  socket: WebSocket
  sessionId: string | null
  off: (() => void) | null
  mode: Mode
  /** Highest cursor sent on this connection; a resubscribe after an unfiltered one skips up to it. */
  lastCursor: number
  skipThrough: number
  alive: boolean
  closing: boolean
  /** Bumped by every (un)subscribe, so a paced replay that was superseded stops. */
  generation: number
}

export interface HubOptions {
  maxLagBytes: number
  heartbeatMs: number
  logger: Logger
}

export interface HubStats {
  connectedClients: number
  sessionIds: string[]
  eventsBroadcast: number
  framesSent: number
  bytesSent: number
  droppedLagging: number
  droppedDead: number
}

interface SubscribeRequest {
  filter: SubscriptionFilter
  since: number | undefined
  /** The epoch `since` was read in; from another one the client gets a `reset` frame and replay from 0. */
  epoch?: string | undefined
}

function strings (value: unknown, field: string): string[] {
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || list.length > MAX_FILTER_VALUES || list.some(v => typeof v !== 'string')) {
    throw new CrosscastError('INVALID_FIELD', `${field} must be a string or an array of at most ${MAX_FILTER_VALUES} strings`, { field })
  }
  return list as string[]
}

export function parseSince (value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
    throw new CrosscastError('INVALID_CURSOR', 'since must be a non-negative integer cursor (the cursor of the last event you received)', { field: 'since' })
  }
  return n
}

export function parseEpoch (value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined
  if (typeof value !== 'string' || !/^[0-9a-f]{1,64}$/.test(value)) {
    throw new CrosscastError('INVALID_CURSOR', 'epoch must be the epoch string the cursor was read in (from a subscribed frame or GET /api/events)', { field: 'epoch' })
  }
  return value
}

/** The WebSocket filter uses the wire's snake_case names; the SDK's filter uses camelCase. */
export function parseFilter (raw: unknown): SubscriptionFilter {
  if (raw === undefined || raw === null) return {}
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new CrosscastError('INVALID_FIELD', 'filter must be an object', { field: 'filter' })
  const f = raw as Record<string, unknown>
  const known = ['event_types', 'resource_types', 'resource_ids', 'track_id', 'exclude_session', 'sessions', 'agents']
  for (const key of Object.keys(f)) {
    if (!known.includes(key)) throw new CrosscastError('INVALID_FIELD', `filter.${key} is not a filter field; allowed: ${known.join(', ')}`, { field: `filter.${key}`, allowed: known })
  }
  const out: SubscriptionFilter = {}
  if (f.event_types !== undefined) out.eventTypes = strings(f.event_types, 'filter.event_types').map(t => validateEventType(t, 'filter.event_types')) as EventType[]
  if (f.resource_types !== undefined) {
    out.resourceTypes = strings(f.resource_types, 'filter.resource_types').map(t => {
      if (!(RESOURCE_TYPES as readonly string[]).includes(t)) {
        throw new CrosscastError('INVALID_FIELD', `filter.resource_types must be among ${RESOURCE_TYPES.join(', ')}, got ${JSON.stringify(t)}`, { field: 'filter.resource_types', allowed: RESOURCE_TYPES })
      }
      return t as ResourceType
    })
  }
  if (f.resource_ids !== undefined) out.resourceIds = strings(f.resource_ids, 'filter.resource_ids').map(id => validateId(id, 'filter.resource_ids'))
  if (f.track_id !== undefined && f.track_id !== null) out.track = validateId(f.track_id, 'filter.track_id', 'track')
  if (f.exclude_session !== undefined && f.exclude_session !== null) out.excludeSessions = strings(f.exclude_session, 'filter.exclude_session').map(s => validateLabel(s, 'filter.exclude_session'))
  if (f.sessions !== undefined) out.sessions = strings(f.sessions, 'filter.sessions').map(s => validateLabel(s, 'filter.sessions'))
  if (f.agents !== undefined) out.agents = strings(f.agents, 'filter.agents').map(s => validateLabel(s, 'filter.agents'))
  return out
}

function isEmptyFilter (filter: SubscriptionFilter): boolean {
  return Object.values(filter).every(v => v === undefined || (Array.isArray(v) && v.length === 0))
}

export class BroadcastHub {
  readonly cc: Crosscast
  readonly opts: HubOptions
  readonly clients = new Map<string, Client>()
  private readonly deliveries = new Map<string, number>()
  private heartbeat: NodeJS.Timeout | null = null
  private frameCache: { eventId: string, data: Buffer } | null = null
  private closed = false
  private stats = { eventsBroadcast: 0, framesSent: 0, bytesSent: 0, droppedLagging: 0, droppedDead: 0 }

  constructor (cc: Crosscast, opts: HubOptions) {
    this.cc = cc
    this.opts = opts
    if (opts.heartbeatMs > 0) {
      this.heartbeat = setInterval(() => this.beat(), opts.heartbeatMs)
      this.heartbeat.unref()
    }
  }

  attach (socket: WebSocket, init: { sessionId: string | null, since: number | undefined, epoch?: string | undefined }): void {
    if (this.closed) {
      socket.close(CLOSE_GOING_AWAY, 'gateway closing')
      return
    }
    const client: Client = {
      id: randomBytes(8).toString('hex'),
      socket,
      sessionId: init.sessionId,
      off: null,
      mode: 'none',
      lastCursor: 0,
      skipThrough: 0,
      alive: true,
      closing: false,
      generation: 0
    }
    this.clients.set(client.id, client)
    socket.on('pong', () => { client.alive = true })
    socket.on('message', (data, isBinary) => this.onMessage(client, data as Buffer, isBinary))
    socket.on('close', () => this.detach(client))
    // The seed's JavaScript client never sends "subscribe": every connection starts subscribed to everything.
    this.subscribe(client, { filter: {}, since: init.since, epoch: init.epoch })
  }

  /** How many clients were sent at least one of these events (the REST `clients_notified`). */
  notifiedBy (eventIds: readonly string[]): number {
    let most = 0
    for (const id of eventIds) most = Math.max(most, this.deliveries.get(id) ?? 0)
    return most
  }

  snapshot (): HubStats {
    const sessionIds = new Set<string>()
    let connected = 0
    for (const c of this.clients.values()) {
      if (c.closing) continue
      connected++
      if (c.sessionId !== null) sessionIds.add(c.sessionId)
    }
    return { connectedClients: connected, sessionIds: [...sessionIds], ...this.stats }
  }

  close (): void {
    if (this.closed) return
    this.closed = true
    if (this.heartbeat !== null) clearInterval(this.heartbeat)
    for (const client of this.clients.values()) {
      this.unsubscribe(client)
      client.closing = true
      client.socket.close(CLOSE_GOING_AWAY, 'gateway closing')
      const timer = setTimeout(() => client.socket.terminate(), 1000)
      timer.unref()
    }
  }

  private detach (client: Client): void {
    this.unsubscribe(client)
    client.closing = true
    this.clients.delete(client.id)
  }

  private beat (): void {
    for (const client of this.clients.values()) {
      if (client.closing) continue
      if (!client.alive) {
        this.stats.droppedDead++
        this.opts.logger.info({ client: client.id }, 'websocket client missed a heartbeat; dropping it')
        this.unsubscribe(client)
        client.socket.terminate()
        continue
      }
      client.alive = false
      try { client.socket.ping() } catch { client.socket.terminate() }
      this.checkLag(client)
    }
  }

  private onMessage (client: Client, data: Buffer, isBinary: boolean): void {
    client.alive = true
    if (client.closing) return
    if (isBinary) return this.sendError(client, new CrosscastError('DECODE_FAILED', 'binary frames are not accepted; send text ("subscribe", "ping") or JSON'))
    const text = data.toString('utf8')
    if (text === 'ping') return this.sendControl(client, { type: 'pong' })
    if (text === 'subscribe') {
      if (client.mode !== 'all') this.subscribe(client, { filter: {}, since: undefined })
      return this.sendControl(client, { type: 'subscribed', client_id: client.id, epoch: this.cc.epoch })
    }
    let msg: unknown
    try {
      msg = JSON.parse(text)
    } catch {
      return this.sendError(client, new CrosscastError('DECODE_FAILED', 'frame is neither "subscribe", "ping" nor valid JSON'))
    }
    try {
      this.onCommand(client, msg)
    } catch (err) {
      if (err instanceof CrosscastError) return this.sendError(client, err)
      this.opts.logger.error({ err, client: client.id }, 'websocket command failed')
      this.sendError(client, new CrosscastError('INTERNAL', 'the gateway failed to handle this frame; see its log'))
    }
  }

  private onCommand (client: Client, msg: unknown): void {
    const allowed = ['subscribe', 'unsubscribe', 'ping']
    const type = msg !== null && typeof msg === 'object' && !Array.isArray(msg) ? (msg as Record<string, unknown>).type : undefined
    if (type === 'ping') return this.sendControl(client, { type: 'pong' })
    if (type === 'unsubscribe') {
      this.unsubscribe(client)
      client.mode = 'none'
      return this.sendControl(client, { type: 'unsubscribed', client_id: client.id })
    }
    if (type !== 'subscribe') {
      throw new CrosscastError('INVALID_FIELD', `type must be one of ${allowed.join(', ')}`, { field: 'type', allowed })
    }
    const m = msg as Record<string, unknown>
    const request = { filter: parseFilter(m.filter), since: parseSince(m.since), epoch: parseEpoch(m.epoch) }
    // Acknowledge first so the replayed events follow the acknowledgement on the wire.
    this.sendControl(client, { type: 'subscribed', client_id: client.id, since: request.since ?? null, epoch: this.cc.epoch })
    this.subscribe(client, request)
  }

  private subscribe (client: Client, request: SubscribeRequest): void {
    const previous = client.mode
    this.unsubscribe(client)
    // After an unfiltered subscription the client already holds every event up to lastCursor.
    client.skipThrough = previous === 'all' && request.since !== undefined ? client.lastCursor : 0
    client.mode = isEmptyFilter(request.filter) ? 'all' : 'filtered'
    let since = request.since
    if (request.epoch !== undefined && request.epoch !== this.cc.epoch) {
      // The cursor was read before the database was rebuilt: say so, then replay the new epoch from its start.
      this.sendControl(client, { type: 'reset', epoch: this.cc.epoch, cursor: 0 })
      client.skipThrough = 0
      since = 0
    }
    if (since === undefined || since >= this.cc.lastCursor) {
      client.off = this.live(client, request.filter, since)
      return
    }
    const generation = client.generation
    client.off = () => { client.generation++ }
    this.replay(client, generation, request.filter, since).catch(err => {
      this.opts.logger.error({ err, client: client.id }, 'websocket replay failed')
      if (!client.closing) this.sendError(client, new CrosscastError('INTERNAL', 'replay failed; reconnect with since=<last cursor>'))
    })
  }

  private live (client: Client, filter: SubscriptionFilter, since: number | undefined): () => void {
    // A rebuild under a live subscription starts a new epoch: the client is told where it stands in it.
    const onReset = (reset: { epoch: string, cursor: number }): void => {
      client.skipThrough = 0
      client.lastCursor = reset.cursor
      this.sendControl(client, { type: 'reset', epoch: reset.epoch, cursor: reset.cursor })
    }
    const options = since === undefined ? { onReset } : { since, onReset }
    return this.cc.subscribe(filter, (event: BroadcastEvent) => this.deliver(client, event), options)
  }

  /**
   * A resuming client may have missed much more than it can take at once: the
   * database is the buffer, read page by page at the pace the socket drains.
   * The last step is a synchronous cc.subscribe from the last cursor sent, so
   * the hand-over to live has no gap and no duplicate.
   */
  private async replay (client: Client, generation: number, filter: SubscriptionFilter, since: number): Promise<void> {
    const compiled = compileFilter(validateFilter(filter), (id) => this.cc.state.trackOf(id), () => new Set())
    const current = (): boolean => client.generation === generation && !client.closing
    let cursor = since
    for (;;) {
      const page = this.cc.listEvents({ since: cursor, limit: REPLAY_PAGE })
      for (const event of page.events) {
        cursor = event.cursor
        if (!compiled.matches(event)) continue
        this.deliver(client, event)
        if (!current()) return
        if (client.socket.bufferedAmount > this.opts.maxLagBytes / 2 && !(await this.drained(client, current))) {
          if (current()) this.dropLagging(client)
          return
        }
      }
      if (page.next_cursor === null) break
      await new Promise(resolve => setImmediate(resolve))
      if (!current()) return
    }
    client.off = this.live(client, filter, cursor)
  }

  private async drained (client: Client, current: () => boolean): Promise<boolean> {
    const deadline = Date.now() + REPLAY_DRAIN_TIMEOUT_MS
    while (current() && client.socket.bufferedAmount > this.opts.maxLagBytes / 4) {
      if (Date.now() > deadline) return false
      await new Promise(resolve => setTimeout(resolve, DRAIN_POLL_MS))
    }
    return current()
  }

  private unsubscribe (client: Client): void {
    const off = client.off
    client.off = null
    if (off !== null) off()
  }

  private deliver (client: Client, event: BroadcastEvent): void {
    if (client.closing || event.cursor <= client.skipThrough) return
    if (event.cursor > client.lastCursor) client.lastCursor = event.cursor
    const frame = this.frameOf(event)
    const count = this.deliveries.get(event.event_id) ?? 0
    if (count === 0) {
      this.stats.eventsBroadcast++
      if (this.deliveries.size >= DELIVERY_MEMORY) this.deliveries.delete(this.deliveries.keys().next().value as string)
    }
    this.deliveries.set(event.event_id, count + 1)
    this.stats.framesSent++
    this.stats.bytesSent += frame.data.length
    // A Buffer sent as text is framed as is; a string would be re-encoded for every client.
    client.socket.send(frame.data, { binary: false })
    this.checkLag(client)
  }

  /** Every client gets the same event at almost the same moment: serialize it once. */
  private frameOf (event: BroadcastEvent): { data: Buffer } {
    if (this.frameCache?.eventId === event.event_id) return this.frameCache
    const text = JSON.stringify({
      type: 'broadcast_event',
      event_id: event.event_id,
      event_type: event.event_type,
      resource_id: event.resource_id,
      resource_type: event.resource_type,
      agent_id: event.agent_id,
      session_id: event.session_id,
      payload: event.payload,
      timestamp: event.timestamp,
      cursor: event.cursor
    })
    this.frameCache = { eventId: event.event_id, data: Buffer.from(text) }
    return this.frameCache
  }

  private sendControl (client: Client, frame: Record<string, unknown>): void {
    if (client.closing) return
    const text = JSON.stringify(frame)
    this.stats.bytesSent += Buffer.byteLength(text)
    client.socket.send(text)
    this.checkLag(client)
  }

  private sendError (client: Client, err: CrosscastError): void {
    this.sendControl(client, { type: 'error', ...err.toJSON() })
  }

  private checkLag (client: Client): void {
    if (client.closing || client.socket.bufferedAmount <= this.opts.maxLagBytes) return
    this.dropLagging(client)
  }

  private dropLagging (client: Client): void {
    this.stats.droppedLagging++
    this.opts.logger.warn({ client: client.id, buffered: client.socket.bufferedAmount }, 'websocket client is lagging; closing it')
    this.unsubscribe(client)
    client.closing = true
    client.socket.close(CLOSE_LAGGING, `lagging: more than ${this.opts.maxLagBytes} bytes unsent; reconnect with since=<last cursor>`)
    // The close frame waits behind the backlog; a client that never reads is cut off.
    const timer = setTimeout(() => client.socket.terminate(), LAG_CLOSE_GRACE_MS)
    timer.unref()
  }
}
