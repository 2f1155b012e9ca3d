// Peer discovery. Every transport (Hyperswarm over the DHT, mDNS + TCP on the
// LAN, an in-process link for tests) yields the same Noise secret stream; this
// class keeps at most one live connection per remote key across all of them.
import { EventEmitter } from 'node:events'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import type Hyperswarm from 'hyperswarm'
import { CrosscastError } from '../errors.ts'
import { silentLogger, childLogger, type Logger } from '../logger.ts'
import { prefers, type Candidate } from './dedupe.ts'
import { parseBootstrap } from './options.ts'
import { SwarmTransport } from './swarm.ts'
import { parseRelayThrough } from './relay.ts'
import { LanTransport } from './lan.ts'
import type { DiscoveryOptions, KeyPair, LanOptions, PeerConnection, TransportName } from './types.ts'

export type { DiscoveryOptions, KeyPair, LanOptions, PeerConnection, TransportName } from './types.ts'
export { parseBootstrap, isLoopbackHost, formatAddress, type BootstrapAddress } from './options.ts'
export { connectInMemory, type MemoryLink } from './memory.ts'
export { lanServiceName } from './lan.ts'
export { prefers } from './dedupe.ts'

const MAX_HELD_OFF = 1024

interface Tracked {
  conn: PeerConnection
  candidate: Candidate
}

// Dedupe, with one exception to the plain rule in dedupe.ts: a connection that has
// not yet proven the room (authenticate()) never displaces one that has. The
// preferred newcomer waits beside the incumbent in `pending` (it is emitted as a
// 'connection' so the room protocol runs on it, but is not in `connections`) and
// takes over once it authenticates; if it dies first, the incumbent stays. Both ends
// still converge on the same survivor: the rule's winner if it ever works, otherwise
// the one that already worked, since a connection one end gives up on closes at
// the other end too.

export class Discovery extends EventEmitter {
  readonly keyPair: KeyPair
  private readonly logger: Logger
  private readonly live = new Map<string, Tracked>()
  private readonly pending = new Map<string, Tracked>()
  // remote key -> until when (ms) the LAN does not dial it. Hyperswarm backs off by itself.
  private readonly heldOff = new Map<string, number>()
  private readonly conns = new Map<string, PeerConnection>()
  private readonly byStream = new Map<NoiseSecretStream, Tracked>()
  // Every stream handed to us, open or not, so close() can end them all.
  private readonly streams = new Set<NoiseSecretStream>()
  private readonly swarmTransport: SwarmTransport | null
  private readonly lanTransport: LanTransport | null
  private readonly maxAccepted: number | null
  private closing: Promise<void> | null = null

  constructor (opts: DiscoveryOptions) {
    super()
    if (opts === null || typeof opts !== 'object') {
      throw new CrosscastError('INVALID_OPTION', 'Discovery needs an options object with a keyPair', { field: 'keyPair' })
    }
    this.keyPair = checkKeyPair(opts.keyPair)
    this.logger = childLogger(opts.logger ?? silentLogger, { component: 'net' })
    const bootstrap = opts.bootstrap === undefined ? undefined : parseBootstrap(opts.bootstrap)
    const lan = checkLan(opts.lan)
    const maxPeers = checkMaxPeers(opts.maxPeers)
    this.maxAccepted = maxPeers ?? null

    this.swarmTransport = opts.swarm === false
      ? null
      : new SwarmTransport({
        keyPair: this.keyPair,
        bootstrap,
        logger: this.logger,
        onstream: (stream) => this.attach(stream, 'swarm'),
        hasPeers: () => this.live.size > 0,
        relay: opts.relay === true,
        relayThrough: opts.relayThrough === undefined ? [] : parseRelayThrough(opts.relayThrough),
        maxPeers
      })
    this.lanTransport = lan === null
      ? null
      : new LanTransport({
        keyPair: this.keyPair,
        options: lan,
        logger: this.logger,
        onstream: (stream) => this.attach(stream, 'lan'),
        skipDial: (remoteKeyHex) => this.live.has(remoteKeyHex) || this.isHeldOff(remoteKeyHex),
        hasPeers: () => this.live.size > 0
      })
  }

  get publicKey (): Buffer {
    return this.keyPair.publicKey
  }

  get connections (): ReadonlyMap<string, PeerConnection> {
    return this.conns
  }

  get closed (): boolean {
    return this.closing !== null
  }

  // The underlying Hyperswarm, for diagnostics and tests; null with swarm: false.
  get swarm (): Hyperswarm | null {
    return this.swarmTransport?.swarm ?? null
  }

  /** A relay a room peer announced; false if it was known, is this node's own, or too many were learnt. */
  addRelay (key: Buffer): boolean {
    return this.swarmTransport?.addRelay(key) ?? false
  }

  // What peers pass as relayThrough to pair through this node; null unless it runs with relay: true.
  get relayPublicKey (): Buffer | null {
    return this.swarmTransport?.relayPublicKey ?? null
  }

  // The TCP port LAN peers dial; null until the first join, or with lan off.
  get lanPort (): number | null {
    return this.lanTransport?.port ?? null
  }

  join (topic: Buffer): void {
    checkTopic(topic)
    if (this.closing !== null) throw new CrosscastError('CLOSED', 'discovery is closed')
    this.swarmTransport?.join(topic)
    this.lanTransport?.join(topic)
  }

  async leave (topic: Buffer): Promise<void> {
    checkTopic(topic)
    await Promise.all([this.swarmTransport?.leave(topic), this.lanTransport?.leave(topic)])
  }

  // Hands an already-built secret stream (open or still handshaking) to the
  // deduper. Every transport goes through here; tests use it to force duplicates.
  attach (stream: NoiseSecretStream, transport: TransportName): void {
    stream.on('error', (err: Error) => this.logger.debug({ err, transport }, 'connection error'))
    if (this.closing !== null) {
      stream.destroy()
      return
    }
    this.streams.add(stream)
    stream.once('close', () => this.onclose(stream))
    stream.opened.then((opened) => {
      if (opened) this.onopen(stream, transport)
    }).catch((err: unknown) => this.logger.error({ err }, 'a connection listener threw'))
  }

  private onopen (stream: NoiseSecretStream, transport: TransportName): void {
    const remotePublicKey = stream.remotePublicKey
    const handshakeHash = stream.handshakeHash
    if (this.closing !== null || stream.destroyed || remotePublicKey === null || handshakeHash === null) return
    if (remotePublicKey.equals(this.keyPair.publicKey)) {
      this.logger.debug({ transport }, 'dropping a connection to ourselves')
      stream.destroy()
      return
    }
    const key = remotePublicKey.toString('hex')
    // Hyperswarm caps only its own dials, so without this the nodes a room finds first
    // hold a connection to nearly everyone. The refused dialer moves on to other peers.
    if (transport === 'swarm' && !stream.isInitiator && this.maxAccepted !== null && !this.live.has(key) && this.accepted() >= this.maxAccepted) {
      this.logger.debug({ remote: key }, 'refusing an inbound connection: as many accepted as maxPeers')
      stream.destroy()
      return
    }
    const tracked: Tracked = {
      conn: { stream, remotePublicKey, transport, isInitiator: stream.isInitiator, since: Date.now(), authenticated: false },
      candidate: { transport, initiatorKey: stream.isInitiator ? this.keyPair.publicKey : remotePublicKey, handshakeHash }
    }
    const incumbent = this.live.get(key)
    if (incumbent !== undefined) {
      if (!prefers(tracked.candidate, incumbent.candidate)) {
        this.logger.debug({ remote: key, transport, kept: incumbent.conn.transport }, 'duplicate connection dropped')
        stream.destroy()
        return
      }
      if (incumbent.conn.authenticated) {
        const waiting = this.pending.get(key)
        if (waiting !== undefined && !prefers(tracked.candidate, waiting.candidate)) {
          this.logger.debug({ remote: key, transport }, 'duplicate connection dropped')
          stream.destroy()
          return
        }
        if (waiting !== undefined) {
          this.forget(waiting)
          waiting.conn.stream.destroy()
        }
        this.logger.debug({ remote: key, transport }, 'duplicate connection waits to authenticate before it replaces the current one')
        this.pending.set(key, tracked)
        this.byStream.set(stream, tracked)
        this.emit('connection', tracked.conn)
        return
      }
      this.logger.debug({ remote: key, transport, replaced: incumbent.conn.transport }, 'duplicate connection replaces the current one')
      this.forget(incumbent)
      incumbent.conn.stream.destroy()
    }
    this.byStream.set(stream, tracked)
    this.promote(key, tracked)
    this.emit('connection', tracked.conn)
  }

  private accepted (): number {
    let n = 0
    for (const { conn } of this.live.values()) if (conn.transport === 'swarm' && !conn.isInitiator) n++
    return n
  }

  // The room layer calls this once the peer on `stream` proved the room secret.
  authenticate (stream: NoiseSecretStream): void {
    const tracked = this.byStream.get(stream)
    if (tracked === undefined || tracked.conn.authenticated) return
    tracked.conn.authenticated = true
    const key = tracked.conn.remotePublicKey.toString('hex')
    if (this.pending.get(key) !== tracked) return
    this.pending.delete(key)
    const incumbent = this.live.get(key)
    if (incumbent !== undefined) {
      this.logger.debug({ remote: key, transport: tracked.conn.transport, replaced: incumbent.conn.transport }, 'authenticated duplicate replaces the current one')
      this.forget(incumbent)
      incumbent.conn.stream.destroy()
    }
    this.promote(key, tracked)
  }

  // A peer that failed the room handshake would fail it again: mDNS answers every
  // couple of seconds would otherwise redial it forever.
  holdOff (remotePublicKey: Buffer, ms: number): void {
    const now = Date.now()
    if (this.heldOff.size >= MAX_HELD_OFF) {
      for (const [key, until] of this.heldOff) if (until <= now) this.heldOff.delete(key)
      if (this.heldOff.size >= MAX_HELD_OFF) this.heldOff.delete(this.heldOff.keys().next().value as string)
    }
    this.heldOff.set(remotePublicKey.toString('hex'), now + ms)
  }

  private isHeldOff (remoteKeyHex: string): boolean {
    const until = this.heldOff.get(remoteKeyHex)
    if (until === undefined) return false
    if (until > Date.now()) return true
    this.heldOff.delete(remoteKeyHex)
    return false
  }

  private promote (key: string, tracked: Tracked): void {
    this.live.set(key, tracked)
    this.conns.set(key, tracked.conn)
    this.logger.info({ remote: key, transport: tracked.conn.transport, initiator: tracked.conn.isInitiator }, 'peer connected')
  }

  private onclose (stream: NoiseSecretStream): void {
    this.streams.delete(stream)
    const tracked = this.byStream.get(stream)
    if (tracked === undefined) return
    this.forget(tracked)
    if (this.closing === null) this.lanTransport?.onDisconnect()
  }

  private forget (tracked: Tracked): void {
    this.byStream.delete(tracked.conn.stream)
    const key = tracked.conn.remotePublicKey.toString('hex')
    if (this.pending.get(key) === tracked) {
      this.pending.delete(key)
      this.emit('disconnection', tracked.conn)
      return
    }
    if (this.live.get(key) !== tracked) return
    this.live.delete(key)
    this.conns.delete(key)
    this.logger.info({ remote: key, transport: tracked.conn.transport }, 'peer disconnected')
    this.emit('disconnection', tracked.conn)
    const waiting = this.pending.get(key)
    if (waiting !== undefined && this.closing === null) {
      this.pending.delete(key)
      this.promote(key, waiting)
    }
  }

  close (): Promise<void> {
    if (this.closing === null) this.closing = this.shutdown()
    return this.closing
  }

  private async shutdown (): Promise<void> {
    const ending = [...this.streams].map((stream) => new Promise<void>((resolve) => {
      if (stream.destroyed) resolve()
      else stream.once('close', () => resolve())
      stream.destroy()
    }))
    await Promise.all(ending)
    const stopping = [this.swarmTransport?.close(), this.lanTransport?.close()]
    const results = await Promise.allSettled(stopping)
    for (const result of results) {
      if (result.status === 'rejected') this.logger.warn({ err: result.reason }, 'transport did not close cleanly')
    }
  }
}

function checkKeyPair (keyPair: unknown): KeyPair {
  const pair = keyPair as Partial<KeyPair> | null | undefined
  if (pair === null || typeof pair !== 'object' || !Buffer.isBuffer(pair.publicKey) || pair.publicKey.length !== 32 ||
    !Buffer.isBuffer(pair.secretKey) || pair.secretKey.length !== 64) {
    throw new CrosscastError('INVALID_OPTION', 'keyPair must be { publicKey: 32-byte Buffer, secretKey: 64-byte Buffer }', { field: 'keyPair' })
  }
  return { publicKey: pair.publicKey, secretKey: pair.secretKey }
}

function checkMaxPeers (maxPeers: unknown): number | undefined {
  if (maxPeers === undefined) return undefined
  if (typeof maxPeers !== 'number' || !Number.isInteger(maxPeers) || maxPeers < 1) {
    throw new CrosscastError('INVALID_OPTION', 'maxPeers must be a positive integer', { field: 'maxPeers' })
  }
  return maxPeers
}

function checkTopic (topic: unknown): void {
  if (!Buffer.isBuffer(topic) || topic.length !== 32) {
    throw new CrosscastError('INVALID_OPTION', 'topic must be a 32-byte Buffer', { field: 'topic' })
  }
}

function checkLan (lan: unknown): LanOptions | null {
  if (lan === undefined || lan === true) return {}
  if (lan === false) return null
  if (lan === null || typeof lan !== 'object') {
    throw new CrosscastError('INVALID_OPTION', 'lan must be a boolean or an options object', { field: 'lan' })
  }
  const opts = lan as Record<string, unknown>
  for (const name of ['mdnsPort', 'port']) {
    const value = opts[name]
    if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535)) {
      throw new CrosscastError('INVALID_OPTION', `lan.${name} must be a port number`, { field: `lan.${name}` })
    }
  }
  for (const name of ['queryInterval', 'idleQueryInterval', 'keepAlive', 'timeout']) {
    const value = opts[name]
    if (value !== undefined && (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)) {
      throw new CrosscastError('INVALID_OPTION', `lan.${name} must be a positive number of milliseconds`, { field: `lan.${name}` })
    }
  }
  for (const name of ['interface', 'bind', 'host', 'mdnsGroup']) {
    const value = opts[name]
    if (value !== undefined && (typeof value !== 'string' || value.length === 0)) {
      throw new CrosscastError('INVALID_OPTION', `lan.${name} must be a non-empty address string`, { field: `lan.${name}` })
    }
  }
  return opts as LanOptions
}
