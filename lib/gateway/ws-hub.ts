// The WebSocket side of the gateway. Every client gets replay-then-live with no
// gap and no duplicate, for local writes and for events from remote peers alike:
// a filtered client through its own cc.subscribe; the unfiltered live ones
// (nearly all of them) through one shared subscription, where each event is
// serialized and framed once and the frames of one projected block go to each
// client in one socket write (see fanOut). Memory per client is bounded: a
// client whose unsent backlog passes maxLagBytes is closed, never buffered for.

import { randomBytes } from 'node:crypto'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import type { Crosscast, BroadcastEvent, SubscriptionFilter, PresenceEntry, ClaimLost, ResetInfo } from '../index.ts'
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
const WS_OPEN = 1
// Each client is pinged once per heartbeat, but in one of this many slices spread
// over it: 10,000 pings and their pongs at once hold the event loop for ~100 ms.
const HEARTBEAT_SLICES = 16

type Mode = 'all' | 'filtered' | 'none'

interface Client {
  id: string
  socket: WebSocket
  /** The TCP stream under `socket`, written to directly with pre-built frames; null when an extension (compression) is in use. */
  stream: Duplex | null
  /** While in the shared live set: events up to this cursor were already sent (or predate the subscription). */
  liveFrom: number
  sessionId: string | null
  off: (() => void) | null
  mode: Mode
  /** Highest cursor sent on this connection; a resubscribe after an unfiltered one skips up to it. */
  lastCursor: number
  skipThrough: number
  alive: boolean
  /** Which of the HEARTBEAT_SLICES pings this client. */
  beatSlice: number
  closing: boolean
  /** Bumped by every (un)subscribe, so a paced replay that was superseded stops. */
  generation: number
  /** Sent `presence` and `claim_lost` frames: after an explicit subscribe (the seed's clients never asked for them). */
  presence: boolean
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

const CLIENT = Symbol('crosscast.client')
type ClientSocket = WebSocket & { [CLIENT]: Client }

function clientOf (socket: WebSocket): Client {
  return (socket as ClientSocket)[CLIENT]
}

/** One event, serialized once for every client: the JSON text and the same text as a whole WebSocket frame. */
interface Frame { eventId: string, cursor: number, payload: Buffer, framed: Buffer }

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

/**
 * An unmasked, unfragmented text frame (RFC 6455 §5.2), header and payload in
 * one buffer: built once per event, it costs each client one socket write
 * instead of ws's per-send header, cork and writev.
 */
function textFrame (payload: Buffer): Buffer {
  const n = payload.length
  const headerLength = n < 126 ? 2 : n < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(headerLength + n)
  frame[0] = 0x81
  if (n < 126) {
    frame[1] = n
  } else if (n < 65536) {
    frame[1] = 126
    frame.writeUInt16BE(n, 2)
  } else {
    frame[1] = 127
    frame.writeBigUInt64BE(BigInt(n), 2)
  }
  payload.copy(frame, headerLength)
  return frame
}

export class BroadcastHub {
  readonly cc: Crosscast
  readonly opts: HubOptions
  readonly clients = new Map<string, Client>()
  private readonly deliveries = new Map<string, number>()
  private heartbeat: NodeJS.Timeout | null = null
  private frameCache: Frame | null = null
  /** Unfiltered live clients: served by one subscription, not one each. */
  private readonly everyone = new Set<Client>()
  private offEveryone: (() => void) | null = null
  /** Frames projected in this turn, written to `everyone` in one go when the turn's synchronous work is done. */
  private pending: Frame[] = []
  private closed = false
  private beats = 0
  private attached = 0
  private stats = { eventsBroadcast: 0, framesSent: 0, bytesSent: 0, droppedLagging: 0, droppedDead: 0 }
  private readonly onPresence = (sessions: PresenceEntry[]): void => {
    for (const client of this.clients.values()) if (client.presence) this.sendControl(client, { type: 'presence', sessions })
  }

  /** A session this node hosts (its own or an X-Session-ID) lost a claim: its REST client learns it here. */
  private readonly onClaimLost = (lost: ClaimLost): void => {
    for (const client of this.clients.values()) if (client.presence) this.sendControl(client, { type: 'claim_lost', ...lost })
  }

  /** One set of socket listeners for every client (`this` is the socket), rather than three closures a client. */
  private readonly socketListeners: {
    pong: (this: WebSocket) => void
    message: (this: WebSocket, data: Buffer, isBinary: boolean) => void
    close: (this: WebSocket) => void
  }

  constructor (cc: Crosscast, opts: HubOptions) {
    this.cc = cc
    this.opts = opts
    cc.on('presence', this.onPresence)
    cc.on('claim-lost', this.onClaimLost)
    const hub = this
    this.socketListeners = {
      pong (this: WebSocket) { clientOf(this).alive = true },
      message (this: WebSocket, data: Buffer, isBinary: boolean) { hub.onMessage(clientOf(this), data, isBinary) },
      close (this: WebSocket) { hub.detach(clientOf(this)) }
    }
    if (opts.heartbeatMs > 0) {
      this.heartbeat = setInterval(() => this.beat(), opts.heartbeatMs / HEARTBEAT_SLICES)
      this.heartbeat.unref()
    }
  }

  /** `stream`: the socket's TCP stream (the upgrade request's socket), for direct frame writes. */
  attach (socket: WebSocket, init: { sessionId: string | null, since: number | undefined, epoch?: string | undefined, stream?: Duplex }): void {
    if (this.closed) {
      socket.close(CLOSE_GOING_AWAY, 'gateway closing')
      return
    }
    const client: Client = {
      id: randomBytes(8).toString('hex'),
      socket,
      // Frames are written under ws only when no extension transforms them; ws itself writes synchronously then, so the order holds.
      stream: init.stream !== undefined && socket.extensions === '' ? init.stream : null,
      liveFrom: 0,
      sessionId: init.sessionId,
      off: null,
      mode: 'none',
      lastCursor: 0,
      skipThrough: 0,
      alive: true,
      beatSlice: this.attached++ % HEARTBEAT_SLICES,
      closing: false,
      generation: 0,
      presence: false
    }
    this.clients.set(client.id, client)
    ;(socket as ClientSocket)[CLIENT] = client
    socket.on('pong', this.socketListeners.pong)
    socket.on('message', this.socketListeners.message)
    socket.on('close', this.socketListeners.close)
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
    this.cc.off('presence', this.onPresence)
    this.cc.off('claim-lost', this.onClaimLost)
    if (this.heartbeat !== null) clearInterval(this.heartbeat)
    this.offEveryone?.()
    this.offEveryone = null
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
    const slice = this.beats++ % HEARTBEAT_SLICES
    for (const client of this.clients.values()) {
      if (client.closing || client.beatSlice !== slice) continue
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
      this.sendControl(client, { type: 'subscribed', client_id: client.id, epoch: this.cc.epoch })
      return this.startPresence(client)
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
      client.presence = false
      return this.sendControl(client, { type: 'unsubscribed', client_id: client.id })
    }
    if (type !== 'subscribe') {
      throw new CrosscastError('INVALID_FIELD', `type must be one of ${allowed.join(', ')}`, { field: 'type', allowed })
    }
    const m = msg as Record<string, unknown>
    const request = { filter: parseFilter(m.filter), since: parseSince(m.since), epoch: parseEpoch(m.epoch) }
    // Acknowledge first so the replayed events follow the acknowledgement on the wire.
    this.sendControl(client, { type: 'subscribed', client_id: client.id, since: request.since ?? null, epoch: this.cc.epoch })
    this.startPresence(client)
    this.subscribe(client, request)
  }

  /** Who is online now, then again on every change. */
  private startPresence (client: Client): void {
    client.presence = true
    this.sendControl(client, { type: 'presence', sessions: this.cc.presence() })
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

  /** Returns how to stop the client's own subscription, or null when it joined the shared one (unsubscribe handles that). */
  private live (client: Client, filter: SubscriptionFilter, since: number | undefined): (() => void) | null {
    if (isEmptyFilter(filter)) {
      this.joinEveryone(client, since)
      return null
    }
    const onReset = (reset: ResetInfo): void => this.resetClient(client, reset)
    const options = since === undefined ? { onReset } : { since, onReset }
    return this.cc.subscribe(filter, (event: BroadcastEvent) => this.deliver(client, event), options)
  }

  /**
   * The hand-over to the shared subscription has no gap and no duplicate: what
   * is left after `since` is read synchronously (the projector runs on this
   * thread, so nothing commits meanwhile), and frames already projected but
   * not yet written are skipped by liveFrom.
   */
  private joinEveryone (client: Client, since: number | undefined): void {
    let cursor = since
    while (cursor !== undefined && cursor < this.cc.lastCursor) {
      const page = this.cc.listEvents({ since: cursor, limit: REPLAY_PAGE })
      for (const event of page.events) this.deliver(client, event)
      cursor = page.next_cursor ?? undefined
    }
    // The catch-up itself may have overrun the lag bound and closed the client.
    if (client.closing) return
    client.liveFrom = this.cc.lastCursor
    this.everyone.add(client)
    this.offEveryone ??= this.cc.subscribe({}, (event: BroadcastEvent) => this.queueFrame(event), {
      onReset: (reset) => {
        // Frames of the old epoch go out first, then every shared client counts in the new one.
        this.fanOut()
        for (const member of this.everyone) this.resetClient(member, reset)
      }
    })
  }

  /** A rebuild under a live subscription starts a new epoch: the client is told where it stands in it. */
  private resetClient (client: Client, reset: ResetInfo): void {
    client.skipThrough = 0
    client.lastCursor = reset.cursor
    client.liveFrom = reset.cursor
    this.sendControl(client, { type: 'reset', epoch: reset.epoch, cursor: reset.cursor })
  }

  private queueFrame (event: BroadcastEvent): void {
    if (this.pending.length === 0) queueMicrotask(() => this.fanOut())
    this.pending.push(this.frameOf(event))
  }

  /**
   * Sends first, bookkeeping after: one write per client of every frame of
   * this turn, then the counters once for all. A client the backlog check
   * closes is removed from the set, which is safe while iterating it.
   */
  private fanOut (): void {
    const frames = this.pending
    this.pending = []
    if (frames.length === 0) return
    const first = frames[0].cursor
    const last = frames[frames.length - 1].cursor
    const whole = frames.length === 1 ? frames[0].framed : Buffer.concat(frames.map(f => f.framed))
    let sent = 0
    let bytes = 0
    for (const client of this.everyone) {
      if (client.liveFrom >= last || client.closing) continue
      if (client.liveFrom < first && client.stream !== null && client.socket.readyState === WS_OPEN) {
        client.stream.write(whole)
        bytes += whole.length
      } else {
        for (const frame of frames) if (frame.cursor > client.liveFrom) bytes += this.sendFrame(client, frame)
      }
      sent++
      client.lastCursor = last
      client.liveFrom = last
      this.checkLag(client)
    }
    for (const frame of frames) this.countDelivery(frame.eventId, sent)
    this.stats.framesSent += sent * frames.length
    this.stats.bytesSent += bytes
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
    if (this.everyone.delete(client) && this.everyone.size === 0 && this.offEveryone !== null) {
      this.offEveryone()
      this.offEveryone = null
    }
    const off = client.off
    client.off = null
    if (off !== null) off()
  }

  private deliver (client: Client, event: BroadcastEvent): void {
    if (client.closing || event.cursor <= client.skipThrough) return
    const bytes = this.sendFrame(client, this.frameOf(event))
    if (event.cursor > client.lastCursor) client.lastCursor = event.cursor
    this.countDelivery(event.event_id, 1)
    this.stats.framesSent++
    this.stats.bytesSent += bytes
    this.checkLag(client)
  }

  /** Returns the bytes handed to the socket. */
  private sendFrame (client: Client, frame: Frame): number {
    if (client.stream !== null && client.socket.readyState === WS_OPEN) {
      client.stream.write(frame.framed)
      return frame.framed.length
    }
    // A Buffer sent as text is framed as is; a string would be re-encoded for every client.
    client.socket.send(frame.payload, { binary: false })
    return frame.payload.length
  }

  private countDelivery (eventId: string, clients: number): void {
    const count = this.deliveries.get(eventId) ?? 0
    if (count === 0) {
      this.stats.eventsBroadcast++
      if (this.deliveries.size >= DELIVERY_MEMORY) this.deliveries.delete(this.deliveries.keys().next().value as string)
    }
    this.deliveries.set(eventId, count + clients)
  }

  /** Every client gets the same event at almost the same moment: serialize and frame it once. */
  private frameOf (event: BroadcastEvent): Frame {
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
    const payload = Buffer.from(text)
    this.frameCache = { eventId: event.event_id, cursor: event.cursor, payload, framed: textFrame(payload) }
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
