// Who is online now: ephemeral announcements on the replication connections,
// never written to a log. Each node announces its session every interval on a
// protomux channel beside the room channel, and relays what it hears once
// (newer seq only), so sessions reached through another peer are listed too.
// An entry lapses when no announcement refreshed it for `ttlMs`, at once when
// its node says goodbye, and when the connection it came through closes (a
// still-reachable session comes back with its next announcement).

import { EventEmitter } from 'node:events'
import Protomux, { type Channel, type Message } from 'protomux'
import c from 'compact-encoding'
import type { Logger } from '../logger.ts'
import {
  PRESENCE_PROTOCOL, MAX_ENTRIES_PER_MESSAGE, encodePresence, decodePresence,
  type WireEntry, type WireGone
} from './wire.ts'

export const DEFAULT_PRESENCE_INTERVAL_MS = 5000
/** Entries not refreshed for this many intervals lapse. */
const INTERVALS_TO_EXPIRE = 3
/** Sessions this node remembers from others at most; beyond it, new ones are ignored until some lapse. */
const MAX_REMOTE_ENTRIES = 10_000

export interface PresenceEntry {
  agent_id: string
  session_id: string
  writer: string
  node: string
  /** When the session came online (ISO 8601, its node's clock). */
  since: string
  /** When this node last heard from it (ISO 8601, this node's clock). */
  last_seen: string
  /** Items the session holds a live claim on, as this node knows them. */
  claims: string[]
  /** One of this node's own sessions. */
  self: boolean
}

/** The part of a connection presence uses: a Noise stream that passed the room handshake. */
export interface PresenceStream {
  on (event: 'close', listener: () => void): unknown
  off (event: 'close', listener: () => void): unknown
}

export interface PresenceHost {
  /** This node's sessions that are online (writer keys are their identity). */
  localSessions (): Array<{ agent_id: string, session_id: string, writer: string }>
  /** The node's identity: its own session's writer key. */
  readonly nodeKey: string
  /** Live claims by holder writer key. */
  claimsByWriter (): Map<string, string[]>
  readonly logger: Logger
}

interface Remote { entry: WireEntry, heardAt: number, via: Link | null }

interface Link { stream: PresenceStream, mux: Protomux, channel: Channel | null, paired: boolean, onClose: () => void }

export interface Presence {
  on (event: 'change', listener: (entries: PresenceEntry[]) => void): this
}

export class Presence extends EventEmitter {
  private readonly host: PresenceHost
  private readonly intervalMs: number
  private readonly ttlMs: number
  private readonly startedAt = Date.now()
  private readonly remote = new Map<string, Remote>()
  private readonly links = new Set<Link>()
  private readonly timer: NodeJS.Timeout
  private signature = ''
  private closed = false

  constructor (host: PresenceHost, opts: { intervalMs?: number } = {}) {
    super()
    this.host = host
    this.intervalMs = opts.intervalMs ?? DEFAULT_PRESENCE_INTERVAL_MS
    this.ttlMs = this.intervalMs * INTERVALS_TO_EXPIRE
    this.timer = setInterval(() => this.tick(), this.intervalMs)
    this.timer.unref()
  }

  /** A connection passed the room handshake: open the presence channel on its mux. */
  attach (stream: PresenceStream): void {
    if (this.closed) return
    const mux = Protomux.from(stream)
    const link: Link = { stream, mux, channel: null, paired: false, onClose: () => this.detach(link) }
    this.links.add(link)
    stream.on('close', link.onClose)
    // The other side opens its channel once it has authenticated us, which may be after we opened ours
    // (and it refused it): accepting its open here pairs the two whenever they come.
    mux.pair({ protocol: PRESENCE_PROTOCOL }, () => { this.open(link) })
    this.open(link)
  }

  private open (link: Link): void {
    if (this.closed || !this.links.has(link) || (link.channel !== null && !link.channel.closed)) return
    const channel = link.mux.createChannel({
      protocol: PRESENCE_PROTOCOL,
      unique: true,
      messages: [{ encoding: c.raw, onmessage: (buf: Buffer) => this.onMessage(link, buf) }],
      onopen: () => {
        link.paired = true
        this.send(link, this.announcements(), [])
      },
      onclose: () => {
        if (link.channel !== channel) return
        link.channel = null
        link.paired = false
      }
    })
    if (channel === null) return
    link.channel = channel
    channel.open()
  }

  private detach (link: Link): void {
    if (!this.links.delete(link)) return
    link.stream.off('close', link.onClose)
    try { link.mux.unpair({ protocol: PRESENCE_PROTOCOL }) } catch {}
    for (const [writer, r] of this.remote) if (r.via === link) this.remote.delete(writer)
    this.changed()
  }

  /** Sessions online now: this node's own first, then the others by agent and session. */
  entries (): PresenceEntry[] {
    const now = Date.now()
    const claims = this.host.claimsByWriter()
    const out: PresenceEntry[] = this.host.localSessions().map(s => ({
      ...s,
      node: this.host.nodeKey,
      since: new Date(this.startedAt).toISOString(),
      last_seen: new Date(now).toISOString(),
      claims: claims.get(s.writer) ?? [],
      self: true
    }))
    const others = [...this.remote.values()]
      .filter(r => now - r.heardAt < this.ttlMs)
      .sort((a, b) => a.entry.agent_id.localeCompare(b.entry.agent_id) || a.entry.session_id.localeCompare(b.entry.session_id) || a.entry.writer.localeCompare(b.entry.writer))
    for (const { entry, heardAt } of others) {
      out.push({
        agent_id: entry.agent_id,
        session_id: entry.session_id,
        writer: entry.writer,
        node: entry.node,
        since: new Date(entry.since).toISOString(),
        last_seen: new Date(heardAt).toISOString(),
        claims: claims.get(entry.writer) ?? [],
        self: false
      })
    }
    return out
  }

  /** Something presence shows may have changed (a claim, say): tell listeners if it did. */
  changed (): void {
    if (this.closed) return
    const entries = this.entries()
    const signature = JSON.stringify(entries.map(e => [e.writer, e.claims]))
    if (signature === this.signature) return
    this.signature = signature
    this.emit('change', entries)
  }

  /** Says goodbye on every connection (so peers drop this node's sessions at once) and stops. */
  close (): void {
    if (this.closed) return
    const seq = Date.now()
    const gone = this.host.localSessions().map(s => ({ writer: s.writer, seq }))
    for (const link of this.links) this.send(link, [], gone)
    this.closed = true
    clearInterval(this.timer)
    for (const link of [...this.links]) {
      link.stream.off('close', link.onClose)
      try { link.mux.unpair({ protocol: PRESENCE_PROTOCOL }) } catch {}
      try { link.channel?.close() } catch {}
    }
    this.links.clear()
    this.remote.clear()
  }

  private announcements (): WireEntry[] {
    const seq = Date.now()
    const own = this.host.localSessions().map(s => ({ ...s, node: this.host.nodeKey, since: this.startedAt, seq }))
    // A newcomer learns everyone this node knows at once, not one interval later.
    const now = Date.now()
    const relayed = [...this.remote.values()].filter(r => now - r.heardAt < this.ttlMs).map(r => r.entry)
    return [...own, ...relayed]
  }

  private tick (): void {
    if (this.closed) return
    const now = Date.now()
    for (const [writer, r] of this.remote) if (now - r.heardAt >= this.ttlMs) this.remote.delete(writer)
    const seq = now
    const own = this.host.localSessions().map(s => ({ ...s, node: this.host.nodeKey, since: this.startedAt, seq }))
    for (const link of this.links) this.send(link, own, [])
    this.changed()
  }

  private send (link: Link, entries: WireEntry[], gone: WireGone[]): void {
    const channel = link.channel
    // Protomux marks a channel opened only after its onopen returns: `paired` is set inside it.
    if (channel === null || channel.closed || !link.paired) return
    const chunk = MAX_ENTRIES_PER_MESSAGE / 2
    for (let i = 0; i < entries.length || i < gone.length; i += chunk) {
      (channel.messages[0] as Message<Buffer>).send(encodePresence({ entries: entries.slice(i, i + chunk), gone: gone.slice(i, i + chunk) }))
    }
  }

  private onMessage (from: Link, buf: Buffer): void {
    if (this.closed) return
    let decoded
    try {
      decoded = decodePresence(buf)
    } catch (err) {
      this.host.logger.warn({ err: (err as Error).message }, 'ignored an undecodable presence message')
      return
    }
    if (decoded.invalid > 0) this.host.logger.warn({ invalid: decoded.invalid }, 'ignored invalid presence entries')
    const own = new Set(this.host.localSessions().map(s => s.writer))
    const now = Date.now()
    const fresh: WireEntry[] = []
    const left: WireGone[] = []
    for (const entry of decoded.message.entries) {
      if (own.has(entry.writer)) continue
      const known = this.remote.get(entry.writer)
      if (known !== undefined && known.entry.seq >= entry.seq) continue
      if (known === undefined && this.remote.size >= MAX_REMOTE_ENTRIES) continue
      this.remote.set(entry.writer, { entry, heardAt: now, via: from })
      fresh.push(entry)
    }
    for (const gone of decoded.message.gone) {
      const known = this.remote.get(gone.writer)
      if (known === undefined || known.entry.seq > gone.seq) continue
      this.remote.delete(gone.writer)
      left.push(gone)
    }
    if (fresh.length === 0 && left.length === 0) return
    for (const link of this.links) if (link !== from) this.send(link, fresh, left)
    this.changed()
  }
}
