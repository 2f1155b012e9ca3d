// The public facade. One Crosscast is one node: a corestore of logs (its own
// sessions' and its peers'), one SQLite projection, one subscription hub and,
// unless disabled, the network that finds peers and replicates every log.

import { EventEmitter } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import Corestore from 'corestore'
import type Hypercore from 'hypercore'
import BetterSqlite3, { type Database } from 'better-sqlite3'
import { CrosscastError } from '../errors.ts'
import { HybridLogicalClock } from '../events/hlc.ts'
import { validateDraft, validateLabel } from '../events/validate.ts'
import type { BroadcastEvent, EventDraft, EventType } from '../events/types.ts'
import { SessionLog } from '../log/session-log.ts'
import { configure, migrate, clearProjection } from '../projection/schema.ts'
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
import { WriterFile, WriterFeed, type KnownWriter } from './writers.ts'
import { NodeNetwork, type PeerStatus } from './network.ts'
import type { Duplex } from 'node:stream'
import type NoiseSecretStream from '@hyperswarm/secret-stream'

export interface WriterStatus { key: string, sessionId: string | null, agentId: string | null, local: boolean, length: number, indexed: number, lag: number, skipped: number, lastError: string | null }

export interface NodeStatus {
  sessionId: string
  agent: string
  room: string
  writerKey: string
  peers: PeerStatus[]
  writers: WriterStatus[]
  events: { total: number, perSecond: number }
  lag: number
  rejected: { peers: number, writers: number }
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

/** Hypercore's per-peer replication state; not in its typings. */
interface RemoteCoreState { remoteSynced: boolean, remoteFork: number, remoteLength: number }

/** A session hosted by this node: its own log, and the work-item API writing to it. */
export class CrosscastSession implements Writer {
  readonly sessionId: string
  readonly agent: string
  readonly features: FeatureCollection
  readonly tracks: TrackCollection
  readonly spikes: SpikeCollection
  readonly log: SessionLog
  private readonly node: Crosscast

  constructor (node: Crosscast, log: SessionLog) {
    this.node = node
    this.log = log
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
  private readonly lastSeen = new Map<string, string>()
  private readonly latestOnResource: ReturnType<Database['prepare']>
  private readonly writerFile: WriterFile
  private readonly sessions = new Map<string, Promise<CrosscastSession>>()
  private readonly feeds = new Map<string, WriterFeed>()
  private readonly localKeys = new Set<string>()
  private readonly rate = new EventRate()
  private network: NodeNetwork | null = null
  private forkCheck: NodeJS.Timeout | null = null
  private defaultSession!: CrosscastSession
  private closing: Promise<void> | null = null
  private reindexing: Promise<void> | null = null

  private constructor (options: ResolvedOptions, store: Corestore, db: Database) {
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
    this.writerFile = new WriterFile(options.storage)
    this.latestOnResource = db.prepare('SELECT event_id FROM broadcast_events WHERE resource_id = ? ORDER BY cursor DESC LIMIT 1')
    this.projector = new Projector(db, {
      logger: this.logger,
      maxPayloadBytes: options.maxPayloadBytes,
      onCommit: (events) => this.onCommit(events),
      onObserve: (event) => this.observe(event)
    })
    this.hub = new SubscriptionHub(this.reader, () => this.projector.lastCursor, this.logger)
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
        throw new CrosscastError('STORAGE_LOCKED', `storage ${options.storage} is open in another process; use another storage directory per process`, { field: 'storage', cause: err })
      }
      throw err
    }
    let db: Database | null = null
    try {
      db = new BetterSqlite3(join(options.storage, 'crosscast.db'))
      configure(db)
      migrate(db)
      const node = new Crosscast(options, store, db)
      await node.init()
      return node
    } catch (err) {
      db?.close()
      await store.close().catch(() => {})
      throw err
    }
  }

  private async init (): Promise<void> {
    const known = await this.writerFile.read()
    for (const writer of known) {
      // Every log stays open: reindex replays them, and peers may fetch any of them from us.
      if (writer.local) await this.session({ sessionId: writer.sessionId, agent: writer.agentId })
      else await this.openRemote(writer, false)
    }
    this.defaultSession = await this.session({ sessionId: this.options.sessionId, agent: this.options.agent })
    // Catch up what earlier runs left unprojected (a crash between append and commit).
    await Promise.all([...this.feeds.values()].map(feed => feed.drain()))
    this._claims.adopt(this.defaultSession)
    this._presence = nodePresence(this)
    // Started even with swarm and LAN off: replicate() can still carry the room over any stream.
    {
      this.network = new NodeNetwork(this, this.options, this.logger)
      await this.network.start()
      this.forkCheck = setInterval(() => this.checkForks(), FORK_CHECK_MS)
      this.forkCheck.unref()
    }
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
      pending = this.openSession(sessionId, agent)
      this.sessions.set(sessionId, pending)
      pending.catch(() => this.sessions.delete(sessionId))
    }
    return pending
  }

  private async openSession (sessionId: string, agent: string): Promise<CrosscastSession> {
    const core = this.store.get({ name: `crosscast/session/${sessionId}` })
    await core.ready()
    const key = core.key.toString('hex')
    this.localKeys.add(key)
    const info: KnownWriter = { key, sessionId, agentId: agent, local: true }
    this.projector.registerWriter(key, { sessionId, agentId: agent, local: true })
    const feed = new WriterFeed(core, info, this.projector, this.logger)
    this.feeds.set(key, feed)
    await feed.drain()
    await this.persistWriters()
    const log = new SessionLog(core, {
      sessionId,
      agentId: agent,
      maxBlockEvents: this.options.maxBlockEvents,
      maxBlockBytes: this.options.maxBlockBytes,
      stamp: (resourceId, eventId) => this.stamp(resourceId, eventId),
      project: (seq, block, events) => this.projector.applyBlocks(key, [{ seq, block, decoded: { sessionId, events } }])
    })
    this.network?.announce(info)
    return new CrosscastSession(this, log)
  }

  /** @internal the write path shared by every session. */
  async _write (session: CrosscastSession, drafts: EventDraft[]): Promise<BroadcastEvent[]> {
    if (this.closing !== null) throw new CrosscastError('CLOSED', 'the node is closed')
    if (this.reindexing !== null) await this.reindexing
    return await session.log.write(drafts)
  }

  private stamp (resourceId: string, eventId: string): { hlc: number, parent: string | null } {
    let parent = this.lastSeen.get(resourceId)
    if (parent === undefined) {
      const row = this.latestOnResource.get(resourceId) as { event_id: string } | undefined
      parent = row?.event_id
    }
    this.lastSeen.set(resourceId, eventId)
    return { hlc: this.clock.now(), parent: parent ?? null }
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

  /** Every writer this node knows, for gossip. */
  listWriters (): KnownWriter[] {
    return [...this.feeds.values()].map(feed => feed.info)
  }

  /** @internal a peer told us about a writer; true when it was new and is now being downloaded. */
  async _addRemoteWriter (info: KnownWriter): Promise<boolean> {
    if (this.closing !== null || this.feeds.has(info.key)) return false
    if (this.options.writers !== undefined && !this.options.writers.includes(info.key)) {
      this.logger.warn({ writer: info.key, session: info.sessionId }, 'ignored a writer that is not on the allow-list')
      this.rejectedWriters.add(info.key)
      return false
    }
    await this.openRemote({ ...info, local: false }, true)
    return true
  }

  /** @internal */
  readonly rejectedWriters = new Set<string>()

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

  private async openRemote (info: KnownWriter, persist: boolean): Promise<void> {
    if (this.options.writers !== undefined && !this.options.writers.includes(info.key)) return
    const core = this.store.get({ key: Buffer.from(info.key, 'hex'), allowFork: false })
    const feed = new WriterFeed(core, info, this.projector, this.logger)
    this.feeds.set(info.key, feed)
    await core.ready()
    this.projector.registerWriter(info.key, { sessionId: info.sessionId, agentId: info.agentId, local: false })
    core.on('append', () => { feed.drain().catch(err => this.logger.error({ err }, 'projecting a writer failed')) })
    core.on('download', () => { if (core.contiguousLength > this.projector.indexedLength(info.key)) feed.drain().catch(() => {}) })
    core.on('truncate', (length: number, fork: number) => feed.distrust(`log truncated to ${length} blocks (fork ${fork})`))
    // Two signed versions of one length: hypercore closes the core itself.
    core.on('conflict', (length: number, fork: number) => feed.distrust(`two signed versions of the log at length ${length} (fork ${fork})`))
    core.download({ start: 0, end: -1 })
    if (persist) await this.persistWriters()
    feed.drain().catch(err => this.logger.error({ err }, 'projecting a writer failed'))
  }

  /**
   * With allowFork: false hypercore silently ignores a peer that is on a newer
   * fork of a log (its writer truncated and rewrote it): only the peers' sync
   * state shows it, so it is polled.
   */
  private checkForks (): void {
    for (const feed of this.feeds.values()) {
      if (feed.info.local || feed.stopped || feed.core.closed) continue
      for (const peer of feed.core.peers as unknown as RemoteCoreState[]) {
        if (peer.remoteSynced === true && peer.remoteLength > 0 && peer.remoteFork !== feed.core.fork) {
          feed.distrust(`a peer holds fork ${peer.remoteFork} of the log (length ${peer.remoteLength}) where this node holds fork ${feed.core.fork} (length ${feed.core.length})`)
          break
        }
      }
    }
  }

  private async persistWriters (): Promise<void> {
    await this.writerFile.save(this.listWriters())
  }

  // ---- reading ----

  subscribe (filter: SubscriptionFilter, callback: (event: BroadcastEvent) => void, opts: { since?: number } = {}): () => void {
    if (typeof callback !== 'function') throw new CrosscastError('INVALID_OPTION', 'subscribe() needs a callback function', { field: 'callback' })
    return this.hub.subscribe(this.compile(filter), callback, opts.since)
  }

  events (opts: { since?: number, filter?: SubscriptionFilter, signal?: AbortSignal } = {}): AsyncGenerator<BroadcastEvent> {
    return this.hub.iterate(this.compile(opts.filter), opts.since, opts.signal)
  }

  private compile (filter: SubscriptionFilter | undefined) {
    return compileFilter(validateFilter(filter), (id) => this.state.trackOf(id), () => this.localKeys)
  }

  /** The audit trail after a cursor, oldest first, with the cursor to pass for the next page. */
  listEvents (query: ListEventsQuery = {}): { events: BroadcastEvent[], next_cursor: number | null } {
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
    return { events, next_cursor: more ? events[events.length - 1].cursor : null }
  }

  /** One event by id, or null. */
  getEvent (eventId: string): BroadcastEvent | null {
    const row = this.db.prepare(`SELECT ${EVENT_COLUMNS} FROM broadcast_events WHERE event_id = ?`).get(eventId) as Record<string, unknown> | undefined
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
    const writers: WriterStatus[] = [...this.feeds.values()].map(feed => {
      const cp = checkpoints.get(feed.info.key)
      const length = feed.core.length
      const indexed = cp?.indexed ?? 0
      return { key: feed.info.key, sessionId: feed.info.sessionId, agentId: feed.info.agentId, local: feed.info.local, length, indexed, lag: Math.max(0, length - indexed), skipped: cp?.skipped ?? 0, lastError: cp?.lastError ?? null }
    })
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
      rejected: { peers: this.network?.rejectedPeers ?? 0, writers: this.rejectedWriters.size }
    }
  }

  /**
   * Rebuilds the whole projection from the logs. Writes wait until it is done;
   * subscribers are not sent history again.
   */
  async reindex (onProgress?: (done: number, total: number) => void): Promise<void> {
    if (this.reindexing !== null) return await this.reindexing
    const run = async (): Promise<void> => {
      const sessions = await Promise.all(this.sessions.values())
      await Promise.all(sessions.map(s => s.log.drained()))
      this.projector.publishing = false
      try {
        clearProjection(this.db)
        this.projector.reset()
        this.lastSeen.clear()
        const feeds = [...this.feeds.values()]
        const total = feeds.reduce((n, f) => n + f.core.contiguousLength, 0)
        let before = 0
        for (const feed of feeds) {
          await feed.drain()
          before += feed.core.contiguousLength
          onProgress?.(before, total)
        }
      } finally {
        this.projector.publishing = true
      }
    }
    this.reindexing = run().finally(() => { this.reindexing = null })
    return await this.reindexing
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
    this.hub.close()
    for (const feed of this.feeds.values()) feed.stopped = true
    await this.store.close()
    this.db.close()
    this.emit('close')
  }
}

export type { Hypercore }
