// The work-item API of the seed: builders that create, models that save only
// what changed, and collections to get, list and delete. Every save turns into
// one append (one block), so its events are atomic and travel together.

import { CrosscastError } from '../errors.ts'
import type { BroadcastEvent, EventDraft, LinkType, Priority, ResourceType, Status } from '../events/types.ts'
import { validateId, validateStatus, resourceTypeOf } from '../events/validate.ts'
import type { StateReader, FeatureRecord, TrackRecord, SpikeRecord, LinkRecord, CommentRecord } from './state.ts'

export interface Writer {
  readonly sessionId: string
  readonly agent: string
  readonly state: StateReader
  append (drafts: EventDraft[]): Promise<BroadcastEvent[]>
  /** A generated id for a new item of this type (see newResourceId). */
  newId (type: ResourceType): string
}

function notFound (kind: string, id: string): CrosscastError {
  return new CrosscastError('NOT_FOUND', `${kind} ${id} does not exist (or was deleted)`, { field: 'id' })
}

export interface SaveOptions {
  /**
   * Write only if the item's version is still this one (the `version` it was
   * read with); otherwise reject with CONFLICT carrying the current item.
   */
  ifVersion?: string
}

/**
 * Checks the version and starts the append in one synchronous step, so no
 * projected event can slip in between; conditional writes to one item from
 * this node run one after another.
 */
async function appendIfVersion (writer: Writer, id: string, ifVersion: string | undefined, current: () => unknown, drafts: () => EventDraft[]): Promise<BroadcastEvent[]> {
  if (ifVersion === undefined) return await writer.append(drafts())
  if (typeof ifVersion !== 'string' || ifVersion.length === 0) throw new CrosscastError('INVALID_FIELD', `ifVersion must be a version string (an item's \`version\`), got ${JSON.stringify(ifVersion)}`, { field: 'ifVersion' })
  return await writer.state.serialize(id, async () => {
    const now = writer.state.version(id)
    if (now === null) throw notFound(resourceTypeOf(id), id)
    if (now !== ifVersion) throw conflict(id, ifVersion, now, current())
    return await writer.append(drafts())
  })
}

export function conflict (id: string, expected: string, actual: string, current: unknown): CrosscastError {
  return new CrosscastError('CONFLICT', `${id} changed since version ${expected}: it is now at version ${actual}; re-read it (the current item is attached) and retry`, { field: 'ifVersion', current })
}

function commentDraft (writer: Writer, resourceId: string, text: string, author?: string): EventDraft {
  return { event_type: 'comment_added', resource_id: resourceId, payload: { comment_text: text, author: author ?? writer.agent } }
}

export class Feature {
  readonly id: string
  title: string
  status: Status
  description: string | null
  tags: string[]
  priority: Priority | null
  trackId: string | null
  readonly createdAt: string
  readonly createdBy: string
  updatedAt: string
  links: LinkRecord[]
  /** The id of the last event applied to this feature when it was read or saved (see save({ ifVersion })). */
  version: string
  /** The events the last save() wrote. */
  lastEvents: BroadcastEvent[] = []
  private saved: FeatureRecord
  private pendingLinks: Array<{ linked_feature_id: string, link_type: LinkType }> = []
  private readonly writer: Writer

  constructor (writer: Writer, record: FeatureRecord) {
    this.writer = writer
    this.id = record.id
    this.title = record.title
    this.status = record.status
    this.description = record.description
    this.tags = [...record.tags]
    this.priority = record.priority
    this.trackId = record.track_id
    this.createdAt = record.created_at
    this.createdBy = record.created_by
    this.updatedAt = record.updated_at
    this.links = record.links
    this.version = record.version
    this.saved = record
  }

  blocks (featureId: string): this {
    return this.link(featureId, 'blocks')
  }

  blockedBy (featureId: string): this {
    return this.link(featureId, 'depends_on')
  }

  relatedTo (featureId: string): this {
    return this.link(featureId, 'related')
  }

  link (featureId: string, type: LinkType): this {
    this.pendingLinks.push({ linked_feature_id: validateId(featureId, 'linked_feature_id', 'feature'), link_type: type })
    return this
  }

  /**
   * Writes what changed since the last save: feature_updated, status_changed
   * when the status moved, and queued links, in one block. With `ifVersion`,
   * only if nothing changed the feature since that version (else CONFLICT).
   */
  async save (opts: SaveOptions = {}): Promise<this> {
    const changes: Record<string, unknown> = {}
    if (this.title !== this.saved.title) changes.title = this.title
    if (this.status !== this.saved.status) changes.status = this.status
    if (this.description !== this.saved.description && this.description !== null) changes.description = this.description
    if (JSON.stringify(this.tags) !== JSON.stringify(this.saved.tags)) changes.tags = this.tags
    if (this.priority !== this.saved.priority && this.priority !== null) changes.priority = this.priority
    if (this.trackId !== this.saved.track_id && this.trackId !== null) changes.track_id = this.trackId
    const drafts: EventDraft[] = []
    if (Object.keys(changes).length > 0) drafts.push({ event_type: 'feature_updated', resource_id: this.id, payload: changes })
    if (changes.status !== undefined) {
      drafts.push({ event_type: 'status_changed', resource_id: this.id, payload: { old_status: this.saved.status, new_status: validateStatus(this.status, 'status') } })
    }
    for (const link of this.pendingLinks) drafts.push({ event_type: 'link_added', resource_id: this.id, payload: link })
    if (drafts.length === 0) {
      this.lastEvents = []
      return this
    }
    this.lastEvents = await appendIfVersion(this.writer, this.id, opts.ifVersion, () => this.writer.state.feature(this.id), () => drafts)
    this.pendingLinks = []
    this.refresh()
    return this
  }

  async comment (text: string, opts: { author?: string } = {}): Promise<BroadcastEvent> {
    const [event] = await this.writer.append([commentDraft(this.writer, this.id, text, opts.author)])
    return event
  }

  comments (): CommentRecord[] {
    return this.writer.state.comments(this.id)
  }

  /** Reloads from the projection (another session may have changed it). */
  refresh (): this {
    const record = this.writer.state.feature(this.id)
    if (record === null) return this
    this.saved = record
    this.title = record.title
    this.status = record.status
    this.description = record.description
    this.tags = [...record.tags]
    this.priority = record.priority
    this.trackId = record.track_id
    this.updatedAt = record.updated_at
    this.links = record.links
    this.version = record.version
    return this
  }

  toJSON (): FeatureRecord {
    return { id: this.id, title: this.title, status: this.status, description: this.description, tags: this.tags, priority: this.priority, track_id: this.trackId, created_at: this.createdAt, created_by: this.createdBy, updated_at: this.updatedAt, links: this.links, version: this.version }
  }
}

export class FeatureBuilder {
  private readonly writer: Writer
  private readonly payload: Record<string, unknown>
  private readonly links: Array<{ linked_feature_id: string, link_type: LinkType }> = []
  readonly id: string
  /** The id was generated here rather than chosen: no other event can be on it. */
  private readonly generated: boolean

  constructor (writer: Writer, title: string, id?: string) {
    this.writer = writer
    this.generated = id === undefined
    this.id = id === undefined ? writer.newId('feature') : validateId(id, 'id', 'feature')
    this.payload = { title, status: 'todo' }
  }

  setStatus (status: Status): this { this.payload.status = validateStatus(status); return this }
  setDescription (description: string): this { this.payload.description = description; return this }
  setTrack (trackId: string): this { this.payload.track_id = validateId(trackId, 'track_id', 'track'); return this }
  setTags (tags: string[]): this { this.payload.tags = tags; return this }
  setPriority (priority: Priority): this { this.payload.priority = priority; return this }
  blocks (featureId: string): this { this.links.push({ linked_feature_id: validateId(featureId, 'linked_feature_id', 'feature'), link_type: 'blocks' }); return this }
  blockedBy (featureId: string): this { this.links.push({ linked_feature_id: validateId(featureId, 'linked_feature_id', 'feature'), link_type: 'depends_on' }); return this }

  /** Writes feature_created (and any queued links) in one block; resolves with the stored feature. */
  async save (): Promise<Feature> {
    const drafts: EventDraft[] = [{ event_type: 'feature_created', resource_id: this.id, payload: this.payload as never }]
    for (const link of this.links) drafts.push({ event_type: 'link_added', resource_id: this.id, payload: link })
    const events = await this.writer.append(drafts)
    // A generated id has no events but these (ids are unique, see newResourceId), so the
    // stored feature is what they wrote and is not read back; a chosen id may have
    // others (another session created it too), so its merged state is read. Not
    // projected only when the node closed first (cursor 0): the write is durable, so it is reported as written.
    const record = this.generated || events[0].cursor === 0 ? this.written(events) : this.writer.state.feature(this.id)
    if (record === null) throw new CrosscastError('INTERNAL', `feature ${this.id} was written but is not in the projection`)
    const feature = new Feature(this.writer, record)
    feature.lastEvents = events
    return feature
  }

  /** The feature as these events (its feature_created and links) set it, as the projection stores it. */
  private written (events: BroadcastEvent[]): FeatureRecord {
    const p = events[0].payload as { title: string, status: Status, description?: string, tags?: string[], priority?: Priority, track_id?: string }
    const links: LinkRecord[] = events.slice(1).map(e => ({ ...(e.payload as { linked_feature_id: string, link_type: LinkType }), event_id: e.event_id, agent_id: e.agent_id, created_at: e.timestamp }))
    return { id: this.id, title: p.title, status: p.status, description: p.description ?? null, tags: p.tags ?? [], priority: p.priority ?? null, track_id: p.track_id ?? null, created_at: events[0].timestamp, created_by: events[0].agent_id, updated_at: events[0].timestamp, links, version: events[events.length - 1].event_id }
  }
}

export class FeatureCollection {
  private readonly writer: Writer
  constructor (writer: Writer) { this.writer = writer }

  /** Starts a new feature; pass `id` to choose it (feat- and a label, e.g. feat-123; otherwise one is generated, see newResourceId). */
  create (title: string, opts: { id?: string } = {}): FeatureBuilder {
    return new FeatureBuilder(this.writer, title, opts.id)
  }

  async get (id: string): Promise<Feature | null> {
    const record = this.writer.state.feature(validateId(id, 'id', 'feature'))
    return record === null ? null : new Feature(this.writer, record)
  }

  /** Oldest first; pass `limit` and the last id of a page as `after` to page through many. */
  async list (query: { status?: Status, track?: string, limit?: number, after?: string } = {}): Promise<Feature[]> {
    return this.writer.state.features(query).map(record => new Feature(this.writer, record))
  }

  async delete (id: string): Promise<BroadcastEvent> {
    validateId(id, 'id', 'feature')
    if (this.writer.state.feature(id) === null) throw notFound('feature', id)
    const [event] = await this.writer.append([{ event_type: 'feature_deleted', resource_id: id, payload: { feature_id: id } }])
    return event
  }
}

/** Tracks and spikes share one shape: a title and one text field, upserted whole or in part. */
abstract class Item<R extends { id: string, title: string | null, created_at: string, created_by: string, updated_at: string, version: string }> {
  readonly id: string
  title: string | null
  /** The id of the last event applied to this item when it was read or saved (see save({ ifVersion })). */
  version: string
  lastEvents: BroadcastEvent[] = []
  protected saved: R
  protected readonly writer: Writer

  constructor (writer: Writer, record: R) {
    this.writer = writer
    this.id = record.id
    this.title = record.title
    this.version = record.version
    this.saved = record
  }

  protected abstract changes (): Record<string, unknown>
  protected abstract reload (): R | null
  protected abstract readonly eventType: 'track_updated' | 'spike_updated'

  /** Writes what changed since the last save; with `ifVersion`, only if nothing changed the item since that version (else CONFLICT). */
  async save (opts: SaveOptions = {}): Promise<this> {
    const changes = this.changes()
    if (Object.keys(changes).length === 0) {
      this.lastEvents = []
      return this
    }
    this.lastEvents = await appendIfVersion(this.writer, this.id, opts.ifVersion, () => this.reload(), () => [{ event_type: this.eventType, resource_id: this.id, payload: changes as never }])
    this.saved = this.reload() ?? this.saved
    this.version = this.saved.version
    return this
  }

  async comment (text: string, opts: { author?: string } = {}): Promise<BroadcastEvent> {
    const [event] = await this.writer.append([commentDraft(this.writer, this.id, text, opts.author)])
    return event
  }

  comments (): CommentRecord[] {
    return this.writer.state.comments(this.id)
  }
}

export class Track extends Item<TrackRecord> {
  description: string | null
  protected readonly eventType = 'track_updated' as const
  constructor (writer: Writer, record: TrackRecord) {
    super(writer, record)
    this.description = record.description
  }

  protected changes (): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    if (this.title !== this.saved.title && this.title !== null) out.title = this.title
    if (this.description !== this.saved.description && this.description !== null) out.description = this.description
    return out
  }

  protected reload (): TrackRecord | null { return this.writer.state.track(this.id) }
  toJSON (): TrackRecord { return { ...this.saved, title: this.title, description: this.description, version: this.version } }
}

export class Spike extends Item<SpikeRecord> {
  findings: string | null
  protected readonly eventType = 'spike_updated' as const
  constructor (writer: Writer, record: SpikeRecord) {
    super(writer, record)
    this.findings = record.findings
  }

  protected changes (): Record<string, unknown> {
    const out: Record<string, unknown> = {}
    if (this.title !== this.saved.title && this.title !== null) out.title = this.title
    if (this.findings !== this.saved.findings && this.findings !== null) out.findings = this.findings
    return out
  }

  protected reload (): SpikeRecord | null { return this.writer.state.spike(this.id) }
  toJSON (): SpikeRecord { return { ...this.saved, title: this.title, findings: this.findings, version: this.version } }
}

abstract class ItemBuilder<T> {
  readonly id: string
  protected readonly payload: Record<string, unknown>
  protected readonly writer: Writer
  private readonly eventType: 'track_updated' | 'spike_updated'
  private readonly load: (id: string) => T | null

  constructor (writer: Writer, eventType: 'track_updated' | 'spike_updated', id: string, title: string, load: (id: string) => T | null) {
    this.writer = writer
    this.eventType = eventType
    this.id = id
    this.payload = { title }
    this.load = load
  }

  async save (): Promise<T> {
    const events = await this.writer.append([{ event_type: this.eventType, resource_id: this.id, payload: this.payload as never }])
    // Not projected only when the node closed first (cursor 0): the write is durable, so it is reported as written.
    const item = this.load(this.id) ?? (events[0].cursor === 0 ? this.written(events[0]) : null)
    if (item === null) throw new CrosscastError('INTERNAL', `${this.id} was written but is not in the projection`)
    ;(item as { lastEvents: BroadcastEvent[] }).lastEvents = events
    return item
  }

  protected abstract written (event: BroadcastEvent): T
}

export class TrackBuilder extends ItemBuilder<Track> {
  setDescription (description: string): this { this.payload.description = description; return this }
  protected written (e: BroadcastEvent): Track {
    return new Track(this.writer, { id: this.id, title: this.payload.title as string, description: (this.payload.description as string | undefined) ?? null, created_at: e.timestamp, created_by: e.agent_id, updated_at: e.timestamp, version: e.event_id })
  }
}

export class SpikeBuilder extends ItemBuilder<Spike> {
  setFindings (findings: string): this { this.payload.findings = findings; return this }
  protected written (e: BroadcastEvent): Spike {
    return new Spike(this.writer, { id: this.id, title: this.payload.title as string, findings: (this.payload.findings as string | undefined) ?? null, created_at: e.timestamp, created_by: e.agent_id, updated_at: e.timestamp, version: e.event_id })
  }
}

/** Tracks and spikes: create (upsert), get and list, over one item class. */
class ItemCollection<T, B extends ItemBuilder<T>> {
  private readonly writer: Writer
  private readonly type: 'track' | 'spike'
  private readonly read: (state: StateReader, id: string) => T | null
  private readonly readAll: (state: StateReader) => T[]
  private readonly builder: (writer: Writer, id: string, title: string, load: (id: string) => T | null) => B

  constructor (writer: Writer, type: 'track' | 'spike', read: (state: StateReader, id: string) => T | null, readAll: (state: StateReader) => T[], builder: (writer: Writer, id: string, title: string, load: (id: string) => T | null) => B) {
    this.writer = writer
    this.type = type
    this.read = read
    this.readAll = readAll
    this.builder = builder
  }

  /** Starts a new item; pass `id` to choose it (trk-/spk- and a label, e.g. trk-123), or to upsert an existing one. */
  create (title: string, opts: { id?: string } = {}): B {
    const id = opts.id === undefined ? this.writer.newId(this.type) : validateId(opts.id, 'id', this.type)
    return this.builder(this.writer, id, title, (i) => this.read(this.writer.state, i))
  }

  async get (id: string): Promise<T | null> {
    return this.read(this.writer.state, validateId(id, 'id', this.type))
  }

  async list (): Promise<T[]> {
    return this.readAll(this.writer.state)
  }
}

export class TrackCollection extends ItemCollection<Track, TrackBuilder> {
  constructor (writer: Writer) {
    super(writer, 'track',
      (state, id) => { const r = state.track(id); return r === null ? null : new Track(writer, r) },
      (state) => state.tracks().map(r => new Track(writer, r)),
      (w, id, title, load) => new TrackBuilder(w, 'track_updated', id, title, load))
  }
}

export class SpikeCollection extends ItemCollection<Spike, SpikeBuilder> {
  constructor (writer: Writer) {
    super(writer, 'spike',
      (state, id) => { const r = state.spike(id); return r === null ? null : new Spike(writer, r) },
      (state) => state.spikes().map(r => new Spike(writer, r)),
      (w, id, title, load) => new SpikeBuilder(w, 'spike_updated', id, title, load))
  }
}
