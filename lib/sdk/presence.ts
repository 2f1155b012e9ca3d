// Presence for one node: its own session announced on every authenticated
// connection, with the claims each listed session holds (from the claim rule).

import type { BroadcastEvent } from '../events/types.ts'
import { Presence, type PresenceEntry } from '../presence/presence.ts'
import type { Logger } from '../logger.ts'
import type { ClaimManager } from './claims.ts'

export type { PresenceEntry } from '../presence/presence.ts'

export interface PresenceNode {
  readonly sessionId: string
  readonly agent: string
  readonly writerKey: string
  readonly logger: Logger
  readonly _claims: ClaimManager
  /** This node's relay key when it runs with relay: true. */
  _relayKey (): string | null
  /** A room peer announced that it relays. */
  _relayLearnt (key: string): void
  on (event: 'events', listener: (events: BroadcastEvent[]) => void): unknown
  emit (event: 'presence', entries: PresenceEntry[]): boolean
}

export function nodePresence (node: PresenceNode): Presence {
  const presence = new Presence({
    nodeKey: node.writerKey,
    logger: node.logger,
    relayKey: () => node._relayKey(),
    onRelay: (key) => node._relayLearnt(key),
    localSessions: () => [{ agent_id: node.agent, session_id: node.sessionId, writer: node.writerKey }],
    claimsByWriter: () => {
      const out = new Map<string, string[]>()
      for (const [id, holder] of node._claims.holders()) {
        const list = out.get(holder.writer) ?? []
        list.push(id)
        out.set(holder.writer, list)
      }
      for (const list of out.values()) list.sort()
      return out
    }
  })
  presence.on('change', (entries) => node.emit('presence', entries))
  node.on('events', (events) => {
    if (events.some(e => e.event_type === 'claim_added' || e.event_type === 'claim_released')) presence.changed()
  })
  // The starting point, so only real changes are announced.
  presence.changed()
  return presence
}
