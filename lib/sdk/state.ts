// Reads of current state (features, tracks, spikes, links, comments, conflicts).

import type { Database, Statement } from 'better-sqlite3'
import type { LinkType, Priority, Status } from '../events/types.ts'
import { CrosscastError } from '../errors.ts'
import { validateId, validateStatus } from '../events/validate.ts'

export interface LinkRecord { event_id: string, linked_feature_id: string, link_type: LinkType, agent_id: string, created_at: string }
export interface CommentRecord { event_id: string, resource_id: string, comment_text: string, author: string, agent_id: string, session_id: string, created_at: string }

export interface FeatureRecord {
  id: string
  title: string
  status: Status
  description: string | null
  tags: string[]
  priority: Priority | null
  track_id: string | null
  created_at: string
  created_by: string
  updated_at: string
  links: LinkRecord[]
  version: string
}
export interface TrackRecord { id: string, title: string | null, description: string | null, created_at: string, created_by: string, updated_at: string, version: string }
export interface SpikeRecord { id: string, title: string | null, findings: string | null, created_at: string, created_by: string, updated_at: string, version: string }
export interface ConflictRecord { resource_id: string, field: string, event_a: string, value_a: unknown, event_b: string, value_b: unknown, winner: string }

export interface FeatureQuery { status?: string, track?: string, limit?: number, after?: string }

/** Most features in one page (features({ limit })). */
export const MAX_FEATURE_PAGE = 1000
/** Up to this many features, links are read per feature; beyond, in one query. */
const LINKS_ONE_BY_ONE = 16
const LINK_COLUMNS = 'event_id, linked_feature_id, link_type, agent_id, created_at'
const VISIBLE_FEATURE = 'created_hlc IS NOT NULL AND (deleted_hlc IS NULL OR deleted_hlc < last_write_hlc)'
const FEATURE_COLUMNS = 'id, title, status, description, tags, priority, track_id, created_at, created_by, updated_at'

export class StateReader {
  private readonly db: Database
  private readonly featureById: Statement
  private readonly linksOf: Statement
  private readonly trackById: Statement
  private readonly spikeById: Statement
  private readonly trackOfFeature: Statement
  private readonly versionOf: Statement
  private readonly exclusive = new Map<string, Promise<unknown>>()

  constructor (db: Database) {
    this.db = db
    this.featureById = db.prepare(`SELECT ${FEATURE_COLUMNS} FROM features WHERE id = ? AND ${VISIBLE_FEATURE}`)
    this.linksOf = db.prepare(`SELECT ${LINK_COLUMNS} FROM links WHERE feature_id = ? ORDER BY hlc, event_id`)
    this.trackById = db.prepare('SELECT id, title, description, created_at, created_by, updated_at FROM tracks WHERE id = ? AND created_hlc IS NOT NULL')
    this.spikeById = db.prepare('SELECT id, title, findings, created_at, created_by, updated_at FROM spikes WHERE id = ? AND created_hlc IS NOT NULL')
    this.trackOfFeature = db.prepare('SELECT track_id FROM features WHERE id = ?')
    // Comments and claims leave the item as an update would overwrite it: they do not move its version.
    this.versionOf = db.prepare(`SELECT event_id FROM broadcast_events
      WHERE resource_id = ? AND event_type NOT IN ('comment_added', 'claim_added', 'claim_released')
      ORDER BY cursor DESC LIMIT 1`)
  }

  /**
   * An item's version: the id of the last event applied to it on this node
   * (in this node's order, so two nodes may name different versions of the
   * same content; compare a version with the node it was read from).
   */
  version (id: string): string | null {
    return (this.versionOf.get(id) as { event_id: string } | undefined)?.event_id ?? null
  }

  /**
   * Runs `fn` after every earlier call for the same item has settled: a
   * check-then-write (ifVersion, a claim) sees the writes this node made
   * before it, not only what was projected when it started.
   */
  async serialize<T> (id: string, fn: () => Promise<T>): Promise<T> {
    const before = this.exclusive.get(id) ?? Promise.resolve()
    const run = before.then(fn, fn)
    const tail = run.catch(() => {})
    this.exclusive.set(id, tail)
    try {
      return await run
    } finally {
      if (this.exclusive.get(id) === tail) this.exclusive.delete(id)
    }
  }

  feature (id: string): FeatureRecord | null {
    const row = this.featureById.get(id) as Record<string, unknown> | undefined
    return row === undefined ? null : this.toFeature(row)
  }

  /**
   * Visible features, oldest first. `limit` and `after` (the last id of the
   * previous page) page through them: each page is an index range read, so a
   * room with many thousands of features lists a page in constant time.
   */
  features (query: FeatureQuery = {}): FeatureRecord[] {
    const where = [VISIBLE_FEATURE]
    const params: unknown[] = []
    if (query.after !== undefined) {
      where.push('(created_hlc, id) > (SELECT created_hlc, id FROM features WHERE id = ?)')
      params.push(validateId(query.after, 'after', 'feature'))
    }
    if (query.status !== undefined) {
      where.push('status = ?')
      params.push(validateStatus(query.status, 'status'))
    }
    if (query.track !== undefined) {
      where.push('track_id = ?')
      params.push(validateId(query.track, 'track', 'track'))
    }
    let limit = ''
    if (query.limit !== undefined) {
      if (!Number.isInteger(query.limit) || query.limit < 1 || query.limit > MAX_FEATURE_PAGE) throw new CrosscastError('INVALID_OPTION', `limit must be an integer from 1 to ${MAX_FEATURE_PAGE}, got ${String(query.limit)}`, { field: 'limit' })
      limit = ` LIMIT ${query.limit}`
    }
    const page = `SELECT ${FEATURE_COLUMNS} FROM features WHERE ${where.join(' AND ')} ORDER BY created_hlc, id${limit}`
    const rows = this.db.prepare(page).all(...params) as Array<Record<string, unknown>>
    if (rows.length <= LINKS_ONE_BY_ONE) return rows.map(row => this.toFeature(row))
    // Many features: their links in one query rather than one per feature.
    const links = new Map<string, LinkRecord[]>()
    for (const link of this.db.prepare(`SELECT feature_id, ${LINK_COLUMNS} FROM links WHERE feature_id IN (SELECT id FROM (${page})) ORDER BY feature_id, hlc, event_id`).all(...params) as Array<LinkRecord & { feature_id: string }>) {
      const { feature_id: featureId, ...record } = link
      let list = links.get(featureId)
      if (list === undefined) links.set(featureId, list = [])
      list.push(record)
    }
    return rows.map(row => this.toFeature(row, links.get(row.id as string) ?? []))
  }

  track (id: string): TrackRecord | null {
    const row = this.trackById.get(id) as Omit<TrackRecord, 'version'> | undefined
    return row === undefined ? null : this.withVersion(row)
  }

  tracks (): TrackRecord[] {
    return (this.db.prepare('SELECT id, title, description, created_at, created_by, updated_at FROM tracks WHERE created_hlc IS NOT NULL ORDER BY created_hlc, id').all() as Array<Omit<TrackRecord, 'version'>>).map(r => this.withVersion(r))
  }

  spike (id: string): SpikeRecord | null {
    const row = this.spikeById.get(id) as Omit<SpikeRecord, 'version'> | undefined
    return row === undefined ? null : this.withVersion(row)
  }

  spikes (): SpikeRecord[] {
    return (this.db.prepare('SELECT id, title, findings, created_at, created_by, updated_at FROM spikes WHERE created_hlc IS NOT NULL ORDER BY created_hlc, id').all() as Array<Omit<SpikeRecord, 'version'>>).map(r => this.withVersion(r))
  }

  private withVersion<R extends { id: string }> (row: R): R & { version: string } {
    // A visible item has at least the event that created it.
    return { ...row, version: this.version(row.id) as string }
  }

  comments (resourceId: string): CommentRecord[] {
    return this.db.prepare('SELECT event_id, resource_id, comment_text, author, agent_id, session_id, created_at FROM comments WHERE resource_id = ? ORDER BY hlc, event_id').all(resourceId) as CommentRecord[]
  }

  conflicts (resourceId?: string): ConflictRecord[] {
    const rows = (resourceId === undefined
      ? this.db.prepare('SELECT * FROM conflicts ORDER BY resource_id, field, event_a').all()
      : this.db.prepare('SELECT * FROM conflicts WHERE resource_id = ? ORDER BY field, event_a').all(resourceId)) as Array<Record<string, unknown>>
    return rows.map(r => ({ ...(r as unknown as ConflictRecord), value_a: JSON.parse(r.value_a as string), value_b: JSON.parse(r.value_b as string) }))
  }

  trackOf (featureId: string): string | null {
    const row = this.trackOfFeature.get(featureId) as { track_id: string | null } | undefined
    return row?.track_id ?? null
  }

  exists (id: string): boolean {
    if (id.startsWith('feat-')) return this.feature(id) !== null
    if (id.startsWith('trk-')) return this.track(id) !== null
    if (id.startsWith('spk-')) return this.spike(id) !== null
    throw new CrosscastError('INVALID_ID', `${id} is not a resource id`, { field: 'id' })
  }

  private toFeature (row: Record<string, unknown>, links?: LinkRecord[]): FeatureRecord {
    return {
      ...(row as unknown as FeatureRecord),
      tags: row.tags === null ? [] : JSON.parse(row.tags as string),
      links: links ?? this.linksOf.all(row.id) as LinkRecord[],
      version: this.version(row.id as string) as string
    }
  }
}
