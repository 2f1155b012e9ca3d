// The public facade. One Crosscast is one node: a corestore of logs (its own
// sessions' and its peers'), owned by a writer registry that feeds each log to
// the one projector (SQLite) and on to the subscription hub, and, unless
// disabled, the network that finds peers and replicates every log.

import { EventEmitter } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import Corestore from 'corestore'
import type Hypercore from 'hypercore'
import BetterSqlite3, { type Database } from 'better-sqlite3'
import { CrosscastError } from '../errors.ts'
import { HybridLogicalClock } from '../events/hlc.ts'
import { validateDraft, validateLabel } from '../events/validate.ts'
import type { BroadcastEvent, EventDraft, EventType, ResourceType } from '../events/types.ts'
import { newResourceId } from '../events/ids.ts'
import { SessionLog } from '../log/session-log.ts'
import { configure, eventIdParams, migrate, WHERE_EVENT_ID } from '../projection/schema.ts'
import { Projector } from '../projection/projector.ts'
import { EventReader, EVENT_COLUMNS, rowToEvent } from '../projection/queries.ts'
import { SubscriptionHub } from '../subscriptions/hub.ts'
import { compileFilter, validateFilter, type SubscriptionFilter } from '../subscriptions/filter.ts'
import { childLogger, type Logger } from '../logger.ts'
import { resolveOptions, type CrosscastOptions, type ResolvedOptions } from './options.ts'
import { StateReader, type ConflictRecord } from './state.ts'
import { Feature, FeatureCollection, TrackCollection, SpikeCollection, type Writer } from './resources.ts'
import { ClaimManager, type ClaimOptions, type ClaimResult, type ClaimHolder } from './claims.ts'
import { nodePresence, type PresenceEntry } from './presence.ts'
import type { Presence } from '../presence/presence.ts'
import { WriterRegistry, lastBlockHlc, type KnownWriter, type WriterFeed, type WriterLength } from './writers.ts'
import { WriterStore } from './writer-store.ts'
import { LruMap } from './bounded.ts'
import { NodeNetwork, type PeerStatus, type RejectedPeer } from './network.ts'
import { recordOwner, describeOwner, clearOwner } from './owner.ts'
import type { Duplex } from 'node:stream'
import type NoiseSecretStream from '@hyperswarm/secret-stream'

export interface WriterStatus {
  key: string
  sessionId: string | null
  agentId: string | null
  local: boolean
  length: number
  indexed: number
  lag: number
  skipped: number
  /** The last problem with this log: a skipped block, a read or projection failure being retried, a hold, a distrust. */
  lastError: string | null
  /** Set while the writer is held at a block: `clock` (stamped too far ahead, retried as time passes) or `upgrade` (not understood by this version or configuration, retried on the next open). */
  held: { seq: number, reason: string, until: 'clock' | 'upgrade' } | null
  /** Set when the writer forked or truncated its log: nothing past `length` is read from it, ever (persisted). */
  distrusted: { reason: string, length: number } | null
  /** Whether the log is open here now: a closed one is caught up and quiet, and opened again when someone is behind on it (`length` is then what this node holds). */
  open: boolean
  /** Its session ended it (the last block is the signed end marker). */
  ended: boolean
}

export interface NodeStatus {
  sessionId: string
  agent: string
  room: string
  writerKey: string
  peers: PeerStatus[]
  writers: WriterStatus[]
  events: { total: number, perSecond: number }
  lag: number
  /** peers: distinct peers that failed the room handshake; reasons: the latest of them, newest first. */
  rejected: { peers: number, writers: number, reasons: RejectedPeer[] }
  /** Remote logs that could not be opened; each is retried with backoff. */
  openFailures: Array<{ key: string, error: string, attempts: number }>
  /** The database's identity: cursors are comparable only within one epoch. */
  epoch: string
  /** Writers known, logs open now, and logs opened since the node started (cost follows the open ones). */
  logs: { known: number, open: number, opened: number }
}

/** Resources whose latest event id is kept in memory for parents; older ones are looked up. */
const LAST_SEEN_MEMORY = 10_000

export interface ResetInfo { epoch: string, cursor: number }
export interface CursorOptions {
  since?: number
  /** The epoch `since` was read in; from another epoch, replay restarts at 0 after onReset. */
  epoch?: string
  /** Called when the given cursor belongs to another epoch, and when a reindex starts a new epoch under a live subscription. */
  onReset?: (reset: ResetInfo) => void
}

export interface ListEventsQuery { type?: EventType, resourceId?: string, since?: number, limit?: number }

/** Events projected per second, averaged over the last ten whole seconds: ten counters, O(1) per commit. */
class EventRate {
  private readonly buckets = new Array<number>(10).fill(0)
  private second = Math.floor(Date.now() / 1000)

  add (count: number): void {
    this.advance()
    this.buckets[this.second % this.buckets.length] += count
  }

  perSecond (): number {
    this.advance()
    return Math.round(this.buckets.reduce((a, b) => a + b, 0) / this.buckets.length)
  }

  private advance (): void {
    const now = Math.floor(Date.now() / 1000)
    for (let s = this.second + 1; s <= now && s <= this.second + this.buckets.length; s++) this.buckets[s % this.buckets.length] = 0
    this.second = Math.max(this.second, now)
  }
}
const FORK_CHECK_MS = 1000

/** A session hosted by this node: its own log, and the work-item API writing to it. */
export class CrosscastSession implements Writer {
  readonly sessionId: string
  readonly agent: string
  readonly features: FeatureCollection
  readonly tracks: TrackCollection
  readonly spikes: SpikeCollection
  readonly log: SessionLog
  readonly feed: WriterFeed
  private readonly node: Crosscast

  constructor (node: Crosscast, log: SessionLog, feed: WriterFeed) {
    this.node = node
    this.log = log
    this.feed = feed
    this.sessionId = log.sessionId
    this.agent = log.agentId
    this.features = new FeatureCollection(this)
    this.tracks = new TrackCollection(this)
    this.spikes = new SpikeCollection(this)
  }

  get writerKey (): string {
    return this.log.key.toString('hex')
  }

  get state (): StateReader {
    return this.node.state
  }

  /** Claims an item for this session (see Crosscast#claim). */
  claim (id: string, opts: ClaimOptions = {}): Promise<ClaimResult> {
    return this.node._claims.claim(this, id, opts)
  }

  release (id: string): Promise<void> {
    return this.node._claims.release(this, id)
  }

  newId (type: ResourceType): string {
    return this.node.newId(type)
  }

  /**
   * Validates every draft first (nothing is written if one is bad), then writes
   * them in ONE block; resolves once they are durable and projected.
   */
  append (drafts: EventDraft[], opts: { agent?: string } = {}): Promise<BroadcastEvent[]> {
    try {
      if (!Array.isArray(drafts) || drafts.length === 0) throw new CrosscastError('MISSING_FIELD', 'append() needs at least one event', { field: 'events' })
      const agent = opts.agent === undefined ? undefined : validateLabel(opts.agent, 'agent')
      const valid = drafts.map(d => {
        const v = validateDraft(d, this.node.maxPayloadBytes)
        if (v.agent_id === undefined && agent !== undefined) v.agent_id = agent
        return v
      })
      return this.node._write(this, valid)
    } catch (err) {
      return Promise.reject(err)
    }
  }
}

export class Crosscast extends EventEmitter implements Writer {
  readonly storage: string
  readonly room: string
  readonly db: Database
  readonly logger: Logger
  readonly state: StateReader
  readonly maxPayloadBytes: number
  private readonly options: ResolvedOptions
  private readonly store: Corestore
  private readonly projector: Projector
  private readonly hub: SubscriptionHub
  private readonly reader: EventReader
  private readonly clock = new HybridLogicalClock()
  /** The latest event on each recent resource (null: an id generated here that has none yet). */
  private readonly lastSeen = new LruMap<string, string | null>(LAST_SEEN_MEMORY)
  private readonly latestOnResource: ReturnType<Database['prepare']>
  private readonly registry: WriterRegistry
  private readonly sessions = new Map<string, Promise<CrosscastSession>>()
  private readonly sessionsClosing = new Map<string, Promise<void>>()
  private readonly localKeys = new Set<string>()
  private readonly rate = new EventRate()
  private network: NodeNetwork | null = null
  private forkCheck: NodeJS.Timeout | null = null
  private defaultSession!: CrosscastSession
  private closing: Promise<void> | null = null
  private reindexing: Promise<void> | null = null

  private constructor (options: ResolvedOptions, store: Corestore, db: Database, writers: WriterStore) {
    super()
    this.options = options
    this.storage = options.storage
    this.room = options.room
    this.maxPayloadBytes = options.maxPayloadBytes
    this.logger = childLogger(options.logger, { component: 'crosscast' })
    this.store = store
    this.db = db
    this.state = new StateReader(db)
    this.reader = new EventReader(db)
    this.latestOnResource = db.prepare('SELECT event_id FROM broadcast_events WHERE resource_id = ? ORDER BY cursor DESC LIMIT 1')
    this.projector = new Projector(db, {
      logger: this.logger,
      maxPayloadBytes: options.maxPayloadBytes,
      onCommit: (events) => this.onCommit(events),
      onObserve: (event) => this.observe(event)
    })
    this.hub = new SubscriptionHub(this.reader, () => this.projector.lastCursor, () => this.projector.epoch, this.logger)
    this.registry = new WriterRegistry({
      store,
      writers,
      projector: this.projector,
      logger: this.logger,
      allowList: options.writers,
      idleMs: options.writerIdleMs,
      connected: () => this.network?.peers().some(p => p.authenticated) ?? false,
      onLength: (key) => this.network?.announceLength(key),
      onDivergence: (reason) => {
        if (this.closing !== null) return
        this.logger.warn({ reason }, 'a log opened on demand is behind or on another fork than the database; rebuilding it from the logs (new cursor epoch)')
        this.reindex().catch((err: Error) => this.logger.error({ err: err.message }, 'rebuilding after a divergent log failed'))
      }
    })
    this._claims = new ClaimManager(this)
  }

  /** @internal */
  readonly _claims: ClaimManager

  /**
   * Claims an item (any feature, track or spike) for this node's session.
   * Rejects with CLAIMED, naming the holder, when another session's live claim
   * is known here. Claims made apart resolve to the same winner on every peer
   * (the earliest); the other session's node emits `claim-lost`.
   */
  claim (id: string, opts: ClaimOptions = {}): Promise<ClaimResult> {
    return this.defaultSession.claim(id, opts)
  }

  /** Gives up this session's claim on the item (no-op when it holds none). */
  release (id: string): Promise<void> {
    return this.defaultSession.release(id)
  }

  /** Who holds a live claim on the item, as this node knows now. */
  claimOf (id: string): ClaimHolder | null {
    return this._claims.holder(id)
  }

  /** @internal */
  _presence: Presence | null = null

  /** Sessions online now (this node's first), with the items each holds; `presence` is emitted when it changes. */
  presence (): PresenceEntry[] {
    return this._presence?.entries() ?? []
  }

  /** @internal */
  _relayKey (): string | null {
    return this.network?.relayKey() ?? null
  }

  /** @internal */
  _relayLearnt (key: string): void {
    this.network?.addRelay(key)
  }

  /** @internal a connection passed the room handshake */
  _peerAuthenticated (stream: NoiseSecretStream): void {
    this._presence?.attach(stream)
  }

  /** Todo features whose dependencies are done and that no live claim holds, by priority then age. */
  ready (opts: { limit?: number } = {}): Feature[] {
    return this._claims.ready(opts).map(record => new Feature(this.defaultSession, record))
  }

  /** Opens (or creates) a node. Never waits on the network: discovery starts in the background. */
  static async open (input: CrosscastOptions): Promise<Crosscast> {
    const options = resolveOptions(input)
    await mkdir(options.storage, { recursive: true })
    const store = new Corestore(join(options.storage, 'cores'))
    try {
      await store.ready()
    } catch (err) {
      await store.close().catch(() => {})
      const message = (err as Error).message ?? ''
      if (/lock/i.test(message)) {
        const holder = await describeOwner(options.storage)
        throw new CrosscastError('STORAGE_LOCKED', `storage ${options.storage} is open in another process${holder === null ? '' : `: ${holder}`}; stop that process or use another storage directory`, { field: 'storage', cause: err })
      }
      throw err
    }
    let db: Database | null = null
    let writers: WriterStore | null = null
    try {
      await recordOwner(options.storage)
      writers = await WriterStore.open(options.storage, options.logger)
      db = new BetterSqlite3(join(options.storage, 'crosscast.db'))
      configure(db)
      migrate(db)
      const node = new Crosscast(options, store, db, writers)
      await node.init()
      return node
    } catch (err) {
      db?.close()
      writers?.close()
      await store.close().catch(() => {})
      throw err
    }
  }

  private async init (): Promise<void> {
    this.registry.recoverFromCheckpoints()
    // Only logs someone may be behind on: those left open (maybe unprojected) and those behind the database's view.
    // A closed log stays closed; peers still fetch it from us (corestore serves what it stores).
    await this.registry.openKnown()
    await this.registry.openLocal(this.options.sessionId, this.options.agent)
    // Checked before anything is projected: a forked log's new blocks must not land on the old fork's state.
    const divergence = this.registry.divergence()
    if (divergence !== null) {
      this.logger.warn({ reason: divergence }, 'the database is ahead of or on another fork than a log; rebuilding it from the logs (new cursor epoch)')
      await this.rebuild()
    }
    this.registry.start()
    this.defaultSession = await this.session({ sessionId: this.options.sessionId, agent: this.options.agent })
    await this.restoreClock()
    // Catch up what earlier runs left unprojected (a crash between append and commit).
    await this.registry.drainAll()
    this._claims.adopt(this.defaultSession)
    this._presence = nodePresence(this)
    // Started even with swarm and LAN off: replicate() can still carry the room over any stream.
    this.network = new NodeNetwork(this, this.options, this.logger)
    await this.network.start()
    this.forkCheck = setInterval(() => this.registry.checkForks(), FORK_CHECK_MS)
    this.forkCheck.unref()
  }

  /**
   * The clock resumes from the largest clock stored (in the database and in
   * the last block of each own log, which may not have been projected), under
   * the same window as a peer's clock: after the machine's clock stepped back,
   * a new write still follows every write made before.
   */
  private async restoreClock (): Promise<void> {
    let largest = this.projector.maxHlc()
    for (const feed of this.registry.feeds.values()) {
      if (feed.info.local) largest = Math.max(largest, await lastBlockHlc(feed.core))
    }
    this.clock.observe(largest)
  }

  get sessionId (): string { return this.defaultSession.sessionId }
  get agent (): string { return this.defaultSession.agent }
  get writerKey (): string { return this.defaultSession.writerKey }
  get features (): FeatureCollection { return this.defaultSession.features }
  get tracks (): TrackCollection { return this.defaultSession.tracks }
  get spikes (): SpikeCollection { return this.defaultSession.spikes }
  get closed (): boolean { return this.closing !== null }

  append (drafts: EventDraft[], opts: { agent?: string } = {}): Promise<BroadcastEvent[]> {
    return this.defaultSession.append(drafts, opts)
  }

  /**
   * Another session hosted by this node, with its own log (the gateway opens
   * one per X-Session-ID). The same id returns the same session.
   */
  session (opts: { sessionId: string, agent?: string }): Promise<CrosscastSession> {
    if (this.closing !== null) return Promise.reject(new CrosscastError('CLOSED', 'the node is closed'))
    let sessionId: string
    let agent: string
    try {
      sessionId = validateLabel(opts.sessionId, 'sessionId')
      agent = validateLabel(opts.agent ?? this.options.agent, 'agent')
    } catch (err) {
      return Promise.reject(err)
    }
    let pending = this.sessions.get(sessionId)
    if (pending === undefined) {
      // A session being closed (idle) is reopened only once its log is closed.
      const closing = this.sessionsClosing.get(sessionId)
      pending = closing === undefined ? this.openSession(sessionId, agent) : closing.then(() => this.openSession(sessionId, agent))
      this.sessions.set(sessionId, pending)
      pending.catch(() => this.sessions.delete(sessionId))
    }
    return pending
  }

  private async openSession (sessionId: string, agent: string): Promise<CrosscastSession> {
    const feed = await this.registry.openLocal(sessionId, agent)
    this.localKeys.add(feed.key)
    const log = new SessionLog(feed.core, {
      sessionId,
      agentId: agent,
      maxBlockEvents: this.options.maxBlockEvents,
      maxBlockBytes: this.options.maxBlockBytes,
      stamp: (resourceId, eventId) => this.stamp(resourceId, eventId),
      sink: feed
    })
    this.network?.announce(feed.info)
    return new CrosscastSession(this, log, feed)
  }

  /**
   * Closes a hosted session's log (the gateway does so for idle sessions). It
   * stays known; session() with the same id reopens it. The default session
   * cannot be closed. `end: true` first appends the signed end marker: the
   * session says it is done, so no node opens its log again unless someone is
   * behind on it (a later write with the same id still works and is followed).
   */
  closeSession (sessionId: string, opts: { end?: boolean } = {}): Promise<void> {
    const pending = this.sessions.get(sessionId)
    if (pending === undefined || sessionId === this.options.sessionId) return this.sessionsClosing.get(sessionId) ?? Promise.resolve()
    this.sessions.delete(sessionId)
    const closing = (async () => {
      const session = await pending.catch(() => null)
      if (session === null) return
      await session.log.drained()
      if (opts.end === true && session.feed.ended !== true) await session.log.end()
      await session.feed.drain()
      this.localKeys.delete(session.writerKey)
      await this.registry.closeWriter(session.writerKey)
    })().finally(() => this.sessionsClosing.delete(sessionId))
    this.sessionsClosing.set(sessionId, closing)
    return closing
  }

  /** How many sessions this node hosts right now (with open logs). */
  get sessionCount (): number {
    return this.sessions.size
  }

  /** @internal the write path shared by every session. */
  _write (session: CrosscastSession, drafts: EventDraft[]): Promise<BroadcastEvent[]> {
    if (this.closing !== null) return Promise.reject(new CrosscastError('CLOSED', 'the node is closed'))
    // Not an async function: a save is one promise fewer when no reindex runs (the usual case).
    if (this.reindexing !== null) return this.reindexing.then(() => session.log.write(drafts))
    return session.log.write(drafts)
  }

  /**
   * A generated id for a new item (see newResourceId). The node notes that it
   * has no events yet, so its first write takes no lookup for a parent; an event
   * on it that arrives meanwhile replaces the note, as for any resource.
   */
  newId (type: ResourceType): string {
    const id = newResourceId(type)
    this.lastSeen.set(id, null)
    return id
  }

  private stamp (resourceId: string, eventId: string): { hlc: number, parent: string | null } {
    let parent = this.lastSeen.peek(resourceId)
    if (parent === undefined) {
      const row = this.latestOnResource.get(resourceId) as { event_id: string } | undefined
      parent = row?.event_id ?? null
    }
    this.lastSeen.set(resourceId, eventId)
    return { hlc: this.clock.now(), parent }
  }

  private observe (event: BroadcastEvent): void {
    this.clock.observe(event.hlc)
    // Own events set lastSeen when they are stamped; a later projection of them would move it back.
    if (!this.localKeys.has(event.writer)) this.lastSeen.set(event.resource_id, event.event_id)
  }

  private onCommit (events: BroadcastEvent[]): void {
    this.rate.add(events.length)
    this.hub.publish(events)
    this.emit('events', events)
  }

  // ---- remote writers (called by the network) ----

  /** Every writer this node knows, open or closed. */
  listWriters (): KnownWriter[] {
    return this.registry.list()
  }

  /** @internal writers with the length of their log this node holds, for gossip (all of them, or these keys). */
  _writerLengths (keys?: Iterable<string>): WriterLength[] {
    return this.registry.lengths(keys)
  }

  /** @internal peers told us about writers (one gossip message); returns the new ones, now persisted (and downloading if this node is behind). */
  async _addRemoteWriters (infos: WriterLength[]): Promise<KnownWriter[]> {
    if (this.closing !== null) return []
    return await this.registry.addRemote(infos)
  }

  /**
   * Replicates this node's room over any duplex stream (a pipe, an SSH tunnel,
   * a TCP socket): it is wrapped in a Noise secret stream, must pass the room
   * handshake like any peer, and is deduplicated against other connections to
   * the same peer. Call it on both ends, one with isInitiator true. Returns the
   * encrypted stream; destroy it (or the raw one) to disconnect.
   */
  replicate (isInitiator: boolean, rawStream: Duplex): NoiseSecretStream {
    if (this.closing !== null || this.network === null) throw new CrosscastError('CLOSED', 'the node is closed')
    if (typeof isInitiator !== 'boolean') throw new CrosscastError('INVALID_OPTION', 'replicate(isInitiator, stream): isInitiator must be true or false', { field: 'isInitiator' })
    return this.network.replicate(isInitiator, rawStream)
  }

  /** @internal the corestore, for replication. */
  get _store (): Corestore {
    return this.store
  }

  /** @internal every open feed, by writer key (tests read logs through it). */
  get feeds (): ReadonlyMap<string, WriterFeed> {
    return this.registry.feeds
  }

  // ---- reading ----

  /**
   * Calls `callback` for each matching event: with `since`, first what came
   * after that cursor, then live. Pass the `epoch` the cursor was read in: from
   * another epoch (the database was rebuilt) `onReset` is called and replay
   * starts at 0 instead of silently skipping or repeating events.
   */
  subscribe (filter: SubscriptionFilter, callback: (event: BroadcastEvent) => void, opts: CursorOptions = {}): () => void {
    if (typeof callback !== 'function') throw new CrosscastError('INVALID_OPTION', 'subscribe() needs a callback function', { field: 'callback' })
    return this.hub.subscribe(this.compile(filter), callback, checkCursorOptions(opts))
  }

  events (opts: CursorOptions & { filter?: SubscriptionFilter, signal?: AbortSignal } = {}): AsyncGenerator<BroadcastEvent> {
    return this.hub.iterate(this.compile(opts.filter), checkCursorOptions(opts), opts.signal)
  }

  /** The database's identity: a cursor is only meaningful with the epoch it was read in. */
  get epoch (): string {
    return this.projector.epoch
  }

  private compile (filter: SubscriptionFilter | undefined) {
    return compileFilter(validateFilter(filter), (id) => this.state.trackOf(id), () => this.localKeys)
  }

  /** The audit trail after a cursor, oldest first, with the cursor to pass for the next page. */
  listEvents (query: ListEventsQuery = {}): { events: BroadcastEvent[], next_cursor: number | null, epoch: string } {
    const filter: SubscriptionFilter = {}
    if (query.type !== undefined) filter.eventTypes = [query.type]
    if (query.resourceId !== undefined) filter.resourceIds = [query.resourceId]
    const compiled = this.compile(filter)
    const limit = query.limit ?? 100
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new CrosscastError('INVALID_OPTION', `limit must be an integer from 1 to 1000, got ${String(limit)}`, { field: 'limit' })
    const since = query.since ?? 0
    if (!Number.isSafeInteger(since) || since < 0) throw new CrosscastError('INVALID_CURSOR', `since must be a non-negative integer cursor, got ${String(since)}`, { field: 'since' })
    const events = this.reader.after(since, compiled.sql, compiled.params, limit + 1)
    const more = events.length > limit
    if (more) events.length = limit
    return { events, next_cursor: more ? events[events.length - 1].cursor : null, epoch: this.projector.epoch }
  }

  /** One event by id, or null. */
  getEvent (eventId: string): BroadcastEvent | null {
    if (typeof eventId !== 'string' || !/^[0-9a-f]{32}$/.test(eventId)) return null
    const row = this.db.prepare(`SELECT ${EVENT_COLUMNS} FROM broadcast_events WHERE ${WHERE_EVENT_ID}`).get(...eventIdParams(eventId)) as Record<string, unknown> | undefined
    return row === undefined ? null : rowToEvent(row)
  }

  conflicts (query: { resourceId?: string } = {}): ConflictRecord[] {
    return this.state.conflicts(query.resourceId)
  }

  get lastCursor (): number {
    return this.projector.lastCursor
  }

  get subscriberCount (): number {
    return this.hub.size
  }

  status (): NodeStatus {
    const checkpoints = new Map(this.projector.writers().map(w => [w.key, w]))
    const closed: WriterStatus[] = []
    for (const w of this.registry.list()) {
      const at = this.registry.closedAt(w.key)
      if (at === null) continue
      const cp = checkpoints.get(w.key)
      closed.push({ key: w.key, sessionId: w.sessionId, agentId: w.agentId, local: w.local, length: at.held, indexed: cp?.indexed ?? 0, lag: 0, skipped: cp?.skipped ?? 0, lastError: cp?.lastError ?? null, held: null, distrusted: null, open: false, ended: at.ended })
    }
    const writers: WriterStatus[] = [...this.registry.feeds.values()].map(feed => {
      const cp = checkpoints.get(feed.key)
      const length = feed.core.length
      const indexed = cp?.indexed ?? 0
      const reading = feed.distrusted === null ? length : Math.min(length, feed.distrusted.length)
      return {
        key: feed.key,
        sessionId: feed.info.sessionId,
        agentId: feed.info.agentId,
        local: feed.info.local,
        length,
        indexed,
        lag: Math.max(0, reading - indexed),
        skipped: cp?.skipped ?? 0,
        lastError: feed.lastError ?? feed.distrusted?.reason ?? feed.held?.reason ?? cp?.lastError ?? null,
        held: feed.held,
        distrusted: feed.distrusted,
        open: true,
        ended: feed.ended === true
      }
    })
    writers.push(...closed)
    const total = this.projector.eventCount
    return {
      sessionId: this.sessionId,
      agent: this.agent,
      room: this.room,
      writerKey: this.writerKey,
      peers: this.network?.peers() ?? [],
      writers,
      events: { total, perSecond: this.rate.perSecond() },
      lag: writers.reduce((n, w) => n + w.lag, 0),
      rejected: { peers: this.network?.rejected().peers ?? 0, writers: this.registry.rejectedCount, reasons: this.network?.rejected().reasons ?? [] },
      openFailures: this.registry.failures(),
      epoch: this.projector.epoch,
      logs: { known: this.registry.knownCount, open: this.registry.feeds.size, opened: this.registry.opened }
    }
  }

  /**
   * Rebuilds the whole projection from the logs, under a new epoch. Writes wait
   * until it is done; live subscribers are not sent history again: they get
   * onReset with the new epoch and the position they are at in it, then every
   * event projected after (including what peers sent during the rebuild).
   */
  async reindex (onProgress?: (done: number, total: number) => void): Promise<void> {
    if (this.closing !== null) throw new CrosscastError('CLOSED', 'the node is closed')
    if (this.reindexing !== null) return await this.reindexing
    this.reindexing = this.rebuild(onProgress).finally(() => { this.reindexing = null })
    return await this.reindexing
  }

  private async rebuild (onProgress?: (done: number, total: number) => void): Promise<void> {
    const sessions = await Promise.all(this.sessions.values())
    await Promise.all(sessions.map(s => s.log.drained()))
    this.lastSeen.clear()
    const epoch = await this.registry.rebuild(onProgress)
    this.hub.reset(epoch, this.projector.lastCursor)
  }

  /** Closes the network, every log and the database. Idempotent. */
  close (): Promise<void> {
    if (this.closing === null) this.closing = this.doClose()
    return this.closing
  }

  private async doClose (): Promise<void> {
    if (this.forkCheck !== null) clearInterval(this.forkCheck)
    this._claims.close()
    this._presence?.close()
    await this.network?.close()
    const sessions = await Promise.allSettled(this.sessions.values())
    for (const s of sessions) if (s.status === 'fulfilled') await s.value.log.drained()
    if (this.reindexing !== null) await this.reindexing.catch(() => {})
    await Promise.allSettled(this.sessionsClosing.values())
    // Saves still waiting are durable: one last pass projects them, and stopping resolves any left.
    await this.registry.drainAll()
    await this.registry.close()
    this.hub.close()
    await clearOwner(this.options.storage)
    await this.store.close()
    this.db.close()
    this.emit('close')
  }
}

function checkCursorOptions (opts: CursorOptions): CursorOptions {
  if (opts === null || typeof opts !== 'object') throw new CrosscastError('INVALID_OPTION', 'options must be an object', { field: 'options' })
  if (opts.epoch !== undefined && (typeof opts.epoch !== 'string' || opts.epoch.length === 0 || opts.epoch.length > 64)) {
    throw new CrosscastError('INVALID_CURSOR', `epoch must be the epoch string a cursor was read in, got ${JSON.stringify(opts.epoch)}`, { field: 'epoch' })
  }
  if (opts.onReset !== undefined && typeof opts.onReset !== 'function') throw new CrosscastError('INVALID_OPTION', 'onReset must be a function', { field: 'onReset' })
  return opts
}

export type { Hypercore }
