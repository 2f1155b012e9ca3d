// The claim rule, identical on every peer: a pure function of the claim events
// on one item (whatever order they arrived in) and of the wall clock.
//
// Per writer (one session's log), claim events form chains: a claim_added
// starts a chain, a later claim_added from the same writer made before the
// chain expired renews it (the expiry moves, the start stays), a
// claim_released ends it. A chain is live until its expiry. Among live chains
// the one that started earliest by hlc wins, ties broken by writer key, so two
// claims made apart resolve to the same holder wherever both are known.

import type { Database, Statement } from 'better-sqlite3'
import { hlcToMillis } from '../events/hlc.ts'
import { MAX_CLAIM_TTL_S } from '../events/validate.ts'
import { byItem } from './group.ts'

export interface ClaimHolder {
  agent_id: string
  session_id: string
  writer: string
  /** When the claim lapses unless renewed (ISO 8601 UTC). */
  expires_at: string
  /** The claim_added that started the holder's claim (renewals keep it). */
  event_id: string
}

export interface ClaimEventRow {
  event_id: string
  event_type: string
  writer: string
  agent_id: string
  session_id: string
  hlc: number
  payload: string
}

export interface ClaimChain {
  writer: string
  start: ClaimEventRow
  latest: ClaimEventRow
  expiresMs: number
}

export const claimTtlS = (row: ClaimEventRow): number => (JSON.parse(row.payload) as { ttl_s: number }).ttl_s

/** Every writer's current chain on one item, live or not, from its claim events in any order. */
export function claimChains (rows: readonly ClaimEventRow[]): ClaimChain[] {
  const byWriter = new Map<string, ClaimEventRow[]>()
  for (const row of rows) {
    let list = byWriter.get(row.writer)
    if (list === undefined) byWriter.set(row.writer, list = [])
    list.push(row)
  }
  const chains: ClaimChain[] = []
  for (const [writer, list] of byWriter) {
    // One writer's clock only moves forward, so hlc order is its log order.
    list.sort((a, b) => a.hlc - b.hlc)
    let chain: ClaimChain | null = null
    for (const row of list) {
      if (row.event_type === 'claim_released') {
        chain = null
        continue
      }
      const at = hlcToMillis(row.hlc)
      const expiresMs = at + claimTtlS(row) * 1000
      if (chain !== null && at < chain.expiresMs) {
        chain.latest = row
        chain.expiresMs = Math.max(chain.expiresMs, expiresMs)
      } else {
        chain = { writer, start: row, latest: row, expiresMs }
      }
    }
    if (chain !== null) chains.push(chain)
  }
  return chains
}

/** The live chain that wins at `nowMs`, or null. */
export function winningChain (chains: readonly ClaimChain[], nowMs: number): ClaimChain | null {
  let best: ClaimChain | null = null
  for (const chain of chains) {
    if (chain.expiresMs <= nowMs) continue
    if (best === null || chain.start.hlc < best.start.hlc || (chain.start.hlc === best.start.hlc && chain.writer < best.writer)) best = chain
  }
  return best
}

export function holderOf (chain: ClaimChain): ClaimHolder {
  return {
    agent_id: chain.start.agent_id,
    session_id: chain.start.session_id,
    writer: chain.writer,
    expires_at: new Date(chain.expiresMs).toISOString(),
    event_id: chain.start.event_id
  }
}

const CLAIM_COLUMNS = 'event_id, event_type, writer, agent_id, session_id, hlc, payload'
const CLAIM_EVENTS = "event_type IN ('claim_added', 'claim_released')"

/**
 * Reads claim events from broadcast_events: the audit trail is the claim table.
 * Each query names the partial index it needs (schema.ts), so an item's claims
 * never cost a visit to its other events, nor "who holds anything" a scan of
 * the trail, however the planner guesses.
 */
export class ClaimReader {
  private readonly ofResource: Statement
  private readonly ofResources: Statement
  private readonly claimed: Statement
  private readonly claimedBy: Statement

  constructor (db: Database) {
    this.ofResource = db.prepare(`SELECT ${CLAIM_COLUMNS} FROM broadcast_events INDEXED BY idx_broadcast_claim_events
      WHERE resource_id = ? AND ${CLAIM_EVENTS}`)
    this.ofResources = db.prepare(`SELECT resource_id, ${CLAIM_COLUMNS} FROM broadcast_events INDEXED BY idx_broadcast_claim_events
      WHERE resource_id IN (SELECT value FROM json_each(?)) AND ${CLAIM_EVENTS}`)
    // Items whose latest claim event could still be live: everything else holds no claim.
    this.claimed = db.prepare(`SELECT DISTINCT resource_id FROM broadcast_events INDEXED BY idx_broadcast_claims
      WHERE event_type = 'claim_added' AND hlc >= ?`)
    this.claimedBy = db.prepare(`SELECT DISTINCT resource_id FROM broadcast_events INDEXED BY idx_broadcast_claims
      WHERE event_type = 'claim_added' AND hlc >= ? AND writer = ?`)
  }

  chains (resourceId: string): ClaimChain[] {
    return claimChains(this.ofResource.all(resourceId) as ClaimEventRow[])
  }

  holder (resourceId: string, nowMs = Date.now()): ClaimHolder | null {
    const chain = winningChain(this.chains(resourceId), nowMs)
    return chain === null ? null : holderOf(chain)
  }

  /** The live holders of many items (a page) in one query; items held by no one are absent. */
  holdersOf (ids: readonly string[], nowMs = Date.now()): Map<string, ClaimHolder> {
    const rowsOf = byItem(this.ofResources.all(JSON.stringify(ids)) as Array<ClaimEventRow & { resource_id: string }>, row => row.resource_id, row => row)
    const out = new Map<string, ClaimHolder>()
    for (const [id, rows] of rowsOf) {
      const chain = winningChain(claimChains(rows), nowMs)
      if (chain !== null) out.set(id, holderOf(chain))
    }
    return out
  }

  /** Every item with a live claim now (or only those `writer` holds), and its holder. */
  held (nowMs = Date.now(), writer?: string): Map<string, ClaimHolder> {
    // A claim event older than the longest ttl can only be live through a newer renewal, which this also finds.
    const since = (nowMs - MAX_CLAIM_TTL_S * 1000) * 1000
    const ids = ((writer === undefined ? this.claimed.all(since) : this.claimedBy.all(since, writer)) as Array<{ resource_id: string }>).map(r => r.resource_id)
    const holders = this.holdersOf(ids, nowMs)
    if (writer !== undefined) for (const [id, holder] of holders) if (holder.writer !== writer) holders.delete(id)
    return holders
  }
}
