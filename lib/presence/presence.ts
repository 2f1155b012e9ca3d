// Who is online now: ephemeral announcements on the replication connections,
// never written to a log. Each node announces its session every interval on a
// protomux channel beside the room channel, and relays what it hears once
// (newer seq only), so sessions reached through another peer are listed too.
// An entry lapses when no announcement refreshed it for `ttlMs`, at once when
// its node says goodbye, and when every connection that brought its latest
// announcement has closed (a still-reachable session comes back with its next one).
//
// A flood must not loop. In a full mesh each announcement reaches a node once per
// connection, so the copies of one seq arrive spread over time; a seq is accepted
// and relayed once, and remembered after its entry is gone (lapsed, said goodbye,
// its connections closed), so a late copy cannot bring it back and flood it again.
// Before that memory, 24-32 nodes in a full mesh melted down after 8 of them left:
// copies re-accepted after the leavers' connections closed were flooded again, the
// queues grew (~50,000 presence messages per node, stream round trips of 10-20 s),
// entries lapsed before their refresh arrived, late copies were flooded again, and
// the room's log replication, queued behind them on the same streams, stalled.
// Nor flood what needs no relay: an announcement lists the connections its origin
// sent it to (`reached`), and a relay skips them, so in a full mesh nobody relays
// and a room costs each node one message per peer per interval, not one per
// session per peer. Relays are sent in batches, one message per connection per
// short window, leaving out the connections that already brought the same seq.

import { EventEmitter } from 'node:events'
import Protomux, { type Channel, type Message } from 'protomux'
import c from 'compact-encoding'
import type { Logger } from '../logger.ts'
import {
  PRESENCE_PROTOCOL, MAX_REACHED, REACHED_KEY_HEX, encodePresence, decodePresence,
  type WireEntry, type WireGone
} from './wire.ts'

export const DEFAULT_PRESENCE_INTERVAL_MS = 5000
/** Entries not refreshed for this many intervals lapse. */
const INTERVALS_TO_EXPIRE = 3
/** Sessions this node remembers from others at most; beyond it, new ones are ignored until some lapse. */
const MAX_REMOTE_ENTRIES = 10_000
/** A session's latest seq is remembered this many intervals after its entry went, so late copies of it are not flooded again. */
const INTERVALS_TO_FORGET_SEQ = 30
/** Relays wait at most this long to share one message per connection (shorter with a short interval). */
const MAX_RELAY_DELAY_MS = 250
/** Entries per message: with their `reached` lists well under the receiver's size cap. */
const ENTRIES_PER_MESSAGE = 100

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
  /** Noise keys (secret-stream's): which connections an announcement reached. */
  readonly publicKey?: Buffer | null
  readonly remotePublicKey?: Buffer | null
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
  /** This node's relay key (hex) when it relays for peers that cannot punch through: announced with its sessions. */
  relayKey? (): string | null
  /** A session's node announced that it relays. */
  onRelay? (key: string): void
}

/** `via`: the connections that brought this seq (the entry lapses when all of them closed). */
interface Remote { entry: WireEntry, heardAt: number, via: Set<Link> }
/** The latest seq heard of a session, kept after its entry went, and when it was recorded. */
interface Seen { seq: number, at: number }

/** `key`: the remote's Noise key prefix as listed in `reached` (null if the stream has none). */
interface Link { stream: PresenceStream, key: string | null, mux: Protomux, channel: Channel | null, paired: boolean, onClose: () => void }

export interface Presence {
  on (event: 'change', listener: (entries: PresenceEntry[]) => void): this
}

export class Presence extends EventEmitter {
  private readonly host: PresenceHost
  private readonly intervalMs: number
  private readonly ttlMs: number
  private readonly startedAt = Date.now()
  private readonly remote = new Map<string, Remote>()
  private readonly seen = new Map<string, Seen>()
  private readonly links = new Set<Link>()
  private readonly timer: NodeJS.Timeout
  private readonly relayDelayMs: number
  private readonly relaying = { entries: new Map<string, WireEntry>(), gone: new Map<string, { gone: WireGone, from: Link }>() }
  private relayTimer: NodeJS.Timeout | null = null
  /** This node's Noise key prefix, from the first connection. */
  private selfKey: string | null = null
  private signature = ''
  private closed = false

  constructor (host: PresenceHost, opts: { intervalMs?: number } = {}) {
    super()
    this.host = host
    this.intervalMs = opts.intervalMs ?? DEFAULT_PRESENCE_INTERVAL_MS
    this.ttlMs = this.intervalMs * INTERVALS_TO_EXPIRE
    this.relayDelayMs = Math.min(MAX_RELAY_DELAY_MS, Math.ceil(this.intervalMs / 20))
    this.timer = setInterval(() => this.tick(), this.intervalMs)
    this.timer.unref()
  }

  /** A connection passed the room handshake: open the presence channel on its mux. */
  attach (stream: PresenceStream): void {
    if (this.closed) return
    const mux = Protomux.from(stream)
    this.selfKey ??= reachedKey(stream.publicKey)
    const link: Link = { stream, key: reachedKey(stream.remotePublicKey), mux, channel: null, paired: false, onClose: () => this.detach(link) }
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
    for (const [writer, r] of this.remote) {
      r.via.delete(link)
      if (r.via.size === 0) this.remote.delete(writer)
    }
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
    if (this.relayTimer !== null) clearTimeout(this.relayTimer)
    for (const link of [...this.links]) {
      link.stream.off('close', link.onClose)
      try { link.mux.unpair({ protocol: PRESENCE_PROTOCOL }) } catch {}
      try { link.channel?.close() } catch {}
    }
    this.links.clear()
    this.remote.clear()
    this.seen.clear()
  }

  /**
   * This node's sessions, as sent now to every paired connection (a new one's
   * included): a peer that holds an older seq still holds them, within ttl.
   */
  private own (): WireEntry[] {
    const seq = Date.now()
    let reached: string[] | undefined
    if (this.selfKey !== null) {
      reached = [this.selfKey]
      for (const link of this.links) if (link.paired && link.key !== null && reached.length < MAX_REACHED) reached.push(link.key)
    }
    const relay = this.host.relayKey?.() ?? null
    return this.host.localSessions().map(s => ({ ...s, node: this.host.nodeKey, since: this.startedAt, seq, ...(reached !== undefined ? { reached } : {}), ...(relay !== null ? { relay } : {}) }))
  }

  private announcements (): WireEntry[] {
    const own = this.own()
    // A newcomer learns everyone this node knows at once, not one interval later.
    const now = Date.now()
    const relayed = [...this.remote.values()].filter(r => now - r.heardAt < this.ttlMs).map(r => r.entry)
    return [...own, ...relayed]
  }

  private tick (): void {
    if (this.closed) return
    const now = Date.now()
    for (const [writer, r] of this.remote) if (now - r.heardAt >= this.ttlMs) this.remote.delete(writer)
    const forget = now - this.intervalMs * INTERVALS_TO_FORGET_SEQ
    for (const [writer, s] of this.seen) if (s.at < forget && !this.remote.has(writer)) this.seen.delete(writer)
    const own = this.own()
    for (const link of this.links) this.send(link, own, [])
    this.changed()
  }

  private send (link: Link, entries: WireEntry[], gone: WireGone[]): void {
    const channel = link.channel
    // Protomux marks a channel opened only after its onopen returns: `paired` is set inside it.
    if (channel === null || channel.closed || !link.paired) return
    const chunk = ENTRIES_PER_MESSAGE
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
      // Another copy of the seq held: this connection brought it too (and needs no relay of it).
      if (known !== undefined && known.entry.seq === entry.seq) known.via.add(from)
      if ((this.seen.get(entry.writer)?.seq ?? -1) >= entry.seq) continue
      if (known === undefined && this.remote.size >= MAX_REMOTE_ENTRIES) continue
      this.remote.set(entry.writer, { entry, heardAt: now, via: new Set([from]) })
      this.remember(entry.writer, entry.seq, now)
      fresh.push(entry)
    }
    for (const gone of decoded.message.gone) {
      const known = this.remote.get(gone.writer)
      if (known === undefined || known.entry.seq > gone.seq) continue
      this.remote.delete(gone.writer)
      this.remember(gone.writer, gone.seq, now)
      left.push(gone)
    }
    if (fresh.length === 0 && left.length === 0) return
    for (const entry of fresh) if (entry.relay !== undefined) this.host.onRelay?.(entry.relay)
    this.relay(from, fresh, left)
    this.changed()
  }

  private remember (writer: string, seq: number, now: number): void {
    this.seen.delete(writer)
    this.seen.set(writer, { seq, at: now })
    // Insertion order is recency: past the cap the longest-unheard go first.
    if (this.seen.size > MAX_REMOTE_ENTRIES) this.seen.delete(this.seen.keys().next().value as string)
  }

  /** Queued for one message per connection after a short wait: copies heard meanwhile tell which connections need none. */
  private relay (from: Link, fresh: WireEntry[], left: WireGone[]): void {
    for (const entry of fresh) this.relaying.entries.set(entry.writer, entry)
    for (const gone of left) {
      this.relaying.entries.delete(gone.writer)
      this.relaying.gone.set(gone.writer, { gone, from })
    }
    if (this.relayTimer !== null) return
    this.relayTimer = setTimeout(() => this.flushRelays(), this.relayDelayMs)
    this.relayTimer.unref()
  }

  private flushRelays (): void {
    this.relayTimer = null
    if (this.closed) return
    const entries = [...this.relaying.entries.values()]
    const gone = [...this.relaying.gone.values()]
    this.relaying.entries.clear()
    this.relaying.gone.clear()
    for (const link of this.links) {
      const out = entries.filter(e => {
        const held = this.remote.get(e.writer)
        return held !== undefined && held.entry.seq === e.seq && !held.via.has(link) && (link.key === null || e.reached?.includes(link.key) !== true)
      })
      const left = gone.filter(g => g.from !== link).map(g => g.gone)
      if (out.length > 0 || left.length > 0) this.send(link, out, left)
    }
  }
}

function reachedKey (key: Buffer | null | undefined): string | null {
  return Buffer.isBuffer(key) ? key.toString('hex', 0, REACHED_KEY_HEX / 2) : null
}
