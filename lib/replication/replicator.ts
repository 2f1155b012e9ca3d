// Runs the room protocol on every peer connection: prove the room secret (a MAC
// bound to this Noise session), and only then replicate the corestore and
// exchange writer keys, gossiping newly learnt keys on to every other peer.
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import c from 'compact-encoding'
import Protomux from 'protomux'
import type { Channel, Message } from 'protomux'
import type Corestore from 'corestore'
import { CrosscastError } from '../errors.ts'
import { silentLogger, type Logger } from '../logger.ts'
import {
  ROOM_PROTOCOL, MAC_BYTES, WRITERS_PER_MESSAGE, MAX_WRITERS_PER_MESSAGE, FEATURE_LENGTHS, OUR_FEATURES,
  connectionMac, macEquals, encodeWriters, decodeWriters, featuresEncoding, isValidWriterInfo,
  type WriterInfo
} from './wire.ts'

export type { WriterInfo } from './wire.ts'
export { ROOM_PROTOCOL, MAX_WRITERS_PER_MESSAGE } from './wire.ts'

// Short enough that a half-open stream (seen across processes in some sandboxes: one side
// never gets it) is dropped and redialled quickly; a real peer sends its MAC at once.
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000
// A live peer answers our proof within a round trip. A stream that has received nothing
// by then is most likely half-open (hyperdht 6.33-6.34 left same-host clients holding a
// stream the server had destroyed, upstream hyperdht#304); Hyperswarm keeps such a stream
// and refuses every working redial as a duplicate, so we drop it long before the handshake
// timeout and let Hyperswarm dial again.
export const DEFAULT_SILENT_TIMEOUT_MS = 1_000
// A rejected peer that does not end its side of the stream is cut off after this.
const REJECTED_LINGER_MS = 1_000

export type { Logger } from '../logger.ts'

/** The part of a Noise secret stream the room protocol relies on. */
export interface RoomStream {
  readonly isInitiator: boolean
  readonly handshakeHash: Buffer | null
  readonly remotePublicKey: Buffer | null
  readonly opened: Promise<boolean>
  readonly destroying?: boolean
  readonly destroyed: boolean
  end? (): void
  /** Encrypted bytes received after the Noise handshake (secret-stream counts them). */
  readonly rawBytesRead?: number
  destroy (err?: Error | null): void
  on (event: string, listener: (...args: any[]) => void): unknown
  off (event: string, listener: (...args: any[]) => void): unknown
}

/** Structurally a lib/net PeerConnection; only these fields are read. */
export interface RoomConnection {
  stream: RoomStream
  remotePublicKey: Buffer | null
}

export interface WriterDirectory {
  /** The node's corestore: replicated on a stream once the peer is authenticated. */
  store: Corestore
  /** Every writer this node knows (own and remote), with the length of its log held here when known. */
  listWriters (): WriterInfo[]
  /** true when the writer was new (and is now persisted and downloading); false if known or refused. */
  addWriter (info: WriterInfo): Promise<boolean>
  /** A whole gossip message at once (persisted in one write, opened in parallel); returns the new ones. Preferred over addWriter when present. */
  addWriters? (infos: WriterInfo[]): Promise<WriterInfo[]>
}

export interface RoomReplicatorOptions {
  directory: WriterDirectory
  authKey: Buffer
  logger?: Logger
  handshakeTimeoutMs?: number
  /** Drop a connection that received nothing this long after our proof (default 1 s). */
  silentTimeoutMs?: number
}

export interface RoomPeer<C extends RoomConnection = RoomConnection> {
  readonly conn: C
  readonly authenticated: boolean
}

interface PeerState<C extends RoomConnection> {
  conn: C
  keyHex: string | null
  entry: { conn: C, authenticated: boolean } | null
  channel: Channel | null
  mux: Protomux | null
  timer: NodeJS.Timeout | null
  silentTimer: NodeJS.Timeout | null
  /** The remote opened its side of the room channel: the stream carries its bytes. */
  heard: boolean
  /** The remote's feature bits from its open message (0: an older peer). */
  features: number
  authenticated: boolean
  done: boolean
  learning: Promise<void>
  onClose: () => void
  onError: (err: Error) => void
}

export interface RoomReplicator<C extends RoomConnection = RoomConnection> {
  on (event: 'authenticated', listener: (conn: C) => void): this
  on (event: 'rejected', listener: (conn: C, reason: string) => void): this
  on (event: 'writer', listener: (info: WriterInfo, fromRemoteKeyHex: string) => void): this
  on (event: 'silent', listener: (conn: C) => void): this
  once (event: 'authenticated', listener: (conn: C) => void): this
  once (event: 'rejected', listener: (conn: C, reason: string) => void): this
  once (event: 'writer', listener: (info: WriterInfo, fromRemoteKeyHex: string) => void): this
}

export class RoomReplicator<C extends RoomConnection = RoomConnection> extends EventEmitter {
  readonly #directory: WriterDirectory
  readonly #authKey: Buffer
  readonly #logger: Logger
  readonly #handshakeTimeoutMs: number
  readonly #silentTimeoutMs: number
  readonly #states = new Set<PeerState<C>>()
  readonly #peers = new Map<string, { conn: C, authenticated: boolean }>()
  #closing: Promise<void> | null = null

  constructor (opts: RoomReplicatorOptions) {
    super()
    if (opts === null || typeof opts !== 'object' || opts.directory === null || typeof opts.directory !== 'object') {
      throw new CrosscastError('INVALID_OPTION', 'directory is required', { field: 'directory' })
    }
    if (!Buffer.isBuffer(opts.authKey) || opts.authKey.byteLength !== 32) {
      throw new CrosscastError('INVALID_OPTION', 'authKey must be a 32-byte Buffer (from deriveRoom)', { field: 'authKey' })
    }
    const timeout = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS
    if (!Number.isFinite(timeout) || timeout <= 0) {
      throw new CrosscastError('INVALID_OPTION', 'handshakeTimeoutMs must be a positive number', { field: 'handshakeTimeoutMs' })
    }
    const silent = opts.silentTimeoutMs ?? DEFAULT_SILENT_TIMEOUT_MS
    if (!Number.isFinite(silent) || silent <= 0) {
      throw new CrosscastError('INVALID_OPTION', 'silentTimeoutMs must be a positive number', { field: 'silentTimeoutMs' })
    }
    this.#directory = opts.directory
    this.#authKey = opts.authKey
    this.#logger = opts.logger ?? silentLogger
    this.#handshakeTimeoutMs = timeout
    this.#silentTimeoutMs = silent
  }

  /** Keyed by remote public key (hex). A peer is listed from attach until its stream closes. */
  get peers (): ReadonlyMap<string, RoomPeer<C>> {
    return this.#peers
  }

  get closed (): boolean {
    return this.#closing !== null
  }

  attach (conn: C): void {
    const stream = conn.stream
    if (this.#closing !== null) {
      this.#logger.debug({ remote: hexOf(conn.remotePublicKey) }, 'room replicator closed: dropping new connection')
      stream.destroy()
      return
    }
    if (stream.destroying === true || stream.destroyed) return

    const peer: PeerState<C> = {
      conn,
      keyHex: null,
      entry: null,
      channel: null,
      mux: null,
      timer: null,
      silentTimer: null,
      heard: false,
      features: 0,
      authenticated: false,
      done: false,
      learning: Promise.resolve(),
      onClose: () => this.#forget(peer),
      onError: (err: Error) => this.#logger.debug({ remote: peer.keyHex, err: err?.message }, 'peer stream error')
    }
    this.#states.add(peer)
    this.#list(peer, conn.remotePublicKey ?? stream.remotePublicKey)

    stream.on('error', peer.onError)
    stream.on('close', peer.onClose)

    peer.timer = setTimeout(() => {
      peer.timer = null
      this.#reject(peer, `no valid room auth within ${this.#handshakeTimeoutMs} ms`)
    }, this.#handshakeTimeoutMs)

    let mux: Protomux
    try {
      mux = Protomux.from(stream)
    } catch (err) {
      this.#drop(peer, 'could not multiplex the stream', err)
      return
    }
    peer.mux = mux
    // The remote may open the channel before our side of the handshake
    // resolves; pairing accepts it instead of letting protomux reject it.
    mux.pair({ protocol: ROOM_PROTOCOL }, () => { this.#openChannel(peer) })

    if (stream.handshakeHash !== null) {
      this.#openChannel(peer)
    } else {
      stream.opened.then((opened) => {
        if (opened) this.#openChannel(peer)
      }, () => {})
    }
  }

  /** A writer became known locally: tell every authenticated peer. */
  announce (info: WriterInfo): void {
    if (!isValidWriterInfo(info)) {
      throw new CrosscastError('INVALID_FIELD', 'writer info needs a 32-byte key and label sessionId / agentId', { field: 'writer' })
    }
    if (this.#closing !== null) return
    for (const peer of this.#states) {
      if (peer.authenticated && !peer.done) this.#sendWriters(peer, [info])
    }
  }

  /**
   * Logs this node holds more of (it appended or downloaded): tell the peers
   * that understand lengths, so one that closed the log opens it again. Older
   * peers keep every log open and need no telling.
   */
  announceLengths (infos: readonly WriterInfo[]): void {
    if (this.#closing !== null || infos.length === 0) return
    const valid = infos.filter(isValidWriterInfo)
    for (const peer of this.#states) {
      if (peer.authenticated && !peer.done && (peer.features & FEATURE_LENGTHS) !== 0) this.#sendWriters(peer, valid)
    }
  }

  close (): Promise<void> {
    if (this.#closing !== null) return this.#closing
    this.#closing = this.#close()
    return this.#closing
  }

  async #close (): Promise<void> {
    const learning: Array<Promise<void>> = []
    for (const peer of [...this.#states]) {
      learning.push(peer.learning)
      const channel = peer.channel
      this.#forget(peer)
      // Streams belong to discovery; only our channel on them ends here.
      if (channel !== null && !channel.closed) {
        try { channel.close() } catch {}
      }
    }
    // addWriter calls already under way finish before close resolves, so
    // nothing of ours touches the directory afterwards.
    await Promise.allSettled(learning)
  }

  #list (peer: PeerState<C>, key: Buffer | null): void {
    if (peer.entry !== null || key === null || key === undefined) return
    peer.keyHex = key.toString('hex')
    peer.entry = { conn: peer.conn, authenticated: peer.authenticated }
    // A newer connection to the same key replaces the older one in the view;
    // the older one still runs until its stream closes.
    this.#peers.set(peer.keyHex, peer.entry)
  }

  #openChannel (peer: PeerState<C>): void {
    if (peer.done || peer.channel !== null || peer.mux === null) return
    const stream = peer.conn.stream
    if (stream.handshakeHash === null) return
    this.#list(peer, stream.remotePublicKey)

    const channel = peer.mux.createChannel({
      protocol: ROOM_PROTOCOL,
      unique: true,
      handshake: featuresEncoding,
      messages: [
        { encoding: c.raw, onmessage: (buf: Buffer) => { this.#guard(peer, () => this.#onAuth(peer, buf)) } },
        { encoding: c.raw, onmessage: (buf: Buffer) => { this.#guard(peer, () => this.#onWriters(peer, buf, false)) } },
        { encoding: c.raw, onmessage: (buf: Buffer) => { this.#guard(peer, () => this.#onWriters(peer, buf, true)) } }
      ],
      onopen: (features: number) => {
        peer.heard = true
        peer.features = features
      },
      onclose: (isRemote: boolean) => { this.#guard(peer, () => this.#onChannelClose(peer, isRemote)) }
    })
    if (channel === null) {
      // Only when the stream is already gone or another room channel is open on it.
      this.#drop(peer, 'could not open the room channel')
      return
    }
    peer.channel = channel
    channel.open(OUR_FEATURES)
    authMessage(channel).send(connectionMac(this.#authKey, stream.handshakeHash, stream.isInitiator))
    const readBefore = stream.rawBytesRead ?? 0
    peer.silentTimer = setTimeout(() => {
      peer.silentTimer = null
      if (peer.done || peer.authenticated || peer.heard || (stream.rawBytesRead ?? 0) > readBefore) return
      this.#logger.debug({ remote: peer.keyHex, ms: this.#silentTimeoutMs }, 'dropping a connection that received nothing after our room proof')
      this.#forget(peer)
      stream.destroy()
      this.#emit('silent', peer.conn)
    }, this.#silentTimeoutMs)
  }

  #onAuth (peer: PeerState<C>, buf: Buffer): void {
    if (peer.done) return
    if (peer.authenticated) {
      this.#drop(peer, 'protocol violation: second auth message')
      return
    }
    const stream = peer.conn.stream
    if (buf.byteLength !== MAC_BYTES || stream.handshakeHash === null) {
      this.#reject(peer, 'malformed auth message')
      return
    }
    const expected = connectionMac(this.#authKey, stream.handshakeHash, !stream.isInitiator)
    if (!macEquals(buf, expected)) {
      this.#reject(peer, 'wrong room secret')
      return
    }

    peer.authenticated = true
    if (peer.entry !== null) peer.entry.authenticated = true
    this.#clearTimer(peer)

    // Synchronously, inside the message handler: the remote's hypercore
    // channels can only follow its auth on the wire, so they find corestore
    // already listening on this muxer.
    try {
      this.#directory.store.replicate(stream as unknown as Duplex)
    } catch (err) {
      this.#drop(peer, 'could not replicate the corestore on this stream', err)
      return
    }
    this.#logger.debug({ remote: peer.keyHex }, 'room peer authenticated')

    let known: WriterInfo[] = []
    try {
      known = this.#directory.listWriters().filter(isValidWriterInfo)
    } catch (err) {
      this.#logger.error({ err }, 'listWriters failed')
    }
    this.#sendWriters(peer, known)
    this.#emit('authenticated', peer.conn)
  }

  #onWriters (peer: PeerState<C>, buf: Buffer, withLengths: boolean): void {
    if (peer.done) return
    if (!peer.authenticated) {
      this.#reject(peer, 'protocol violation: writers before auth')
      return
    }
    let decoded
    try {
      decoded = decodeWriters(buf, withLengths)
    } catch (err) {
      this.#drop(peer, 'undecodable writers message', err)
      return
    }
    if (!decoded.ok) {
      this.#logger.warn({ remote: peer.keyHex, count: decoded.count, max: MAX_WRITERS_PER_MESSAGE }, 'ignoring oversized writers message')
      return
    }
    if (decoded.invalid > 0) {
      this.#logger.warn({ remote: peer.keyHex, invalid: decoded.invalid }, 'ignoring writer entries with invalid labels')
    }
    const writers = decoded.writers
    if (writers.length === 0) return
    // One message at a time per peer, so a flood cannot run unbounded addWriter calls in parallel.
    peer.learning = peer.learning.then(() => this.#learn(peer, writers)).catch((err) => {
      this.#logger.error({ err }, 'learning writers failed')
    })
  }

  async #learn (from: PeerState<C>, writers: WriterInfo[]): Promise<void> {
    const fresh = this.#directory.addWriters === undefined ? await this.#addEach(writers) : await this.#addAll(writers)
    for (const info of fresh) {
      this.#logger.debug({ writer: info.key.toString('hex'), from: from.keyHex }, 'learnt writer')
      this.#emit('writer', info, from.keyHex ?? '')
    }
    if (fresh.length === 0 || this.#closing !== null) return
    for (const peer of this.#states) {
      if (peer !== from && peer.authenticated && !peer.done) this.#sendWriters(peer, fresh)
    }
  }

  /** One gossip message in one call: the directory persists it in one write and opens the logs in parallel. */
  async #addAll (writers: WriterInfo[]): Promise<WriterInfo[]> {
    if (this.#closing !== null) return []
    try {
      return await this.#directory.addWriters?.(writers) ?? []
    } catch (err) {
      this.#logger.warn({ err, writers: writers.length }, 'addWriters failed')
      return []
    }
  }

  async #addEach (writers: WriterInfo[]): Promise<WriterInfo[]> {
    const fresh: WriterInfo[] = []
    for (const info of writers) {
      if (this.#closing !== null) break
      try {
        if (await this.#directory.addWriter(info)) fresh.push(info)
      } catch (err) {
        this.#logger.warn({ err, writer: info.key.toString('hex') }, 'addWriter failed')
      }
    }
    return fresh
  }

  #sendWriters (peer: PeerState<C>, writers: readonly WriterInfo[]): void {
    const channel = peer.channel
    if (channel === null || channel.closed) return
    const lengths = (peer.features & FEATURE_LENGTHS) !== 0
    const message = channel.messages[lengths ? 2 : 1] as Message<Buffer>
    for (let i = 0; i < writers.length; i += WRITERS_PER_MESSAGE) {
      message.send(encodeWriters(writers.slice(i, i + WRITERS_PER_MESSAGE), lengths))
    }
  }

  #onChannelClose (peer: PeerState<C>, isRemote: boolean): void {
    if (peer.done) return
    if (!peer.authenticated) {
      this.#reject(peer, isRemote ? 'peer closed or refused the room channel before auth' : 'room channel closed before auth')
      return
    }
    // The peer left the room but kept the connection: stop gossiping to it.
    this.#logger.debug({ remote: peer.keyHex }, 'room channel closed by peer')
    this.#forget(peer)
  }

  #reject (peer: PeerState<C>, reason: string): void {
    if (peer.done) return
    // The listener reports it (once per peer): logging here too would say it twice.
    this.#logger.debug({ remote: peer.keyHex, reason }, 'rejected room peer')
    this.#forget(peer)
    endGracefully(peer.conn.stream)
    this.#emit('rejected', peer.conn, reason)
  }

  #drop (peer: PeerState<C>, reason: string, err?: unknown): void {
    if (peer.done) return
    this.#logger.warn({ remote: peer.keyHex, reason, err: errorMessage(err) }, 'closing room peer connection')
    this.#forget(peer)
    peer.conn.stream.destroy()
  }

  #forget (peer: PeerState<C>): void {
    if (peer.done) return
    peer.done = true
    this.#clearTimer(peer)
    this.#states.delete(peer)
    if (peer.keyHex !== null && this.#peers.get(peer.keyHex) === peer.entry) this.#peers.delete(peer.keyHex)
    peer.conn.stream.off('close', peer.onClose)
    // The error listener stays: a stream we destroy may still emit one.
    if (peer.mux !== null) {
      try { peer.mux.unpair({ protocol: ROOM_PROTOCOL }) } catch {}
    }
  }

  #clearTimer (peer: PeerState<C>): void {
    if (peer.timer !== null) {
      clearTimeout(peer.timer)
      peer.timer = null
    }
    if (peer.silentTimer !== null) {
      clearTimeout(peer.silentTimer)
      peer.silentTimer = null
    }
  }

  // Protomux destroys the whole stream on a throw from a handler; we want the
  // failure logged and confined to this peer instead.
  #guard (peer: PeerState<C>, fn: () => void): void {
    try {
      fn()
    } catch (err) {
      this.#drop(peer, 'room protocol handler failed', err)
    }
  }

  #emit (event: string, ...args: unknown[]): void {
    try {
      this.emit(event, ...args)
    } catch (err) {
      this.#logger.error({ err, event }, 'a room replicator listener threw')
    }
  }
}

// End rather than destroy: our own proof may still sit in the write buffer (we sent it
// this same tick), and the peer needs it to tell its user why, e.g. 'wrong room secret'.
// No data flows on a rejected stream meanwhile: nothing is replicated before auth.
function endGracefully (stream: RoomStream): void {
  if (typeof stream.end !== 'function') {
    stream.destroy()
    return
  }
  stream.end()
  const timer = setTimeout(() => stream.destroy(), REJECTED_LINGER_MS)
  timer.unref()
  stream.on('close', () => clearTimeout(timer))
}

function authMessage (channel: Channel): Message<Buffer> {
  return channel.messages[0] as Message<Buffer>
}

function hexOf (key: Buffer | null | undefined): string | null {
  return Buffer.isBuffer(key) ? key.toString('hex') : null
}

function errorMessage (err: unknown): string | undefined {
  if (err === undefined) return undefined
  return err instanceof Error ? err.message : String(err)
}
