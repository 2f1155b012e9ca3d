// Every log this node knows, its own and its peers', and the one road from a
// log to subscribers: SessionLog → WriterFeed → Projector → SubscriptionHub.
// A local block takes the same road as a remote one (its events ride along as
// a cache hint), so a failed projection is retried from the log and heals, and
// a node's view of its own writes never differs from its peers' view of them.

import type Corestore from 'corestore'
import type Hypercore from 'hypercore'
import { decodeBlock, HARD_MAX_PAYLOAD_BYTES } from '../events/codec.ts'
import type { BroadcastEvent, WireEvent } from '../events/types.ts'
import type { BlockSink } from '../log/session-log.ts'
import { wireToEvent, type Projector, type BlockInput, type Hold } from '../projection/projector.ts'
import { clearProjection } from '../projection/schema.ts'
import type { Logger } from '../logger.ts'
import { LruMap } from './bounded.ts'
import { WriterStore, type KnownWriter, type Distrust } from './writer-store.ts'

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

interface Hint { sessionId: string, events: WireEvent[] }
interface Waiter { resolve: (events: BroadcastEvent[]) => void }

/** Feeds one core's blocks to the projector, from its checkpoint to its contiguous length. */
export class WriterFeed implements BlockSink {
  readonly core: Hypercore
  readonly info: KnownWriter
  private readonly projector: Projector
  private readonly logger: Logger
  private readonly onDistrust: (feed: WriterFeed, distrust: Distrust) => void
  private readonly hints = new Map<number, Hint>()
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

  constructor (core: Hypercore, info: KnownWriter, projector: Projector, logger: Logger, onDistrust: (feed: WriterFeed, distrust: Distrust) => void) {
    this.core = core
    this.info = info
    this.projector = projector
    this.logger = logger
    this.onDistrust = onDistrust
  }

  get key (): string {
    return this.info.key
  }

  // ---- the local writer's side (BlockSink) ----

  hint (seq: number, sessionId: string, events: WireEvent[]): void {
    this.hints.set(seq, { sessionId, events })
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
        try {
          inputs = await this.read(indexed, end)
        } catch (err) {
          if (!this.stopped) this.failed('reading the log failed', err)
          return
        }
        if (this.stopped || inputs.length === 0) return
        let result
        try {
          result = this.projector.applyBlocks(this.key, this.core.fork, inputs)
        } catch (err) {
          this.failed('projecting the log failed', err)
          return
        }
        this.succeeded()
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

export interface RegistryOptions {
  store: Corestore
  writers: WriterStore
  projector: Projector
  logger: Logger
  /** Only these remote writers are followed (undefined: everyone in the room). */
  allowList: readonly string[] | undefined
}

export interface OpenFailure { key: string, error: string, attempts: number }

/**
 * Owns every feed: opens logs (own and remote), wires each to the projector,
 * persists the writer list, checks logs against their checkpoints, rebuilds.
 */
export class WriterRegistry {
  readonly feeds = new Map<string, WriterFeed>()
  readonly writers: WriterStore
  private readonly store: Corestore
  private readonly projector: Projector
  private readonly logger: Logger
  private readonly allowList: Set<string> | undefined
  private readonly rejected = new LruMap<string, true>(REJECTED_MEMORY)
  private readonly opening = new Map<string, Promise<WriterFeed | null>>()
  private readonly openFailures = new Map<string, OpenFailure & { timer: NodeJS.Timeout | null }>()
  rejectedCount = 0
  private closed = false

  constructor (opts: RegistryOptions) {
    this.store = opts.store
    this.writers = opts.writers
    this.projector = opts.projector
    this.logger = opts.logger
    this.allowList = opts.allowList === undefined ? undefined : new Set(opts.allowList)
  }

  list (): KnownWriter[] {
    return [...this.feeds.values()].map(feed => feed.info)
  }

  failures (): OpenFailure[] {
    return [...this.openFailures.values()].map(({ key, error, attempts }) => ({ key, error, attempts }))
  }

  /** Opens (or creates) the log of a session hosted here. */
  async openLocal (sessionId: string, agentId: string): Promise<WriterFeed> {
    const core = this.store.get({ name: `crosscast/session/${sessionId}` })
    await core.ready()
    const info: KnownWriter = { key: core.key.toString('hex'), sessionId, agentId, local: true }
    const existing = this.feeds.get(info.key)
    if (existing !== undefined && !existing.stopped) {
      await core.close()
      return existing
    }
    this.writers.add([info])
    return this.attach(core, info, null)
  }

  /**
   * Learns a gossiped batch: refuses what the allow-list excludes, persists the
   * new ones in one write, opens their logs in parallel. Returns the new ones.
   */
  async addRemote (infos: readonly KnownWriter[]): Promise<KnownWriter[]> {
    if (this.closed) return []
    const fresh: KnownWriter[] = []
    const seen = new Set<string>()
    for (const raw of infos) {
      const info = { ...raw, local: false }
      if (seen.has(info.key) || this.feeds.has(info.key) || this.opening.has(info.key)) continue
      seen.add(info.key)
      if (this.allowList !== undefined && !this.allowList.has(info.key)) {
        if (!this.rejected.has(info.key)) {
          this.rejectedCount++
          this.logger.warn({ writer: info.key, session: info.sessionId }, 'ignored a writer that is not on the allow-list')
        }
        this.rejected.set(info.key, true)
        continue
      }
      fresh.push(info)
    }
    if (fresh.length === 0) return []
    this.writers.add(fresh)
    const opened: KnownWriter[] = []
    for (let i = 0; i < fresh.length; i += OPEN_PARALLEL) {
      const batch = fresh.slice(i, i + OPEN_PARALLEL)
      const feeds = await Promise.all(batch.map(info => this.openRemote(info, null)))
      for (const feed of feeds) if (feed !== null) opened.push(feed.info)
    }
    return opened
  }

  /** Opens every writer the store lists (on open), in parallel batches. */
  async openKnown (): Promise<void> {
    const stored = this.writers.list()
    for (let i = 0; i < stored.length; i += OPEN_PARALLEL) {
      await Promise.all(stored.slice(i, i + OPEN_PARALLEL).map(async (w) => {
        if (w.local) {
          const core = this.store.get({ name: `crosscast/session/${w.sessionId}` })
          await core.ready()
          this.attach(core, w, w.distrust)
          return
        }
        if (this.allowList !== undefined && !this.allowList.has(w.key)) return
        await this.openRemote(w, w.distrust)
      }))
    }
  }

  /**
   * Logs recorded in the database's checkpoints but missing from the writer
   * store (it was deleted): learnt back from the checkpoints.
   */
  recoverFromCheckpoints (): void {
    const known = new Set(this.writers.list().map(w => w.key))
    const missing = this.projector.writers().filter(cp => !known.has(cp.key) && cp.sessionId !== null)
    this.writers.add(missing.map(cp => ({ key: cp.key, sessionId: cp.sessionId as string, agentId: cp.agentId ?? 'agent', local: cp.local })))
  }

  /**
   * A log behind its checkpoint (truncated, replaced, restored from a backup)
   * or on another fork than the one projected means the database holds blocks
   * the log no longer has: the next write would reuse their ids. Returns why
   * a rebuild is needed, or null.
   */
  divergence (): string | null {
    for (const cp of this.projector.writers()) {
      if (cp.indexed === 0) continue
      const feed = this.feeds.get(cp.key)
      if (feed === undefined) continue
      if (feed.core.length < cp.indexed) return `log ${cp.key.slice(0, 8)} (session ${String(cp.sessionId)}) has ${feed.core.length} blocks but the database projected ${cp.indexed}`
      if (feed.core.fork !== cp.fork) return `log ${cp.key.slice(0, 8)} (session ${String(cp.sessionId)}) is on fork ${feed.core.fork} but the database projected fork ${cp.fork}`
    }
    return null
  }

  /**
   * Rebuilds the projection from the logs. Feeds are paused first (a pass
   * under way finishes before the clear, so none fails half-way), each is
   * replayed silently up to the length it had, then they resume and publish
   * whatever arrived meanwhile, so subscribers miss nothing that is new.
   */
  async rebuild (onProgress?: (done: number, total: number) => void): Promise<string> {
    await this.openClosedWriters()
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
      this.projector.publishing = true
    }
    for (const feed of feeds) feed.resume()
    return epoch
  }

  /** Closes a hosted session's log (idle); it stays known and is reopened on demand. */
  async closeWriter (key: string): Promise<void> {
    const feed = this.feeds.get(key)
    if (feed === undefined) return
    this.feeds.delete(key)
    await feed.stop()
    await feed.core.close()
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

  async close (): Promise<void> {
    this.closed = true
    for (const failure of this.openFailures.values()) if (failure.timer !== null) clearTimeout(failure.timer)
    await Promise.allSettled(this.opening.values())
    await Promise.all([...this.feeds.values()].map(feed => feed.stop()))
    this.writers.close()
  }

  private async openClosedWriters (): Promise<void> {
    const missing = this.writers.list().filter(w => !this.feeds.has(w.key) && (this.allowList === undefined || w.local || this.allowList.has(w.key)))
    for (const w of missing) {
      if (w.local) {
        const core = this.store.get({ name: `crosscast/session/${w.sessionId}` })
        await core.ready()
        this.attach(core, w, w.distrust)
      } else {
        await this.openRemote(w, w.distrust)
      }
    }
  }

  private openRemote (info: KnownWriter, distrust: Distrust | null): Promise<WriterFeed | null> {
    let pending = this.opening.get(info.key)
    if (pending === undefined) {
      pending = this.tryOpenRemote(info, distrust).finally(() => this.opening.delete(info.key))
      this.opening.set(info.key, pending)
    }
    return pending
  }

  /** A failure to open a log is reported (status, log) and retried with backoff, never dropped. */
  private async tryOpenRemote (info: KnownWriter, distrust: Distrust | null): Promise<WriterFeed | null> {
    try {
      const core = this.store.get({ key: Buffer.from(info.key, 'hex'), allowFork: false })
      await core.ready()
      this.openFailures.delete(info.key)
      const feed = this.attach(core, info, distrust)
      if (distrust === null) core.download({ start: 0, end: -1 })
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
        void this.openRemote(info, distrust)
      }, delay)
      timer.unref()
      this.openFailures.set(info.key, { key: info.key, error: (err as Error).message, attempts, timer })
      return null
    }
  }

  private attach (core: Hypercore, info: KnownWriter, distrust: Distrust | null): WriterFeed {
    this.projector.registerWriter(info.key, { sessionId: info.sessionId, agentId: info.agentId, local: info.local })
    const feed = new WriterFeed(core, info, this.projector, this.logger, (f, d) => this.persistDistrust(f, d))
    feed.distrusted = distrust
    if (distrust !== null) this.projector.markWriterError(info.key, distrust.reason)
    this.feeds.set(info.key, feed)
    core.on('append', () => { void feed.drain() })
    if (!info.local) {
      core.on('download', () => { if (core.contiguousLength > this.projector.indexedLength(info.key)) void feed.drain() })
      core.on('truncate', (length: number, fork: number) => feed.distrust(`log truncated to ${length} blocks (fork ${fork})`))
      // Two signed versions of one length: hypercore closes the core itself.
      core.on('conflict', (length: number, fork: number) => feed.distrust(`two signed versions of the log at length ${length} (fork ${fork})`))
    }
    return feed
  }

  private persistDistrust (feed: WriterFeed, distrust: Distrust): void {
    try {
      this.writers.distrust(feed.key, distrust)
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

