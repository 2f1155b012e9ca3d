// Reads over the projection. Rows come back as the same BroadcastEvent shape
// the projector hands to live subscribers, so replay and live look identical.

import type { Database, Statement } from 'better-sqlite3'
import type { BroadcastEvent } from '../events/types.ts'

export const EVENT_COLUMNS = 'event_id, event_type, resource_id, resource_type, agent_id, session_id, payload, timestamp, hlc, writer, seq, idx, parent, cursor'

export function rowToEvent (row: Record<string, unknown>): BroadcastEvent {
  return { ...(row as unknown as BroadcastEvent), payload: JSON.parse(row.payload as string) }
}

/** Pages through broadcast_events after a cursor, under a compiled filter, caching statements per filter shape. */
export class EventReader {
  private readonly db: Database
  private readonly statements = new Map<string, Statement>()

  constructor (db: Database) {
    this.db = db
  }

  after (cursor: number, where: string, params: unknown[], limit: number): BroadcastEvent[] {
    let stmt = this.statements.get(where)
    if (stmt === undefined) {
      stmt = this.db.prepare(`SELECT ${EVENT_COLUMNS} FROM broadcast_events WHERE cursor > ? AND (${where}) ORDER BY cursor LIMIT ?`)
      if (this.statements.size < 256) this.statements.set(where, stmt)
    }
    return (stmt.all(cursor, ...params, limit) as Array<Record<string, unknown>>).map(rowToEvent)
  }
}
