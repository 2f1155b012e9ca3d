// Claims on work items, for the sessions a node hosts: the local refusal
// (CLAIMED), renewal while the node runs, and the "claim lost" signal when a
// claim made apart from another one turns out to be the later of the two.
// Who holds an item is decided by the rule in projection/claims.ts, the same
// on every peer; this object only acts on its answers.

import type { Database } from 'better-sqlite3'
import { CrosscastError } from '../errors.ts'
import type { BroadcastEvent, EventDraft } from '../events/types.ts'
import { validateClaimTtl, validateId } from '../events/validate.ts'
import { ClaimReader, winningChain, holderOf, claimTtlS, type ClaimHolder } from '../projection/claims.ts'
import type { Logger } from '../logger.ts'
import type { StateReader, FeatureRecord } from './state.ts'

export type { ClaimHolder } from '../projection/claims.ts'

export const DEFAULT_CLAIM_TTL_S = 300
/** How often held claims are looked at (renewal, expiry, loss). */
const CLAIM_CHECK_MS = 1000
const RENEW_MARGIN_CHECKS = 3
const PRIORITY_RANK: Record<string, number> = { critical: 0, high: 1, medium: 2, low: 3 }

export interface ClaimOptions {
  /** Seconds the claim lasts unless renewed (default 300, 1 to 86400). */
  ttlS?: number
  /** Renew it while this node runs (default true); without renewal it lapses after ttlS. */
  renew?: boolean
}

export interface ClaimResult { won: boolean, holder: ClaimHolder | null, expires_at: string | null }

/** Emitted as `claim-lost` on the node: a claim one of its sessions held is now someone else's, or lapsed. */
export interface ClaimLost { resource_id: string, session_id: string, holder: ClaimHolder | null }

/** A session that can claim: the node's own or one it hosts for the gateway. */
export interface ClaimingSession {
  readonly sessionId: string
  readonly writerKey: string
  append (drafts: EventDraft[]): Promise<BroadcastEvent[]>
}

export interface ClaimHost {
  readonly db: Database
  readonly state: StateReader
  readonly logger: Logger
  readonly closed: boolean
  on (event: 'events', listener: (events: BroadcastEvent[]) => void): unknown
  emit (event: 'claim-lost', lost: ClaimLost): boolean
}

interface Held { session: ClaimingSession, ttlS: number, renew: boolean, renewing: boolean }

function describeHolder (holder: ClaimHolder): string {
  return `agent ${holder.agent_id} (session ${holder.session_id}) until ${holder.expires_at}`
}

export class ClaimManager {
  private readonly host: ClaimHost
  private readonly reader: ClaimReader
  /** Items a local session claimed and, at the last look, held. */
  private readonly held = new Map<string, Held>()
  private timer: NodeJS.Timeout | null = null

  constructor (host: ClaimHost) {
    this.host = host
    this.reader = new ClaimReader(host.db)
    host.on('events', (events) => this.onEvents(events))
  }

  holder (id: string): ClaimHolder | null {
    return this.reader.holder(validateId(id, 'id'))
  }

  /** Every item with a live claim now, by holder. */
  holders (): Map<string, ClaimHolder> {
    return this.reader.held()
  }

  /** The live holders of the given items (a page of them), in one query; unheld items are absent. */
  holdersOf (ids: readonly string[]): Map<string, ClaimHolder> {
    return this.reader.holdersOf(ids)
  }

  /**
   * A session reopened (the same session id, so the same log): it is present
   * again, so the claims it still holds are renewed and watched as if just made.
   */
  adopt (session: ClaimingSession): void {
    for (const id of this.reader.held(Date.now(), session.writerKey).keys()) {
      const latest = this.reader.chains(id).find(c => c.writer === session.writerKey)?.latest
      const ttlS = latest === undefined ? DEFAULT_CLAIM_TTL_S : claimTtlS(latest)
      this.held.set(id, { session, ttlS, renew: true, renewing: false })
    }
    if (this.held.size > 0) this.watch()
  }

  claim (session: ClaimingSession, id: string, opts: ClaimOptions = {}): Promise<ClaimResult> {
    try {
      validateId(id, 'id')
      if (opts === null || typeof opts !== 'object') throw new CrosscastError('INVALID_OPTION', 'claim options must be an object like { ttlS: 300 }', { field: 'options' })
      const ttlS = validateClaimTtl(opts.ttlS ?? DEFAULT_CLAIM_TTL_S, 'ttlS')
      if (opts.renew !== undefined && typeof opts.renew !== 'boolean') throw new CrosscastError('INVALID_OPTION', 'renew must be true or false', { field: 'renew' })
      if (!this.host.state.exists(id)) throw new CrosscastError('NOT_FOUND', `${id} does not exist (or was deleted)`, { field: 'id' })
      return this.host.state.serialize(id, () => this.claimNow(session, id, ttlS, opts.renew ?? true))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  private async claimNow (session: ClaimingSession, id: string, ttlS: number, renew: boolean): Promise<ClaimResult> {
    const before = this.reader.holder(id)
    if (before !== null && before.writer !== session.writerKey) {
      throw new CrosscastError('CLAIMED', `${id} is claimed by ${describeHolder(before)}`, { field: 'id', current: before })
    }
    await session.append([{ event_type: 'claim_added', resource_id: id, payload: { ttl_s: ttlS } }])
    const holder = this.reader.holder(id)
    if (holder?.writer === session.writerKey) {
      this.held.set(id, { session, ttlS, renew, renewing: false })
      this.watch()
      return { won: true, holder, expires_at: holder.expires_at }
    }
    // An earlier claim made elsewhere arrived while ours was being written: ours lost at once.
    await this.withdraw(session, id)
    return { won: false, holder, expires_at: null }
  }

  /** Gives up the session's claim on the item; nothing is written when it holds none. */
  release (session: ClaimingSession, id: string): Promise<void> {
    try {
      validateId(id, 'id')
    } catch (err) {
      return Promise.reject(err)
    }
    return this.host.state.serialize(id, async () => {
      this.held.delete(id)
      await this.withdraw(session, id)
    })
  }

  /** Writes claim_released when the session has a claim on the item that has not lapsed, won or not. */
  private async withdraw (session: ClaimingSession, id: string): Promise<void> {
    const mine = this.reader.chains(id).find(c => c.writer === session.writerKey)
    if (mine === undefined || mine.expiresMs <= Date.now()) return
    await session.append([{ event_type: 'claim_released', resource_id: id, payload: {} }])
  }

  /**
   * Features ready to start: todo, not held by a live claim, and every feature
   * they depend on (depends_on from them, blocks towards them) done or deleted.
   * Ordered by priority (critical first, none last), then age.
   */
  ready (opts: { limit?: number } = {}): FeatureRecord[] {
    const limit = opts?.limit
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 10_000)) {
      throw new CrosscastError('INVALID_OPTION', `limit must be an integer from 1 to 10000, got ${String(limit)}`, { field: 'limit' })
    }
    const state = this.host.state
    const statuses = new Map<string, string>()
    for (const row of this.host.db.prepare('SELECT id, status, created_hlc IS NOT NULL AND (deleted_hlc IS NULL OR deleted_hlc < last_write_hlc) AS visible FROM features').all() as Array<{ id: string, status: string | null, visible: number }>) {
      statuses.set(row.id, row.visible === 1 ? row.status ?? 'todo' : 'deleted')
    }
    // A dependency not seen yet may still be on its way from a peer: it blocks.
    const blocking = (id: string): boolean => { const s = statuses.get(id); return s !== 'done' && s !== 'deleted' }
    const blockedBy = new Map<string, string[]>()
    for (const link of this.host.db.prepare("SELECT feature_id, linked_feature_id FROM links WHERE link_type = 'blocks'").all() as Array<{ feature_id: string, linked_feature_id: string }>) {
      const list = blockedBy.get(link.linked_feature_id) ?? []
      list.push(link.feature_id)
      blockedBy.set(link.linked_feature_id, list)
    }
    const claimed = this.reader.held()
    const ready = state.features({ status: 'todo' }).filter(f =>
      !claimed.has(f.id) &&
      f.links.every(l => l.link_type !== 'depends_on' || !blocking(l.linked_feature_id)) &&
      (blockedBy.get(f.id) ?? []).every(b => !blocking(b)))
    // features() lists by age already; a stable sort keeps that within a priority.
    ready.sort((a, b) => (PRIORITY_RANK[a.priority ?? ''] ?? 4) - (PRIORITY_RANK[b.priority ?? ''] ?? 4))
    return limit === undefined ? ready : ready.slice(0, limit)
  }

  close (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    this.held.clear()
  }

  private watch (): void {
    if (this.timer !== null) return
    this.timer = setInterval(() => this.check(), CLAIM_CHECK_MS)
    this.timer.unref()
  }

  private onEvents (events: BroadcastEvent[]): void {
    if (this.held.size === 0) return
    const touched = new Set<string>()
    for (const e of events) {
      if ((e.event_type === 'claim_added' || e.event_type === 'claim_released') && this.held.has(e.resource_id)) touched.add(e.resource_id)
    }
    for (const id of touched) this.checkOne(id, Date.now())
  }

  private check (): void {
    if (this.host.closed) return this.close()
    const now = Date.now()
    for (const id of [...this.held.keys()]) this.checkOne(id, now)
    if (this.held.size === 0 && this.timer !== null) {
      clearInterval(this.timer)
      this.timer = null
    }
  }

  private checkOne (id: string, now: number): void {
    const held = this.held.get(id)
    if (held === undefined) return
    const chains = this.reader.chains(id)
    const winner = winningChain(chains, now)
    const holder = winner === null ? null : holderOf(winner)
    if (holder?.writer !== held.session.writerKey) {
      this.held.delete(id)
      const lost: ClaimLost = { resource_id: id, session_id: held.session.sessionId, holder }
      this.host.logger.info({ resource: id, session: held.session.sessionId, holder: holder?.session_id ?? null }, 'claim lost')
      this.host.emit('claim-lost', lost)
      // Overtaken by an earlier claim made apart: withdraw ours so it cannot come back when the winner lets go.
      this.host.state.serialize(id, () => this.withdraw(held.session, id)).catch(err => {
        this.host.logger.debug({ err: (err as Error).message, resource: id }, 'could not withdraw a lost claim')
      })
      return
    }
    const mine = chains.find(c => c.writer === held.session.writerKey)
    // Half the ttl ahead, and never less than a few checks ahead, so a late timer on a busy machine cannot let it lapse.
    const renewWithinMs = Math.max(held.ttlS * 500, RENEW_MARGIN_CHECKS * CLAIM_CHECK_MS)
    if (!held.renew || held.renewing || mine === undefined || mine.expiresMs - now > renewWithinMs) return
    held.renewing = true
    held.session.append([{ event_type: 'claim_added', resource_id: id, payload: { ttl_s: held.ttlS } }])
      .catch(err => this.host.logger.warn({ err: (err as Error).message, resource: id }, 'renewing a claim failed'))
      .finally(() => { held.renewing = false })
  }
}
