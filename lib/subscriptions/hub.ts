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
/** Live events an iterator holds before it falls back to reading from the database. */
export const ITERATOR_QUEUE_LIMIT = 1024

interface Listener { filter: CompiledFilter, deliver: (event: BroadcastEvent) => void }

export class SubscriptionHub {
  private readonly listeners = new Set<Listener>()
  private readonly waiting = new Set<() => void>()
  private closed = false
  private readonly reader: EventReader
  private readonly logger: Logger
  private readonly lastCursor: () => number
  delivered = 0

  constructor (reader: EventReader, lastCursor: () => number, logger: Logger) {
    this.reader = reader
    this.lastCursor = lastCursor
    this.logger = logger
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
  subscribe (filter: CompiledFilter, callback: (event: BroadcastEvent) => void, since?: number): () => void {
    if (since !== undefined) {
      checkCursor(since)
      let cursor = since
      for (;;) {
        const page = this.reader.after(cursor, filter.sql, filter.params, REPLAY_PAGE)
        for (const event of page) callback(event)
        if (page.length < REPLAY_PAGE) break
        cursor = page[page.length - 1].cursor
      }
    }
    const listener: Listener = { filter, deliver: callback }
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** An async iterator over matching events: replay from `since` (if given), then live. */
  async * iterate (filter: CompiledFilter, since: number | undefined, signal?: AbortSignal): AsyncGenerator<BroadcastEvent> {
    if (since !== undefined) checkCursor(since)
    let last = since ?? this.lastCursor()
    let replaying = since !== undefined
    let overflowed = false
    const queue: BroadcastEvent[] = []
    let wake: (() => void) | null = null
    const listener: Listener = {
      filter,
      deliver: (event) => {
        if (queue.length < ITERATOR_QUEUE_LIMIT) queue.push(event)
        else overflowed = true
        if (wake !== null) { wake(); wake = null }
      }
    }
    const onAbort = (): void => { if (wake !== null) { wake(); wake = null } }
    this.waiting.add(onAbort)
    signal?.addEventListener('abort', onAbort)
    this.listeners.add(listener)
    try {
      while (signal?.aborted !== true && !this.closed) {
        if (overflowed) {
          overflowed = false
          queue.length = 0
          replaying = true
        }
        if (replaying) {
          const page = this.reader.after(last, filter.sql, filter.params, REPLAY_PAGE)
          if (page.length < REPLAY_PAGE) replaying = false
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
