// Fan-out from the projector to subscribers. The database is the buffer: a
// subscriber that falls behind is not queued without bound, it re-reads from
// its cursor. So a slow subscriber never stalls the projector or the others,
// and replay-then-live has no gap and no duplicate.

import type { BroadcastEvent } from '../events/types.ts'
import type { EventReader } from '../projection/queries.ts'
import type { CompiledFilter } from './filter.ts'
import type { Logger } from '../logger.ts'
import { CrosscastError } from '../errors.ts'

const REPLAY_PAGE = 500
/** An iterator's first replay page: a reader that takes a page and stops should not pay for 500 rows. Pages double from it. */
const FIRST_ITERATOR_PAGE = 100
/** Live events an iterator holds before it falls back to reading from the database. */
export const ITERATOR_QUEUE_LIMIT = 1024

interface Listener {
  filter: CompiledFilter
  deliver: (event: BroadcastEvent) => void
  /** The database was rebuilt under a new epoch; the listener is at `cursor` in it. */
  reset: (epoch: string, cursor: number) => void
}

export interface ResetInfo { epoch: string, cursor: number }

export interface CursorRequest {
  since?: number
  epoch?: string
  onReset?: (reset: ResetInfo) => void
}

export class SubscriptionHub {
  private readonly listeners = new Set<Listener>()
  private readonly waiting = new Set<() => void>()
  private closed = false
  private readonly reader: EventReader
  private readonly logger: Logger
  private readonly lastCursor: () => number
  private readonly epoch: () => string
  delivered = 0

  constructor (reader: EventReader, lastCursor: () => number, epoch: () => string, logger: Logger) {
    this.reader = reader
    this.lastCursor = lastCursor
    this.epoch = epoch
    this.logger = logger
  }

  /**
   * Where replay starts: `since`, unless it was read in another epoch; then the
   * caller is told (onReset) and replay starts at the beginning of this epoch.
   */
  private start (request: CursorRequest): number | undefined {
    if (request.since !== undefined) checkCursor(request.since)
    if (request.epoch === undefined || request.epoch === this.epoch()) return request.since
    this.notify(request, { epoch: this.epoch(), cursor: 0 })
    return 0
  }

  private notify (request: CursorRequest, reset: ResetInfo): void {
    try {
      request.onReset?.(reset)
    } catch (err) {
      this.logger.error({ err }, 'an onReset callback threw')
    }
  }

  /** A rebuild started a new epoch: every live subscriber is told where it now stands. */
  reset (epoch: string, cursor: number): void {
    for (const listener of this.listeners) listener.reset(epoch, cursor)
  }

  get size (): number {
    return this.listeners.size
  }

  publish (events: BroadcastEvent[]): void {
    for (const listener of this.listeners) {
      for (const event of events) {
        if (!listener.filter.matches(event)) continue
        try {
          listener.deliver(event)
          this.delivered++
        } catch (err) {
          this.logger.error({ err }, 'a subscriber threw; it keeps its subscription')
        }
      }
    }
  }

  /**
   * Calls `callback` for each matching event. With `since`, first replays what
   * came after that cursor, synchronously, then goes live: the projector runs
   * on this same thread, so nothing can commit between the two.
   */
  subscribe (filter: CompiledFilter, callback: (event: BroadcastEvent) => void, request: CursorRequest = {}): () => void {
    const since = this.start(request)
    if (since !== undefined) {
      let cursor = since
      for (;;) {
        const page = this.reader.after(cursor, filter.sql, filter.params, REPLAY_PAGE)
        for (const event of page) callback(event)
        if (page.length < REPLAY_PAGE) break
        cursor = page[page.length - 1].cursor
      }
    }
    const listener: Listener = { filter, deliver: callback, reset: (epoch, cursor) => this.notify(request, { epoch, cursor }) }
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** An async iterator over matching events: replay from `since` (if given), then live. */
  async * iterate (filter: CompiledFilter, request: CursorRequest = {}, signal?: AbortSignal): AsyncGenerator<BroadcastEvent> {
    const since = this.start(request)
    let last = since ?? this.lastCursor()
    let replaying = since !== undefined
    let pageSize = FIRST_ITERATOR_PAGE
    let overflowed = false
    const queue: BroadcastEvent[] = []
    const carried: BroadcastEvent[] = []
    let wake: (() => void) | null = null
    const listener: Listener = {
      filter,
      deliver: (event) => {
        if (queue.length < ITERATOR_QUEUE_LIMIT) queue.push(event)
        else overflowed = true
        if (wake !== null) { wake(); wake = null }
      },
      reset: (epoch, cursor) => {
        // Events queued before the rebuild still go out (they carry old-epoch cursors);
        // from here on the iterator counts in the new epoch.
        carried.push(...queue.splice(0))
        last = cursor
        this.notify(request, { epoch, cursor })
        if (wake !== null) { wake(); wake = null }
      }
    }
    const onAbort = (): void => { if (wake !== null) { wake(); wake = null } }
    this.waiting.add(onAbort)
    signal?.addEventListener('abort', onAbort)
    this.listeners.add(listener)
    try {
      while (signal?.aborted !== true && !this.closed) {
        const old = carried.shift()
        if (old !== undefined) {
          yield old
          continue
        }
        if (overflowed) {
          overflowed = false
          queue.length = 0
          replaying = true
          pageSize = REPLAY_PAGE
        }
        if (replaying) {
          const page = this.reader.after(last, filter.sql, filter.params, pageSize)
          if (page.length < pageSize) replaying = false
          pageSize = Math.min(REPLAY_PAGE, pageSize * 2)
          for (const event of page) {
            last = event.cursor
            yield event
          }
          continue
        }
        const next = queue.shift()
        if (next !== undefined) {
          if (next.cursor > last) {
            last = next.cursor
            yield next
          }
          continue
        }
        await new Promise<void>(resolve => { wake = resolve })
      }
    } finally {
      this.listeners.delete(listener)
      this.waiting.delete(onAbort)
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /** Ends every iterator (their loops return) and drops every callback. */
  close (): void {
    this.closed = true
    this.listeners.clear()
    for (const wake of this.waiting) wake()
  }
}

function checkCursor (since: unknown): void {
  if (typeof since !== 'number' || !Number.isSafeInteger(since) || since < 0) {
    throw new CrosscastError('INVALID_CURSOR', `since must be a cursor (a non-negative integer), got ${String(since)}`, { field: 'since' })
  }
}
