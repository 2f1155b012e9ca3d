// Every log this node knows, its own and its peers', and the one road from a
// log to subscribers: SessionLog → WriterFeed → Projector → SubscriptionHub.
// A local block takes the same road as a remote one (its events ride along as
// a cache hint), so a failed projection is retried from the log and heals, and
// a node's view of its own writes never differs from its peers' view of them.

import type Corestore from 'corestore'
import type Hypercore from 'hypercore'
import { decodeBlock, HARD_MAX_PAYLOAD_BYTES } from '../events/codec.ts'
import type { BroadcastEvent } from '../events/types.ts'
import type { BlockSink } from '../log/session-log.ts'
import { wireToEvent, type Projector, type BlockInput, type Hold, type ApplyOutcome, type WriterBlocks, type HintedBlock } from '../projection/projector.ts'
import { buildReaderIndexes, clearProjection } from '../projection/schema.ts'
import type { Logger } from '../logger.ts'
import { LruMap } from './bounded.ts'
import { WriterStore, type KnownWriter, type Distrust, type ClosedAt } from './writer-store.ts'

export type { KnownWriter } from './writer-store.ts'

/** Blocks read per projector transaction while catching up: large enough to amortize the commit, small enough to keep the thread responsive. */
const BLOCKS_PER_TRANSACTION = 128
/** Own blocks' projected events kept for their saves, at most (see WriterFeed.unclaimed). */
const UNCLAIMED_BLOCKS = 256
/** How often a writer whose next block is stamped too far ahead is looked at again. */
const CLOCK_HOLD_RETRY_MS = 5_000
/** Backoff after a failed read or projection, doubling from the first to the last. */
const RETRY_FIRST_MS = 100
const RETRY_MAX_MS = 30_000
/** Refused writers remembered (for status and to not log them twice); the count is kept exactly. */
const REJECTED_MEMORY = 1024
/** Cores opened at once while learning a gossiped batch of writers. */
const OPEN_PARALLEL = 32
/** How long blocks read while other logs' reads are under way wait to share their transaction, at most. */
const COALESCE_MS = 5
/** Blocks that share one transaction, at most, before it commits without waiting for more. */
const COALESCE_BLOCKS = 1024

/**
 * Projects the blocks of many logs in one transaction: a node catching up on
 * thousands of short logs would otherwise commit once per log. Blocks read
 * while no other log is being read are projected at once, as before (a single
 * writer's latency does not change); blocks read while others are under way
 * wait for those reads to end (or COALESCE_MS, or COALESCE_BLOCKS) and are
 * committed with theirs.
 */
export class ProjectionBatch {
  private readonly projector: Projector
  private queue: Array<{ group: WriterBlocks, resolve: (outcome: ApplyOutcome) => void }> = []
  private queuedBlocks = 0
  /** Feeds reading blocks now; a stopped feed is dropped from it, so a read that never ends cannot hold the others. */
  private readonly reading = new Set<WriterFeed>()
  private timer: NodeJS.Timeout | null = null

  constructor (projector: Projector) {
    this.projector = projector
  }

  /** A feed starts reading blocks it will project. */
  beginRead (feed: WriterFeed): void {
    this.reading.add(feed)
  }

  /** The feed's read ended with nothing to project, or the feed stopped. */
  endRead (feed: WriterFeed): void {
    this.reading.delete(feed)
    if (this.reading.size === 0 && this.queue.length > 0) this.flush()
  }

  /** The read ended with these blocks: projected now if nothing else is coming, otherwise with what is. */
  apply (feed: WriterFeed, group: WriterBlocks): ApplyOutcome | Promise<ApplyOutcome> {
    this.reading.delete(feed)
    if (this.reading.size === 0 && this.queue.length === 0) return this.projector.applyMany([group])[0]
    const outcome = new Promise<ApplyOutcome>(resolve => this.queue.push({ group, resolve }))
    this.queuedBlocks += group.blocks.length
    if (this.reading.size === 0 || this.queuedBlocks >= COALESCE_BLOCKS) this.flush()
    else this.timer ??= setTimeout(() => this.flush(), COALESCE_MS)
    return outcome
  }

  private flush (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    const batch = this.queue
    this.queue = []
    this.queuedBlocks = 0
    if (batch.length === 0) return
    const outcomes = this.projector.applyMany(batch.map(b => b.group))
    for (let i = 0; i < batch.length; i++) batch[i].resolve(outcomes[i])
  }
}

interface Waiter { resolve: (events: BroadcastEvent[]) => void }

/** Feeds one core's blocks to the projector, from its checkpoint to its contiguous length. */
export class WriterFeed implements BlockSink {
  readonly core: Hypercore
  readonly info: KnownWriter
  private readonly projector: Projector
  private readonly batch: ProjectionBatch
  private readonly logger: Logger
  private readonly onDistrust: (feed: WriterFeed, distrust: Distrust) => void
  private readonly hints = new Map<number, HintedBlock>()
  /**
   * Events of own blocks projected before their save asked for them (the feed
   * runs on the core's append event, often before the append's promise
   * resolves): handed over from memory instead of read back from SQLite.
   */
  private readonly unclaimed = new Map<number, BroadcastEvent[]>()
  private readonly waiters = new Map<number, Waiter[]>()
  private running: Promise<void> | null = null
  private again = false
  private retry: NodeJS.Timeout | null = null
  private failures = 0
  private paused = false
  /** The writer forked or truncated its log: only its first `length` blocks are read. */
  distrusted: Distrust | null = null
  /** Why the next block is not projected yet (clock ahead, or not understood by this version). */
  held: Hold | null = null
  /** The last read or projection failure, until one succeeds. */
  lastError: string | null = null
  stopped = false
  /** A hosted session writes to this log: it stays open until the session is closed. */
  pinned = false
  /** Its last projected block is its session's end marker (null: not known since it was opened). */
  ended: boolean | null = null
  /** When blocks last arrived or were projected (Date.now()): a log is closed only after a quiet spell. */
  lastActive = Date.now()

  constructor (core: Hypercore, info: KnownWriter, projector: Projector, batch: ProjectionBatch, logger: Logger, onDistrust: (feed: WriterFeed, distrust: Distrust) => void) {
    this.core = core
    this.info = info
    this.projector = projector
    this.batch = batch
    this.logger = logger
    this.onDistrust = onDistrust
  }

  get key (): string {
    return this.info.key
  }

  // ---- the local writer's side (BlockSink) ----

  hint (seq: number, block: HintedBlock): void {
    this.hints.set(seq, block)
  }

  forget (seq: number): void {
    this.hints.delete(seq)
  }

  /**
   * Resolves with the block's events once it is projected. It never rejects: the
   * block is durable, so a failed projection is retried until it succeeds, and
   * on close it resolves with the events as written (cursor 0: not projected yet).
   */
  projected (seq: number): Promise<BroadcastEvent[]> {
    const ready = this.unclaimed.get(seq)
    if (ready !== undefined) {
      this.unclaimed.delete(seq)
      return Promise.resolve(ready)
    }
    if (seq < this.projector.indexedLength(this.key)) return Promise.resolve(this.storedEvents(seq))
    if (this.stopped) return Promise.resolve(this.unprojected(seq))
    const promise = new Promise<BroadcastEvent[]>(resolve => {
      let list = this.waiters.get(seq)
      if (list === undefined) this.waiters.set(seq, list = [])
      list.push({ resolve })
    })
    void this.drain()
    return promise
  }

  // ---- catching up ----

  /** Catches up; concurrent calls coalesce into one more pass. Never rejects: failures are reported and retried. */
  drain (): Promise<void> {
    if (this.stopped || this.paused) return Promise.resolve()
    if (this.running !== null) {
      this.again = true
      return this.running
    }
    this.running = this.loop(Infinity, false).finally(() => { this.running = null })
    return this.running
  }

  /** Its writer forked or truncated the log: stop reading it for good; what was projected stays. */
  distrust (reason: string): void {
    if (this.distrusted !== null || this.stopped) return
    const distrust = { reason, length: this.projector.indexedLength(this.key) }
    this.distrusted = distrust
    this.logger.warn({ writer: this.key, reason }, 'a writer forked or truncated its log; it is no longer trusted, what was projected stays')
    this.onDistrust(this, distrust)
  }

  /** Waits for a pass under way and keeps new ones from starting (reindex). */
  async pause (): Promise<void> {
    this.paused = true
    this.clearRetry()
    while (this.running !== null) await this.running.catch(() => {})
  }

  /** Projects up to `limit` blocks while paused, silently if the projector is not publishing (reindex). */
  async replay (limit: number, onTransaction?: (indexed: number) => void): Promise<void> {
    this.held = null
    await this.loop(limit, true, onTransaction)
  }

  resume (): void {
    this.paused = false
    void this.drain()
  }

  /** Ends reading; saves still waiting resolve with their events as written (they are durable). */
  stop (): Promise<void> {
    this.stopped = true
    this.batch.endRead(this)
    this.clearRetry()
    for (const [seq, list] of this.waiters) {
      const events = this.unprojected(seq)
      for (const w of list) w.resolve(events)
    }
    this.waiters.clear()
    this.hints.clear()
    this.unclaimed.clear()
    return this.running ?? Promise.resolve()
  }

  /**
   * Nothing left to read or project: every block it knows of is held and
   * projected (or it is distrusted and projected as far as it is trusted), no
   * save waits on it, and it is not held at a block.
   */
  get caughtUp (): boolean {
    if (this.waiters.size > 0 || this.held !== null || this.running !== null) return false
    const indexed = this.projector.indexedLength(this.key)
    if (this.distrusted !== null) return indexed >= Math.min(this.distrusted.length, this.core.contiguousLength)
    return indexed >= this.core.length && this.core.contiguousLength >= this.core.length
  }

  private get readable (): number {
    const end = this.core.contiguousLength
    return this.distrusted === null ? end : Math.min(end, this.distrusted.length)
  }

  /** `replaying`: run while paused (the reindex itself); otherwise a pause ends the pass between transactions. */
  private async loop (limit: number, replaying: boolean, onTransaction?: (indexed: number) => void): Promise<void> {
    do {
      this.again = false
      let indexed = this.projector.indexedLength(this.key)
      while (!this.stopped && (replaying || !this.paused) && indexed < Math.min(this.readable, limit)) {
        const end = Math.min(this.readable, limit, indexed + BLOCKS_PER_TRANSACTION)
        let inputs: BlockInput[]
        this.batch.beginRead(this)
        try {
          inputs = await this.read(indexed, end)
        } catch (err) {
          this.batch.endRead(this)
          if (!this.stopped) this.failed('reading the log failed', err)
          return
        }
        if (this.stopped || inputs.length === 0) {
          this.batch.endRead(this)
          return
        }
        const applied = this.batch.apply(this, { writer: this.key, fork: this.core.fork, blocks: inputs })
        const outcome = applied instanceof Promise ? await applied : applied
        if (!outcome.ok) {
          this.failed('projecting the log failed', outcome.error)
          return
        }
        const result = outcome.result
        this.succeeded()
        this.lastActive = Date.now()
        if (result.ended !== null) this.ended = result.ended
        this.settle(indexed, result.indexed, result.added, new Set(inputs.filter(i => i.decoded !== undefined).map(i => i.seq)))
        indexed = result.indexed
        onTransaction?.(indexed)
        if (result.held !== null) {
          this.hold(result.held)
          return
        }
        this.held = null
      }
    } while (this.again && !this.stopped && !this.paused)
  }

  /** Blocks from `start` up to (not including) `end`, stopping at the first one not stored yet. */
  private async read (start: number, end: number): Promise<BlockInput[]> {
    const reads: Array<Promise<Buffer | null> | null> = []
    for (let seq = start; seq < end; seq++) reads.push(this.hints.has(seq) ? null : this.core.get(seq, { wait: false }))
    const blocks = await Promise.all(reads)
    const inputs: BlockInput[] = []
    for (let i = 0; i < blocks.length; i++) {
      const seq = start + i
      const hint = this.hints.get(seq)
      if (hint !== undefined) {
        inputs.push({ seq, block: EMPTY, decoded: hint })
        continue
      }
      const block = blocks[i]
      if (block === null) break
      inputs.push({ seq, block })
    }
    return inputs
  }

  /** Hands each projected block's events to the saves waiting for it, or keeps an own block's for the save that will ask. */
  private settle (from: number, to: number, added: BroadcastEvent[], hinted: ReadonlySet<number>): void {
    for (let seq = from; seq < to; seq++) this.hints.delete(seq)
    if (this.waiters.size === 0 && hinted.size === 0) return
    const bySeq = new Map<number, BroadcastEvent[]>()
    for (const event of added) {
      let list = bySeq.get(event.seq)
      if (list === undefined) bySeq.set(event.seq, list = [])
      list.push(event)
    }
    for (let seq = from; seq < to; seq++) {
      const list = this.waiters.get(seq)
      if (list === undefined) {
        const events = bySeq.get(seq)
        if (hinted.has(seq) && events !== undefined) this.keepUnclaimed(seq, events)
        continue
      }
      this.waiters.delete(seq)
      const events = bySeq.get(seq) ?? this.storedEvents(seq)
      for (const w of list) w.resolve(events)
    }
  }

  private keepUnclaimed (seq: number, events: BroadcastEvent[]): void {
    this.unclaimed.set(seq, events)
    // Every appended block is asked for once; the bound only guards against a caller that never asks.
    for (const old of this.unclaimed.keys()) {
      if (this.unclaimed.size <= UNCLAIMED_BLOCKS) break
      this.unclaimed.delete(old)
    }
  }

  private storedEvents (seq: number): BroadcastEvent[] {
    return this.projector.eventsAt(this.key, seq)
  }

  /** A durable block not projected yet (the node is closing): its events as written. */
  private unprojected (seq: number): BroadcastEvent[] {
    const hint = this.hints.get(seq)
    if (hint === undefined) return this.storedEvents(seq)
    return hint.events.map((wire, idx) => wireToEvent(this.key, seq, idx, hint.sessionId, wire, 0))
  }

  private hold (held: Hold): void {
    if (this.held?.reason !== held.reason) {
      this.logger.warn({ writer: this.key, seq: held.seq, reason: held.reason }, held.until === 'clock' ? 'holding a block whose clock is far in the future' : 'holding a writer at a block this version does not understand; it is retried when the node is opened again')
    }
    this.held = held
    if (held.until === 'clock') this.retryIn(CLOCK_HOLD_RETRY_MS)
  }

  private failed (what: string, err: unknown): void {
    this.failures++
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (this.failures - 1))
    this.lastError = `${what}: ${(err as Error).message}`
    this.logger.warn({ writer: this.key, err: (err as Error).message, attempt: this.failures, retryInMs: delay }, what)
    this.retryIn(delay)
  }

  private succeeded (): void {
    if (this.failures === 0) return
    this.logger.info({ writer: this.key, attempts: this.failures }, 'the log is projected again after failures')
    this.failures = 0
    this.lastError = null
  }

  private retryIn (ms: number): void {
    if (this.stopped) return
    if (this.retry !== null) {
      if (this.waiters.size > 0) this.retry.ref()
      return
    }
    this.retry = setTimeout(() => {
      this.retry = null
      void this.drain()
    }, ms)
    // A save waiting on this block keeps the process alive until it is projected, like any pending I/O.
    if (this.waiters.size === 0) this.retry.unref()
  }

  private clearRetry (): void {
    if (this.retry !== null) clearTimeout(this.retry)
    this.retry = null
  }
}

const EMPTY = new Uint8Array(0)

/** Hypercore's per-peer replication state; not in its typings. */
interface RemoteCoreState { remoteSynced: boolean, remoteFork: number, remoteLength: number }

/** A writer as gossiped: who it is, and how long its log is known to be (absent from peers on the older wire format). */
export interface WriterLength extends KnownWriter { length?: number, fork?: number, ended?: boolean }

export interface RegistryOptions {
  store: Corestore
  writers: WriterStore
  projector: Projector
  logger: Logger
  /** Only these remote writers are followed (undefined: everyone in the room). */
  allowList: readonly string[] | undefined
  /** A log quiet and caught up this long is closed (0: never). */
  idleMs: number
  /** Whether any peer is connected and admitted to the room (absent: none ever is). */
  connected?: () => boolean
  /** The length this node holds of a log changed (appended, downloaded): peers may want to hear it. */
  onLength?: (key: string) => void
  /** A log opened after start is behind or on another fork than the database: it must be rebuilt. */
  onDivergence?: (reason: string) => void
}

export interface OpenFailure { key: string, error: string, attempts: number }

/** What this node keeps about every writer it knows, open or not (a few numbers each). */
interface Known {
  info: KnownWriter
  distrust: Distrust | null
  closed: ClosedAt | null
  /** The longest length a peer announced in this run. */
  announced: number
  /** Told of by a peer on the older wire format, which announces no lengths: kept open, as that peer never says when it grows. */
  legacy?: true
}

/**
 * Owns every feed: knows every writer (writers.db), opens a log only while
 * someone is behind on it or a session writes to it, closes it when it is quiet
 * and projected, wires each open log to the projector, checks logs against
 * their checkpoints, rebuilds.
 */
export class WriterRegistry {
  readonly feeds = new Map<string, WriterFeed>()
  readonly writers: WriterStore
  private readonly known = new Map<string, Known>()
  private readonly store: Corestore
  private readonly projector: Projector
  private readonly batch: ProjectionBatch
  private readonly logger: Logger
  private readonly allowList: Set<string> | undefined
  private readonly opts: RegistryOptions
  private readonly rejected = new LruMap<string, true>(REJECTED_MEMORY)
  private readonly opening = new Map<string, Promise<WriterFeed | null>>()
  private openSlots = OPEN_PARALLEL
  private readonly openQueue: Array<() => void> = []
  private readonly openFailures = new Map<string, OpenFailure & { timer: NodeJS.Timeout | null }>()
  private sweeper: NodeJS.Timeout | null = null
  private sweeping: Promise<void> | null = null
  private rebuilding = false
  /** Until the node has checked its logs against the database (start), an opened log is not read. */
  private started = false
  rejectedCount = 0
  /** Logs opened since start (own and remote), for status and tests. */
  opened = 0
  private closed = false

  constructor (opts: RegistryOptions) {
    this.opts = opts
    this.store = opts.store
    this.writers = opts.writers
    this.projector = opts.projector
    this.batch = new ProjectionBatch(opts.projector)
    this.logger = opts.logger
    this.allowList = opts.allowList === undefined ? undefined : new Set(opts.allowList)
    for (const w of this.writers.list()) this.known.set(w.key, { info: { key: w.key, sessionId: w.sessionId, agentId: w.agentId, local: w.local }, distrust: w.distrust, closed: w.closed, announced: 0 })
    if (opts.idleMs > 0) {
      this.sweeper = setInterval(() => { this.sweep() }, Math.max(50, Math.min(opts.idleMs / 2, 5_000)))
      this.sweeper.unref()
    }
  }

  /** Every writer this node knows, open or closed. */
  list (): KnownWriter[] {
    return [...this.known.values()].map(k => k.info)
  }

  get knownCount (): number {
    return this.known.size
  }

  /** Every writer with the length this node holds of its log, for gossip. */
  lengths (keys?: Iterable<string>): WriterLength[] {
    const out: WriterLength[] = []
    for (const key of keys ?? this.known.keys()) {
      const k = this.known.get(key)
      if (k !== undefined) out.push(this.lengthOf(k))
    }
    return out
  }

  /** A closed log as last seen (null while it is open or was never closed). */
  closedAt (key: string): ClosedAt | null {
    return this.feeds.has(key) ? null : this.known.get(key)?.closed ?? null
  }

  private lengthOf (k: Known): WriterLength {
    const feed = this.feeds.get(k.info.key)
    if (feed !== undefined) {
      const held = feed.distrusted === null ? feed.core.contiguousLength : Math.min(feed.core.contiguousLength, feed.distrusted.length)
      return { ...k.info, length: held, fork: feed.core.fork, ended: feed.ended === true && held === this.projector.indexedLength(k.info.key) }
    }
    return { ...k.info, length: k.closed?.held ?? 0, fork: k.closed?.fork ?? 0, ended: k.closed?.ended ?? false }
  }

  failures (): OpenFailure[] {
    return [...this.openFailures.values()].map(({ key, error, attempts }) => ({ key, error, attempts }))
  }

  /** Opens (or creates) the log of a session hosted here; it stays open until closeWriter. */
  async openLocal (sessionId: string, agentId: string): Promise<WriterFeed> {
    const core = this.store.get({ name: `crosscast/session/${sessionId}` })
    await core.ready()
    const info: KnownWriter = { key: core.key.toString('hex'), sessionId, agentId, local: true }
    const existing = this.feeds.get(info.key)
    if (existing !== undefined && !existing.stopped) {
      await core.close()
      existing.pinned = true
      return existing
    }
    this.writers.add([info])
    let k = this.known.get(info.key)
    if (k === undefined) this.known.set(info.key, k = { info, distrust: null, closed: null, announced: 0 })
    k.info = { ...k.info, local: true }
    this.markOpen([k])
    const feed = this.attach(core, k.info, k.distrust)
    feed.pinned = true
    this.readIfConsistent(feed)
    return feed
  }

  /**
   * Learns a gossiped batch: refuses what the allow-list excludes, persists the
   * new ones in one write, and starts opening (in the background, a bounded
   * number at a time) the logs this node is behind on: a peer announced more
   * than it holds, or, from a peer on the older wire format that tells no
   * lengths, any new one. Returns the new ones.
   */
  async addRemote (infos: readonly WriterLength[]): Promise<KnownWriter[]> {
    if (this.closed) return []
    const fresh: Known[] = []
    const behind: Known[] = []
    const seen = new Set<string>()
    for (const raw of infos) {
      if (seen.has(raw.key)) continue
      seen.add(raw.key)
      let k = this.known.get(raw.key)
      if (k === undefined) {
        if (this.allowList !== undefined && !this.allowList.has(raw.key)) {
          if (!this.rejected.has(raw.key)) {
            this.rejectedCount++
            this.logger.warn({ writer: raw.key, session: raw.sessionId }, 'ignored a writer that is not on the allow-list')
          }
          this.rejected.set(raw.key, true)
          continue
        }
        // Nothing of it is held yet: closed at 0 until a peer has more.
        k = { info: { key: raw.key, sessionId: raw.sessionId, agentId: raw.agentId, local: false }, distrust: null, closed: { held: 0, fork: 0, ended: false }, announced: 0 }
        this.known.set(raw.key, k)
        fresh.push(k)
      }
      if (raw.length === undefined) {
        k.legacy = true
        if (!this.feeds.has(raw.key) && k.distrust === null && (k.closed === null || k.closed.held === 0)) behind.push(k)
        continue
      }
      k.announced = Math.max(k.announced, raw.length)
      if (this.feeds.has(raw.key) || k.distrust !== null) continue
      if (raw.length > (k.closed?.held ?? 0)) behind.push(k)
    }
    // The new ones that open at once are stored as open, the others as closed at 0: one write either way.
    const opening = new Set(behind)
    this.writers.add(fresh.map(k => k.info), fresh.filter(k => !opening.has(k)).map(k => k.info.key))
    for (const k of fresh) if (opening.has(k)) k.closed = null
    // Not awaited: the next gossip message from this peer (new lengths of other logs) must not wait for these opens.
    this.openAll(behind, true).catch((err: Error) => this.logger.warn({ err: err.message }, 'opening announced logs failed'))
    return fresh.map(k => k.info)
  }

  /**
   * Opens these logs, at most OPEN_PARALLEL at a time across every caller (the
   * next starts as soon as one is open), recording them as open and registering
   * their writers first, in one write each.
   */
  private async openAll (ks: Known[], check: boolean): Promise<void> {
    if (ks.length === 0) return
    this.markOpen(ks)
    this.projector.registerWriters(ks.map(k => ({ key: k.info.key, sessionId: k.info.sessionId, agentId: k.info.agentId, local: k.info.local })))
    await Promise.all(ks.map(k => this.inOpenSlot(() => this.openKnownWriter(k, check))))
  }

  private async inOpenSlot (open: () => Promise<WriterFeed | null>): Promise<WriterFeed | null> {
    if (this.openSlots > 0) this.openSlots--
    else await new Promise<void>(resolve => this.openQueue.push(resolve))
    try {
      return this.closed ? null : await open()
    } finally {
      const next = this.openQueue.shift()
      if (next !== undefined) next()
      else this.openSlots++
    }
  }

  /** Open now: should the process stop before they are closed again, the next start opens and checks them. */
  private markOpen (ks: Known[]): void {
    const reopened = ks.filter(k => k.closed !== null)
    for (const k of reopened) k.closed = null
    this.writers.opened(reopened.map(k => k.info.key))
  }

  /** The node checked its logs against the database: open logs are read from now on. */
  start (): void {
    this.started = true
  }

  /**
   * Opens, on start, the logs that need it: those not closed cleanly (open when
   * the process stopped, so maybe holding blocks not projected yet) and those
   * behind their checkpoint's view. An idle, projected log stays closed.
   */
  async openKnown (): Promise<void> {
    const indexed = new Map(this.projector.writers().map(cp => [cp.key, cp.indexed]))
    const needed = [...this.known.values()].filter(k => {
      if (!k.info.local && this.allowList !== undefined && !this.allowList.has(k.info.key)) return false
      if (k.closed === null) return true
      return (indexed.get(k.info.key) ?? 0) < (k.distrust === null ? k.closed.held : Math.min(k.closed.held, k.distrust.length))
    })
    // Checked together by divergence() before anything is read.
    await this.openAll(needed, false)
  }

  /**
   * Logs recorded in the database's checkpoints but missing from the writer
   * store (it was deleted): learnt back from the checkpoints.
   */
  recoverFromCheckpoints (): void {
    const missing = this.projector.writers().filter(cp => !this.known.has(cp.key) && cp.sessionId !== null)
    const infos = missing.map(cp => ({ key: cp.key, sessionId: cp.sessionId as string, agentId: cp.agentId ?? 'agent', local: cp.local }))
    this.writers.add(infos)
    for (const info of infos) this.known.set(info.key, { info, distrust: null, closed: null, announced: 0 })
  }

  /**
   * A log behind its checkpoint (truncated, replaced, restored from a backup)
   * or on another fork than the one projected means the database holds blocks
   * the log no longer has: the next write would reuse their ids. Returns why
   * a rebuild is needed, or null. Only open logs can be checked; a log opened
   * later is checked as it opens.
   */
  divergence (): string | null {
    for (const feed of this.feeds.values()) {
      const reason = this.diverges(feed)
      if (reason !== null) return reason
    }
    return null
  }

  private diverges (feed: WriterFeed): string | null {
    const cp = this.projector.checkpointOf(feed.key)
    if (cp.indexed === 0) return null
    if (feed.core.length < cp.indexed) return `log ${feed.key.slice(0, 8)} (session ${feed.info.sessionId}) has ${feed.core.length} blocks but the database projected ${cp.indexed}`
    if (feed.core.fork !== cp.fork) return `log ${feed.key.slice(0, 8)} (session ${feed.info.sessionId}) is on fork ${feed.core.fork} but the database projected fork ${cp.fork}`
    return null
  }

  /**
   * Rebuilds the projection from the logs. Every known log is opened for it
   * (and closed again by the sweeper once quiet). Feeds are paused first (a pass
   * under way finishes before the clear, so none fails half-way), each is
   * replayed silently up to the length it had, then they resume and publish
   * whatever arrived meanwhile, so subscribers miss nothing that is new. The
   * readers' indexes are dropped with the old rows and built once at the end.
   */
  async rebuild (onProgress?: (done: number, total: number) => void): Promise<string> {
    this.rebuilding = true
    try {
      await this.sweeping
      // Replayed from the start whatever they hold: no check against the checkpoints about to be cleared.
      await this.openAll([...this.known.values()].filter(k => !this.feeds.has(k.info.key) && (k.info.local || this.allowList === undefined || this.allowList.has(k.info.key))), false)
      const feeds = [...this.feeds.values()]
      await Promise.all(feeds.map(feed => feed.pause()))
      const lengths = feeds.map(feed => feed.core.contiguousLength)
      this.projector.publishing = false
      let epoch: string
      try {
        epoch = clearProjection(this.projector.db)
        this.projector.reset(epoch)
        const total = lengths.reduce((n, l) => n + l, 0)
        let done = 0
        let reported = -1
        const report = (n: number): void => {
          reported = n
          onProgress?.(n, total)
        }
        for (let i = 0; i < feeds.length; i++) {
          // Progress after every transaction: a long log reports as it goes, not once at its end.
          await feeds[i].replay(lengths[i], indexed => report(done + Math.min(indexed, lengths[i])))
          done += lengths[i]
          if (reported < done) report(done)
        }
      } finally {
        // Before anything is published or written: from here on, readers and the projector find every index.
        buildReaderIndexes(this.projector.db)
        this.projector.publishing = true
      }
      for (const feed of feeds) feed.resume()
      return epoch
    } finally {
      this.rebuilding = false
    }
  }

  /**
   * Closes a hosted session's log; it stays known and is reopened on demand
   * (its session writes again, a peer is behind on it, a rebuild).
   */
  async closeWriter (key: string): Promise<void> {
    const feed = this.feeds.get(key)
    if (feed === undefined) return
    feed.pinned = false
    await this.closeFeeds([feed])
  }

  /** Closes every unpinned log that is caught up and was quiet for idleMs. */
  sweep (): void {
    if (this.closed || this.rebuilding || this.sweeping !== null) return
    const quietSince = Date.now() - this.opts.idleMs
    const connected = this.opts.connected?.() ?? false
    const idle = [...this.feeds.values()].filter(feed => !feed.pinned && !feed.stopped && feed.lastActive <= quietSince && this.settled(feed, connected))
    if (idle.length === 0) return
    this.sweeping = this.closeFeeds(idle).catch((err: Error) => {
      this.logger.warn({ err: err.message }, 'closing idle logs failed')
    }).finally(() => { this.sweeping = null })
  }

  /** Caught up, and no peer announced more than this node holds (or one did and no peer is connected any more). */
  private settled (feed: WriterFeed, connected: boolean): boolean {
    if (!feed.caughtUp) return false
    const k = this.known.get(feed.key)
    if (k?.legacy === true) return false
    if (k === undefined || k.announced <= feed.core.contiguousLength) return true
    // A peer said the log is longer, and it serves what it announces: stay open while any peer is connected,
    // even before this log's replication with it is up (a busy holder may take seconds to get to thousands of
    // logs). Closed now, the log would wait for an announcement of that length, which comes only when a peer
    // connects again (every peer announces every log on connecting) or the log grows.
    return !connected && Date.now() - feed.lastActive >= 2 * this.opts.idleMs
  }

  private async closeFeeds (feeds: WriterFeed[]): Promise<void> {
    const records: Array<{ key: string, closed: ClosedAt }> = []
    for (const feed of feeds) {
      // Recorded before anything is awaited: news of a longer log arriving meanwhile is compared with this.
      const k = this.known.get(feed.key)
      if (k !== undefined && feed.caughtUp) {
        k.closed = { held: this.projector.indexedLength(feed.key), fork: feed.core.fork, ended: feed.ended === true }
        records.push({ key: feed.key, closed: k.closed })
      }
      this.feeds.delete(feed.key)
    }
    await Promise.all(feeds.map(feed => feed.stop()))
    await Promise.all(feeds.map(feed => feed.core.close()))
    // One opened again meanwhile (a peer was ahead; its open may still wait for a slot) is recorded as open already.
    this.writers.closed(records.filter(r => this.known.get(r.key)?.closed === r.closed))
  }

  /**
   * With allowFork: false hypercore silently ignores a peer that is on a newer
   * fork of a log (its writer truncated and rewrote it): only the peers' sync
   * state shows it, so it is polled.
   */
  checkForks (): void {
    for (const feed of this.feeds.values()) {
      if (feed.info.local || feed.stopped || feed.distrusted !== null || feed.core.closed) continue
      for (const peer of feed.core.peers as unknown as RemoteCoreState[]) {
        if (peer.remoteSynced === true && peer.remoteLength > 0 && peer.remoteFork !== feed.core.fork) {
          feed.distrust(`a peer holds fork ${peer.remoteFork} of the log (length ${peer.remoteLength}) where this node holds fork ${feed.core.fork} (length ${feed.core.length})`)
          break
        }
      }
    }
  }

  async drainAll (): Promise<void> {
    await Promise.all([...this.feeds.values()].map(feed => feed.drain()))
  }

  /** Stops every feed; a log left caught up is recorded as closed, so the next start does not open it. */
  async close (): Promise<void> {
    this.closed = true
    if (this.sweeper !== null) clearInterval(this.sweeper)
    for (const failure of this.openFailures.values()) if (failure.timer !== null) clearTimeout(failure.timer)
    await Promise.allSettled(this.opening.values())
    await this.sweeping
    const feeds = [...this.feeds.values()]
    const records: Array<{ key: string, closed: ClosedAt }> = []
    for (const feed of feeds) {
      if (!feed.caughtUp) continue
      records.push({ key: feed.key, closed: { held: this.projector.indexedLength(feed.key), fork: feed.core.fork, ended: feed.ended === true } })
    }
    await Promise.all(feeds.map(feed => feed.stop()))
    try {
      this.writers.closed(records)
    } finally {
      this.writers.close()
    }
  }

  /** `check`: compare it with its checkpoint before reading it (false: the caller checks, or the checkpoints are being rebuilt). */
  private openKnownWriter (k: Known, check: boolean): Promise<WriterFeed | null> {
    const existing = this.feeds.get(k.info.key)
    if (existing !== undefined) return Promise.resolve(existing)
    let pending = this.opening.get(k.info.key)
    if (pending === undefined) {
      pending = (k.info.local ? this.openOwn(k) : this.tryOpenRemote(k)).then(feed => {
        if (feed !== null && check) this.readIfConsistent(feed)
        return feed
      }).finally(() => this.opening.delete(k.info.key))
      this.opening.set(k.info.key, pending)
    }
    return pending
  }

  /** A log opened after start is checked against its checkpoint like those opened at start, and read only if it agrees. */
  private readIfConsistent (feed: WriterFeed): void {
    if (!this.started) return
    const reason = this.diverges(feed)
    if (reason === null) void feed.drain()
    else this.opts.onDivergence?.(reason)
  }

  private async openOwn (k: Known): Promise<WriterFeed | null> {
    const core = this.store.get({ name: `crosscast/session/${k.info.sessionId}` })
    await core.ready()
    if (this.closed) {
      await core.close()
      return null
    }
    return this.attach(core, k.info, k.distrust)
  }

  /** A failure to open a log is reported (status, log) and retried with backoff, never dropped. */
  private async tryOpenRemote (k: Known): Promise<WriterFeed | null> {
    const info = k.info
    try {
      const core = this.store.get({ key: Buffer.from(info.key, 'hex'), allowFork: false })
      await core.ready()
      if (this.closed) {
        await core.close()
        return null
      }
      this.openFailures.delete(info.key)
      const feed = this.attach(core, info, k.distrust)
      if (k.distrust === null) core.download({ start: 0, end: -1 })
      return feed
    } catch (err) {
      if (this.closed) return null
      const previous = this.openFailures.get(info.key)
      const attempts = (previous?.attempts ?? 0) + 1
      const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (attempts - 1))
      this.logger.warn({ writer: info.key, err: (err as Error).message, attempt: attempts, retryInMs: delay }, 'opening a writer\'s log failed')
      const timer = setTimeout(() => {
        const entry = this.openFailures.get(info.key)
        if (entry !== undefined) entry.timer = null
        void this.openKnownWriter(k, true)
      }, delay)
      timer.unref()
      this.openFailures.set(info.key, { key: info.key, error: (err as Error).message, attempts, timer })
      return null
    }
  }

  private attach (core: Hypercore, info: KnownWriter, distrust: Distrust | null): WriterFeed {
    this.projector.registerWriter(info.key, { sessionId: info.sessionId, agentId: info.agentId, local: info.local })
    const feed = new WriterFeed(core, info, this.projector, this.batch, this.logger, (f, d) => this.persistDistrust(f, d))
    feed.distrusted = distrust
    if (distrust !== null) this.projector.markWriterError(info.key, distrust.reason)
    this.feeds.set(info.key, feed)
    this.opened++
    const changed = (): void => {
      feed.lastActive = Date.now()
      this.opts.onLength?.(info.key)
    }
    core.on('append', () => {
      changed()
      void feed.drain()
    })
    if (!info.local) {
      core.on('download', () => {
        changed()
        if (core.contiguousLength > this.projector.indexedLength(info.key)) void feed.drain()
      })
      core.on('truncate', (length: number, fork: number) => feed.distrust(`log truncated to ${length} blocks (fork ${fork})`))
      // Two signed versions of one length: hypercore closes the core itself.
      core.on('conflict', (length: number, fork: number) => feed.distrust(`two signed versions of the log at length ${length} (fork ${fork})`))
    }
    return feed
  }

  private persistDistrust (feed: WriterFeed, distrust: Distrust): void {
    try {
      this.writers.distrust(feed.key, distrust)
      const k = this.known.get(feed.key)
      if (k !== undefined) k.distrust = distrust
      this.projector.markWriterError(feed.key, distrust.reason)
    } catch (err) {
      this.logger.warn({ writer: feed.key, err: (err as Error).message }, 'could not record the distrusted writer')
    }
  }
}

/** The clock of a log's last block (0 if empty or unreadable): a write that reached the log may not have reached the database. */
export async function lastBlockHlc (core: Hypercore): Promise<number> {
  if (core.length === 0) return 0
  try {
    const block = await core.get(core.length - 1, { wait: false })
    if (block === null) return 0
    return Math.max(0, ...decodeBlock(block, HARD_MAX_PAYLOAD_BYTES).events.map(e => e.hlc))
  } catch {
    return 0
  }
}

