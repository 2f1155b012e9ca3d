// A session's own append-only log with group commit. While one block is being
// appended, every write that arrives joins the next block, so an idle session
// pays one append per save (lowest latency) and a busy one pays one signature
// and one replication round trip per hundreds of events. The log does not
// project: its writer's feed does, as for any peer's log (see BlockSink).

import type Hypercore from 'hypercore'
import { encodeBlock, encodeEndBlock } from '../events/codec.ts'
import { eventIdAt, eventIdPrefix } from '../events/ids.ts'
import type { EventDraft, WireEvent, BroadcastEvent } from '../events/types.ts'
import type { HintedBlock } from '../projection/projector.ts'
import { CrosscastError } from '../errors.ts'

export const DEFAULT_MAX_BLOCK_EVENTS = 512
export const DEFAULT_MAX_BLOCK_BYTES = 64 * 1024

/** Per-event bytes beyond the payload: type, flags, id, agent, clock, parent. */
const EVENT_OVERHEAD_BYTES = 64

export interface Stamp { hlc: number, parent: string | null }

export interface SessionLogOptions {
  sessionId: string
  agentId: string
  maxBlockEvents?: number
  maxBlockBytes?: number
  /** Gives each event its clock and causal parent, and records it as the resource's latest. */
  stamp: (resourceId: string, eventId: string) => Stamp
  /** The writer's feed: the one road from this log to the projector. */
  sink: BlockSink
}

/** What a session log hands its blocks to (the writer's WriterFeed). */
export interface BlockSink {
  /** The block at `seq` is about to be appended: its events ride along as a cache hint, so the feed need not read and decode it. */
  hint (seq: number, block: HintedBlock): void
  /** Its append failed: drop the hint. */
  forget (seq: number): void
  /** Resolves once the (durable) block at `seq` is projected; never rejects. */
  projected (seq: number): Promise<BroadcastEvent[]>
}

interface Waiter { start: number, count: number, resolve: (events: BroadcastEvent[]) => void, reject: (err: Error) => void }

/** `payloads`: each event's payload serialized once, for its size here, its encoding and its SQLite row. */
interface Batch { seq: number, events: WireEvent[], payloads: string[], bytes: number, waiters: Waiter[], end?: true }

/** One core.append of consecutive batches: `durable` once hypercore's write batch holding them is applied, `appended` once its call returns. */
interface Append { batches: Batch[], durable: Promise<void>, appended: Promise<unknown> }

/**
 * Blocks per core.append. Batches queued behind a running append (each full at
 * maxBlockEvents or maxBlockBytes) go in one call: one signature, one storage
 * read and one write for all of them instead of one each.
 */
const MAX_BLOCKS_PER_APPEND = 16

export class SessionLog {
  readonly core: Hypercore
  readonly sessionId: string
  readonly agentId: string
  private readonly opts: SessionLogOptions
  private readonly maxEvents: number
  private readonly maxBytes: number
  private readonly queue: Batch[] = []
  private open: Batch | null = null
  private nextSeq = -1
  private idPrefix: string | undefined
  private flushing = false
  private idle: Promise<void> = Promise.resolve()
  private markIdle: () => void = () => {}
  blocksWritten = 0
  eventsWritten = 0

  constructor (core: Hypercore, opts: SessionLogOptions) {
    this.core = core
    this.opts = opts
    this.sessionId = opts.sessionId
    this.agentId = opts.agentId
    this.maxEvents = opts.maxBlockEvents ?? DEFAULT_MAX_BLOCK_EVENTS
    this.maxBytes = opts.maxBlockBytes ?? DEFAULT_MAX_BLOCK_BYTES
  }

  get key (): Buffer {
    return this.core.key
  }

  /**
   * Queues validated drafts as ONE unit: they land in the same block, in order.
   * Positions, ids, clocks and parents are fixed now, synchronously, so two
   * writes issued back to back chain correctly even when they share a block.
   */
  write (drafts: EventDraft[]): Promise<BroadcastEvent[]> {
    if (this.core.closing !== null || this.core.closed) return Promise.reject(new CrosscastError('CLOSED', 'the session log is closed'))
    if (this.nextSeq < 0) this.nextSeq = this.core.length
    const payloads = drafts.map(d => JSON.stringify(d.payload))
    const bytes = payloads.reduce((n, json) => n + EVENT_OVERHEAD_BYTES + json.length, 0)
    let batch = this.open
    if (batch === null || batch.events.length + drafts.length > this.maxEvents || (batch.bytes + bytes > this.maxBytes && batch.events.length > 0)) {
      batch = { seq: this.nextSeq++, events: [], payloads: [], bytes: 0, waiters: [] }
      this.open = batch
      this.queue.push(batch)
    }
    const start = batch.events.length
    this.idPrefix ??= eventIdPrefix(this.core.key)
    for (let i = 0; i < drafts.length; i++) {
      const draft = drafts[i]
      const eventId = eventIdAt(this.idPrefix, batch.seq, start + i)
      const { hlc, parent } = this.opts.stamp(draft.resource_id, eventId)
      batch.events.push({ event_type: draft.event_type, resource_id: draft.resource_id, agent_id: draft.agent_id ?? this.agentId, hlc, parent, payload: draft.payload })
      batch.payloads.push(payloads[i])
    }
    batch.bytes += bytes
    const promise = new Promise<BroadcastEvent[]>((resolve, reject) => {
      batch.waiters.push({ start, count: drafts.length, resolve, reject })
    })
    this.startFlushing()
    return promise
  }

  private startFlushing (): void {
    if (this.flushing) return
    this.flushing = true
    this.idle = new Promise(resolve => { this.markIdle = resolve })
    // A microtask lets every write issued in this tick join the first block.
    queueMicrotask(() => { this.flush().catch(() => {}) })
  }

  /**
   * Appends the signed end marker after every write queued before it, and
   * resolves once it is projected. A write after it is still accepted: the log
   * then simply grows again (and is followed again).
   */
  end (): Promise<void> {
    if (this.core.closing !== null || this.core.closed) return Promise.reject(new CrosscastError('CLOSED', 'the session log is closed'))
    if (this.nextSeq < 0) this.nextSeq = this.core.length
    const batch: Batch = { seq: this.nextSeq++, events: [], payloads: [], bytes: 0, waiters: [], end: true }
    this.open = null
    this.queue.push(batch)
    const promise = new Promise<void>((resolve, reject) => {
      batch.waiters.push({ start: 0, count: 0, resolve: () => resolve(), reject })
    })
    this.startFlushing()
    return promise
  }

  /** Resolves when every queued write has been appended (or failed). */
  drained (): Promise<void> {
    return this.flushing ? this.idle : Promise.resolve()
  }

  /**
   * Appends blocks one after another. A save resolves once its block is durable
   * AND projected; projection runs in the feed while the next block is being
   * appended, so CPU and storage I/O overlap. Once the append succeeded the
   * save cannot fail any more: the feed retries a failed projection from the log.
   */
  private async flush (): Promise<void> {
    try {
      let inflight = this.startAppend()
      while (inflight !== null) {
        const current = inflight
        inflight = null
        try {
          await current.durable
        } catch (err) {
          this.failAll(current.batches, err as Error)
          inflight = this.startAppend()
          continue
        }
        for (const batch of current.batches) {
          this.blocksWritten++
          this.eventsWritten += batch.events.length
          const waiters = batch.waiters
          this.opts.sink.projected(batch.seq).then(projected => {
            for (const w of waiters) w.resolve(projected.slice(w.start, w.start + w.count))
          }, () => {})
        }
        // hypercore holds its lock until the call returns; writes arriving meanwhile still join the next block.
        await current.appended.catch(() => {})
        inflight = this.startAppend()
      }
    } finally {
      this.flushing = false
      this.markIdle()
    }
  }

  private startAppend (): Append | null {
    if (this.queue.length === 0) return null
    const batches = this.queue.splice(0, MAX_BLOCKS_PER_APPEND)
    if (batches.includes(this.open as Batch)) this.open = null
    const last = batches[batches.length - 1].seq
    let appended: Promise<unknown>
    try {
      const blocks = batches.map(batch => batch.end === true ? encodeEndBlock(this.sessionId) : encodeBlock(this.sessionId, batch.events, batch.payloads))
      for (const batch of batches) this.opts.sink.hint(batch.seq, batch.end === true ? { sessionId: this.sessionId, events: batch.events, ended: true } : { sessionId: this.sessionId, events: batch.events, payloads: batch.payloads })
      appended = this.core.append(blocks)
    } catch (err) {
      appended = Promise.reject(err)
    }
    appended.catch(() => {}) // observed by flush(); this keeps an early failure from going unhandled
    const durable = new Promise<void>((resolve, reject) => {
      // hypercore emits 'append' right after the storage write holding the blocks is applied; its
      // append() call returns only after one more write of the same hints, a worker-thread round trip
      // a save need not wait for.
      const inLog = (): void => {
        if (this.core.length <= last) return
        this.core.off('append', inLog)
        resolve()
      }
      this.core.on('append', inLog)
      // A failure after the blocks reached the log (in that trailing write) leaves them durable.
      appended.then(() => {
        this.core.off('append', inLog)
        resolve()
      }, (err: Error) => {
        this.core.off('append', inLog)
        if (this.core.length > last) resolve()
        else reject(err)
      })
    })
    durable.catch(() => {})
    return { batches, durable, appended }
  }

  /**
   * Later batches were numbered after the failed one, so none of them can be
   * written at the positions their ids promise: fail them all and renumber.
   */
  private failAll (failed: Batch[], cause: Error): void {
    const batches = [...failed, ...this.queue.splice(0)]
    this.open = null
    for (const batch of batches) this.opts.sink.forget(batch.seq)
    this.nextSeq = this.core.length
    const err = cause instanceof CrosscastError
      ? cause
      : new CrosscastError(this.core.closing !== null || this.core.closed ? 'CLOSED' : 'WRITE_FAILED', `appending to the log of session ${this.sessionId} failed: ${cause.message}`, { cause })
    for (const batch of batches) for (const w of batch.waiters) w.reject(err)
  }
}
