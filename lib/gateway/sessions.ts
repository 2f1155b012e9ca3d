// The session logs a gateway hosts, one per X-Session-ID that writes. Each is a
// hypercore with its memory and file handles, so they are capped (a clear
// LIMIT_REACHED past the cap) and closed after a while without writes, ended
// (the signed end marker): a session that wrote once and left then costs a row
// in writers.db, here and on every peer, and no open log. Its log stays on disk
// and known, and reopens on its next write (it then simply grows again).

import type { Crosscast, CrosscastSession } from '../index.ts'
import { CrosscastError } from '../errors.ts'
import type { Logger } from './logger.ts'

export { DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_IDLE_MS } from './defaults.ts'

interface Entry { lastUsed: number, inflight: number }

export class GatewaySessions {
  private readonly cc: Crosscast
  private readonly max: number
  private readonly idleMs: number
  private readonly logger: Logger
  private readonly open = new Map<string, Entry>()
  private readonly sweeper: NodeJS.Timeout | null = null
  private closing: Promise<void> | null = null

  constructor (cc: Crosscast, opts: { maxSessions: number, idleMs: number, logger: Logger }) {
    this.cc = cc
    this.max = opts.maxSessions
    this.idleMs = opts.idleMs
    this.logger = opts.logger
    if (this.idleMs > 0) {
      this.sweeper = setInterval(() => { void this.sweep() }, Math.max(50, Math.min(this.idleMs / 2, 60_000)))
      this.sweeper.unref()
    }
  }

  get size (): number {
    return this.open.size
  }

  /** Runs `use` on the session's log, opening it if needed; refuses a new session past the cap. */
  async with<T> (sessionId: string, agent: string, use: (session: CrosscastSession) => Promise<T>): Promise<T> {
    let entry = this.open.get(sessionId)
    // The node's own session is always open and never counted.
    if (entry === undefined && sessionId !== this.cc.sessionId) {
      if (this.open.size >= this.max) {
        throw new CrosscastError('LIMIT_REACHED', `this gateway hosts its maximum of ${this.max} sessions (maxSessions / --max-sessions); retry when one goes idle, or reuse an X-Session-ID`, { field: 'X-Session-ID' })
      }
      entry = { lastUsed: Date.now(), inflight: 0 }
      this.open.set(sessionId, entry)
    }
    if (entry !== undefined) entry.inflight++
    try {
      const session = await this.cc.session({ sessionId, agent })
      return await use(session)
    } finally {
      if (entry !== undefined) {
        entry.inflight--
        entry.lastUsed = Date.now()
      }
    }
  }

  /** Closes every session without a write for idleMs (and none under way). */
  async sweep (): Promise<void> {
    const now = Date.now()
    for (const [sessionId, entry] of this.open) {
      if (entry.inflight > 0 || now - entry.lastUsed < this.idleMs) continue
      this.open.delete(sessionId)
      try {
        await this.cc.closeSession(sessionId, { end: true })
        this.logger.debug({ session: sessionId }, 'closed an idle session log')
      } catch (err) {
        this.logger.warn({ session: sessionId, err: (err as Error).message }, 'closing an idle session log failed')
      }
    }
  }

  close (): void {
    if (this.sweeper !== null) clearInterval(this.sweeper)
  }
}
