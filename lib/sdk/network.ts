// Wires discovery (lib/net) to the room protocol (lib/replication) for one node:
// every connection is authenticated against the room, then the corestore is
// replicated on it and writer keys are exchanged.

import { Discovery, type PeerConnection, type TransportName } from '../net/index.ts'
import { RoomReplicator, type WriterDirectory, type WriterInfo } from '../replication/replicator.ts'
import { deriveRoom } from '../replication/room.ts'
import type { Logger } from '../logger.ts'
import type { ResolvedOptions } from './options.ts'
import type { KnownWriter, WriterLength } from './writers.ts'
import type Corestore from 'corestore'
import type { Duplex } from 'node:stream'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import { rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CrosscastError } from '../errors.ts'
import { NETWORK_STATUS_FILE, type NetworkStatusFile, type PeerStatus, type RejectedPeer, type RejectedPeersStatus } from './network-status.ts'

export { NETWORK_STATUS_FILE, type NetworkStatusFile, type PeerStatus, type RejectedPeer, type RejectedPeersStatus } from './network-status.ts'

// Enough to tell "wrong secret" from "nobody online" and to spot a few culprits;
// a flood of fresh keys only ever costs this many entries.
export const MAX_REJECTED_REASONS = 16
const MAX_REMEMBERED_REJECTED = 1024
// A rejected peer is not dialled again over the LAN for this long.
const REJECTED_HOLD_OFF_MS = 30_000

const STATUS_WRITE_DELAY_MS = 250
// Length news is gathered this long and sent as one message: a download of a
// thousand logs costs a few messages, and a new block still reaches a peer
// that closed its log within a few milliseconds.
const LENGTHS_DELAY_MS = 10

/** What the network needs from the node; Crosscast implements it. */
export interface NetworkHost {
  readonly _store: Corestore
  /** Every writer known, with the length of its log held here (or only these keys). */
  _writerLengths (keys?: Iterable<string>): WriterLength[]
  _addRemoteWriters (infos: WriterLength[]): Promise<KnownWriter[]>
  /** A connection passed the room handshake (presence opens its channel on it). */
  _peerAuthenticated (stream: NoiseSecretStream): void
}

export class NodeNetwork {
  private readonly host: NetworkHost
  private readonly options: ResolvedOptions
  private readonly logger: Logger
  private discovery: Discovery | null = null
  private replicator: RoomReplicator<PeerConnection> | null = null
  // Insertion order is recency order: a repeat is deleted and set again.
  private readonly rejections = new Map<string, RejectedPeer>()
  private rejectedPeerCount = 0
  private statusTimer: NodeJS.Timeout | null = null
  private statusWrite: Promise<void> = Promise.resolve()
  private readonly lengthNews = new Set<string>()
  private lengthTimer: NodeJS.Timeout | null = null
  private closed = false

  constructor (host: NetworkHost, options: ResolvedOptions, logger: Logger) {
    this.host = host
    this.options = options
    this.logger = logger
  }

  /** Starts discovery in the background; resolves without waiting for any peer. */
  async start (): Promise<void> {
    const room = deriveRoom(this.options.room, this.options.secret)
    // A stable Noise identity per storage lets peers dedupe connections across transports and restarts.
    const keyPair = await this.host._store.createKeyPair('crosscast/noise')
    const directory: WriterDirectory = {
      store: this.host._store,
      listWriters: () => this.host._writerLengths().map(toWire),
      addWriter: async (info) => (await this.host._addRemoteWriters([fromWire(info)])).length > 0,
      addWriters: async (infos) => {
        const fresh = new Set((await this.host._addRemoteWriters(infos.map(fromWire))).map(w => w.key))
        return infos.filter(info => fresh.has(info.key.toString('hex')))
      }
    }
    const replicator = new RoomReplicator<PeerConnection>({ directory, authKey: room.authKey, logger: this.logger })
    replicator.on('authenticated', (conn) => this.host._peerAuthenticated(conn.stream))
    replicator.on('rejected', (conn, reason) => {
      this.discovery?.holdOff(conn.remotePublicKey, REJECTED_HOLD_OFF_MS)
      this.onRejected(conn.remotePublicKey.toString('hex'), reason)
    })
    replicator.on('authenticated', (conn) => {
      this.discovery?.authenticate(conn.stream)
      this.scheduleStatusFile()
    })
    const discovery = new Discovery({
      keyPair,
      swarm: this.options.swarm,
      bootstrap: this.options.bootstrap,
      lan: this.options.lan,
      relay: this.options.relay,
      ...(this.options.relayThrough !== undefined ? { relayThrough: this.options.relayThrough } : {}),
      ...(this.options.maxPeers !== undefined ? { maxPeers: this.options.maxPeers } : {}),
      logger: this.logger
    })
    discovery.on('connection', (conn: PeerConnection) => replicator.attach(conn))
    discovery.on('disconnection', () => this.scheduleStatusFile())
    this.discovery = discovery
    this.replicator = replicator
    discovery.join(room.topic)
    // Also on the name-only topic, for good: a newcomer with another secret then meets
    // a room that already works, fails the handshake and is told why, at both ends.
    if (this.options.reportWrongSecret) discovery.join(room.probeTopic)
  }

  /** Replicates the room over a duplex the application provides, wrapped in Noise with this node's identity. */
  replicate (isInitiator: boolean, rawStream: Duplex): NoiseSecretStream {
    if (this.discovery === null) throw new CrosscastError('CLOSED', 'the network is not running')
    const stream = new NoiseSecretStream(isInitiator, rawStream, { keyPair: this.discovery.keyPair })
    this.discovery.attach(stream, 'stream')
    return stream
  }

  announce (info: KnownWriter): void {
    const [withLength] = this.host._writerLengths([info.key])
    this.replicator?.announce(toWire(withLength ?? info))
  }

  /** This node holds more of a log now; peers hear it in the next batch. */
  announceLength (key: string): void {
    if (this.closed || this.replicator === null) return
    this.lengthNews.add(key)
    if (this.lengthTimer !== null) return
    this.lengthTimer = setTimeout(() => {
      this.lengthTimer = null
      const keys = [...this.lengthNews]
      this.lengthNews.clear()
      this.replicator?.announceLengths(this.host._writerLengths(keys).map(toWire))
    }, LENGTHS_DELAY_MS)
    this.lengthTimer.unref()
  }

  /** This node's relay key (hex) when it runs with relay: true, for its presence to announce. */
  relayKey (): string | null {
    return this.discovery?.relayPublicKey?.toString('hex') ?? null
  }

  /** A room peer announced that it relays. */
  addRelay (keyHex: string): void {
    this.discovery?.addRelay(Buffer.from(keyHex, 'hex'))
  }

  /** @internal for tests and the in-memory transport */
  get _discovery (): Discovery | null {
    return this.discovery
  }

  peers (): PeerStatus[] {
    if (this.discovery === null) return []
    return [...this.discovery.connections.entries()].map(([key, conn]) => ({
      remoteKey: key,
      transport: conn.transport,
      since: conn.since,
      authenticated: conn.authenticated
    }))
  }

  rejected (): RejectedPeersStatus {
    const reasons = [...this.rejections.values()].reverse().slice(0, MAX_REJECTED_REASONS)
    return { peers: this.rejectedPeerCount, reasons: reasons.map(r => ({ ...r })) }
  }

  // Hyperswarm redials a rejected peer again and again: say so once per peer and
  // reason, so the log tells a wrong secret apart without drowning in it.
  private onRejected (remoteKey: string, reason: string): void {
    const previous = this.rejections.get(remoteKey)
    if (previous === undefined) this.rejectedPeerCount++
    this.rejections.delete(remoteKey)
    this.rejections.set(remoteKey, { remoteKey, reason, at: new Date().toISOString(), count: (previous?.count ?? 0) + 1 })
    if (this.rejections.size > MAX_REMEMBERED_REJECTED) this.rejections.delete(this.rejections.keys().next().value as string)
    this.scheduleStatusFile()
    if (previous?.reason === reason) {
      this.logger.debug({ remote: remoteKey, reason, count: previous.count + 1 }, 'a peer failed the room handshake again')
      return
    }
    this.logger.warn({ remote: remoteKey, reason }, 'a peer failed the room handshake')
  }

  private scheduleStatusFile (): void {
    if (this.closed || this.statusTimer !== null) return
    this.statusTimer = setTimeout(() => {
      this.statusTimer = null
      this.statusWrite = this.statusWrite.then(() => this.writeStatusFile())
    }, STATUS_WRITE_DELAY_MS)
    this.statusTimer.unref()
  }

  private async writeStatusFile (): Promise<void> {
    if (this.closed) return
    const path = join(this.options.storage, NETWORK_STATUS_FILE)
    const body: NetworkStatusFile = { pid: process.pid, updatedAt: new Date().toISOString(), peers: this.peers(), rejected: this.rejected() }
    try {
      // Whole or not at all: a reader never sees half a file.
      await writeFile(`${path}.tmp`, JSON.stringify(body) + '\n')
      await rename(`${path}.tmp`, path)
    } catch (err) {
      this.logger.debug({ err }, 'could not write the network status file')
    }
  }

  async close (): Promise<void> {
    this.closed = true
    if (this.statusTimer !== null) clearTimeout(this.statusTimer)
    if (this.lengthTimer !== null) clearTimeout(this.lengthTimer)
    await this.statusWrite
    await this.replicator?.close()
    await this.discovery?.close()
    await rm(join(this.options.storage, NETWORK_STATUS_FILE), { force: true }).catch(() => {})
  }
}

function fromWire (info: WriterInfo): WriterLength {
  const w: WriterLength = { key: info.key.toString('hex'), sessionId: info.sessionId, agentId: info.agentId, local: false }
  if (info.length !== undefined) Object.assign(w, { length: info.length, fork: info.fork ?? 0, ended: info.ended === true })
  return w
}

function toWire (w: WriterLength): WriterInfo {
  const info: WriterInfo = { key: Buffer.from(w.key, 'hex'), sessionId: w.sessionId, agentId: w.agentId }
  if (w.length !== undefined) Object.assign(info, { length: w.length, fork: w.fork ?? 0, ended: w.ended === true })
  return info
}
