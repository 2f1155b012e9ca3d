// Reads of current state (features, tracks, spikes, links, comments, conflicts).

import type { Database, Statement } from 'better-sqlite3'
import type { LinkType, Priority, Status } from '../events/types.ts'
import { CrosscastError } from '../errors.ts'
import { validateId, validateStatus } from '../events/validate.ts'
import { STATE_TABLE, stateTableOf } from '../projection/resources.ts'
import { byItem } from '../projection/group.ts'

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
const LINK_COLUMNS = 'event_id, linked_feature_id, link_type, agent_id, created_at'
const COMMENT_COLUMNS = 'event_id, resource_id, comment_text, author, agent_id, session_id, created_at'
const VISIBLE_FEATURE = 'created_hlc IS NOT NULL AND (deleted_hlc IS NULL OR deleted_hlc < last_write_hlc)'
const FEATURE_COLUMNS = 'id, title, status, description, tags, priority, track_id, created_at, created_by, updated_at, version'
const TRACK_COLUMNS = 'id, title, description, created_at, created_by, updated_at, version'
const SPIKE_COLUMNS = 'id, title, findings, created_at, created_by, updated_at, version'
/** The ids of a page, bound as one JSON array: one statement whatever the page's size. */
const IN_IDS = 'IN (SELECT value FROM json_each(?))'

export class StateReader {
  private readonly db: Database
  private readonly featureById: Statement
  private readonly linksOf: Statement
  private readonly trackById: Statement
  private readonly spikeById: Statement
  private readonly trackOfFeature: Statement
  private readonly versionIn = new Map<string, Statement>()
  private readonly commentsOfOne: Statement
  private readonly commentsOfMany: Statement
  private readonly linksOfMany: Statement
  /** features() statements by filter shape (status, track, after, limit: at most 16 shapes). */
  private readonly pages = new Map<string, Statement>()
  private readonly exclusive = new Map<string, Promise<unknown>>()

  constructor (db: Database) {
    this.db = db
    this.featureById = db.prepare(`SELECT ${FEATURE_COLUMNS} FROM features WHERE id = ? AND ${VISIBLE_FEATURE}`)
    this.linksOf = db.prepare(`SELECT ${LINK_COLUMNS} FROM links WHERE feature_id = ? ORDER BY hlc, event_id`)
    this.trackById = db.prepare(`SELECT ${TRACK_COLUMNS} FROM tracks WHERE id = ? AND created_hlc IS NOT NULL`)
    this.spikeById = db.prepare(`SELECT ${SPIKE_COLUMNS} FROM spikes WHERE id = ? AND created_hlc IS NOT NULL`)
    this.trackOfFeature = db.prepare('SELECT track_id FROM features WHERE id = ?')
    for (const table of Object.values(STATE_TABLE)) this.versionIn.set(table, db.prepare(`SELECT version FROM ${table} WHERE id = ?`).pluck())
    this.commentsOfOne = db.prepare(`SELECT ${COMMENT_COLUMNS} FROM comments WHERE resource_id = ? ORDER BY hlc, event_id`)
    this.commentsOfMany = db.prepare(`SELECT ${COMMENT_COLUMNS} FROM comments WHERE resource_id ${IN_IDS} ORDER BY resource_id, hlc, event_id`)
    this.linksOfMany = db.prepare(`SELECT feature_id, ${LINK_COLUMNS} FROM links WHERE feature_id ${IN_IDS} ORDER BY feature_id, hlc, event_id`)
  }

  /**
   * An item's version: the id of the last event applied to it on this node
   * (in this node's order, so two nodes may name different versions of the
   * same content; compare a version with the node it was read from). The
   * projector keeps it in the item's row (see projection/resources.ts).
   */
  version (id: string): string | null {
    const table = stateTableOf(id)
    return table === null ? null : (this.versionIn.get(table)!.get(id) as string | null | undefined) ?? null
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
      limit = ' LIMIT ?'
      params.push(query.limit)
    }
    const sql = `SELECT ${FEATURE_COLUMNS} FROM features WHERE ${where.join(' AND ')} ORDER BY created_hlc, id${limit}`
    let page = this.pages.get(sql)
    if (page === undefined) this.pages.set(sql, page = this.db.prepare(sql))
    const rows = page.all(...params) as Array<Record<string, unknown>>
    // The page's links in one query rather than one per feature.
    const links = byItem(this.linksOfMany.all(JSON.stringify(rows.map(row => row.id))) as Array<LinkRecord & { feature_id: string }>, l => l.feature_id, ({ feature_id: _, ...link }) => link)
    return rows.map(row => this.toFeature(row, links.get(row.id as string) ?? []))
  }

  track (id: string): TrackRecord | null {
    return (this.trackById.get(id) as TrackRecord | undefined) ?? null
  }

  tracks (): TrackRecord[] {
    return this.db.prepare(`SELECT ${TRACK_COLUMNS} FROM tracks WHERE created_hlc IS NOT NULL ORDER BY created_hlc, id`).all() as TrackRecord[]
  }

  spike (id: string): SpikeRecord | null {
    return (this.spikeById.get(id) as SpikeRecord | undefined) ?? null
  }

  spikes (): SpikeRecord[] {
    return this.db.prepare(`SELECT ${SPIKE_COLUMNS} FROM spikes WHERE created_hlc IS NOT NULL ORDER BY created_hlc, id`).all() as SpikeRecord[]
  }

  comments (resourceId: string): CommentRecord[] {
    return this.commentsOfOne.all(resourceId) as CommentRecord[]
  }

  /** The comments of many items (a page) in one query, oldest first per item; items without any are absent. */
  commentsOf (ids: readonly string[]): Map<string, CommentRecord[]> {
    return byItem(this.commentsOfMany.all(JSON.stringify(ids)) as CommentRecord[], c => c.resource_id, c => c)
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
    // Field by field rather than a spread of the row: a page builds a hundred of these.
    return {
      id: row.id as string,
      title: row.title as string,
      status: row.status as Status,
      description: row.description as string | null,
      tags: row.tags === null ? [] : JSON.parse(row.tags as string),
      priority: row.priority as Priority | null,
      track_id: row.track_id as string | null,
      created_at: row.created_at as string,
      created_by: row.created_by as string,
      updated_at: row.updated_at as string,
      links: links ?? this.linksOf.all(row.id) as LinkRecord[],
      version: row.version as string
    }
  }
}
