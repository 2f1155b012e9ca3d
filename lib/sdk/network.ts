// Wires discovery (lib/net) to the room protocol (lib/replication) for one node:
// every connection is authenticated against the room, then the corestore is
// replicated on it and writer keys are exchanged.

import { Discovery, type PeerConnection, type TransportName } from '../net/index.ts'
import { RoomReplicator, type WriterDirectory, type WriterInfo } from '../replication/replicator.ts'
import { deriveRoom } from '../replication/room.ts'
import type { Logger } from '../logger.ts'
import type { ResolvedOptions } from './options.ts'
import type { KnownWriter } from './writers.ts'
import type Corestore from 'corestore'
import type { Duplex } from 'node:stream'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import { CrosscastError } from '../errors.ts'

export interface PeerStatus { remoteKey: string, transport: TransportName, since: number, authenticated: boolean }

/** What the network needs from the node; Crosscast implements it. */
export interface NetworkHost {
  readonly _store: Corestore
  listWriters (): KnownWriter[]
  _addRemoteWriters (infos: KnownWriter[]): Promise<KnownWriter[]>
}

export class NodeNetwork {
  private readonly host: NetworkHost
  private readonly options: ResolvedOptions
  private readonly logger: Logger
  private discovery: Discovery | null = null
  private replicator: RoomReplicator<PeerConnection> | null = null
  rejectedPeers = 0

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
      listWriters: () => this.host.listWriters().map(toWire),
      addWriter: async (info) => (await this.host._addRemoteWriters([fromWire(info)])).length > 0,
      addWriters: async (infos) => {
        const fresh = new Set((await this.host._addRemoteWriters(infos.map(fromWire))).map(w => w.key))
        return infos.filter(info => fresh.has(info.key.toString('hex')))
      }
    }
    const replicator = new RoomReplicator<PeerConnection>({ directory, authKey: room.authKey, logger: this.logger })
    replicator.on('rejected', (conn, reason) => {
      this.rejectedPeers++
      this.logger.warn({ remote: conn.remotePublicKey.toString('hex'), reason }, 'a peer failed the room handshake')
    })
    const discovery = new Discovery({
      keyPair,
      swarm: this.options.swarm,
      bootstrap: this.options.bootstrap,
      lan: this.options.lan,
      logger: this.logger
    })
    discovery.on('connection', (conn: PeerConnection) => replicator.attach(conn))
    this.discovery = discovery
    this.replicator = replicator
    discovery.join(room.topic)
  }

  /** Replicates the room over a duplex the application provides, wrapped in Noise with this node's identity. */
  replicate (isInitiator: boolean, rawStream: Duplex): NoiseSecretStream {
    if (this.discovery === null) throw new CrosscastError('CLOSED', 'the network is not running')
    const stream = new NoiseSecretStream(isInitiator, rawStream, { keyPair: this.discovery.keyPair })
    this.discovery.attach(stream, 'stream')
    return stream
  }

  announce (info: KnownWriter): void {
    this.replicator?.announce(toWire(info))
  }

  /** @internal for tests and the in-memory transport */
  get _discovery (): Discovery | null {
    return this.discovery
  }

  peers (): PeerStatus[] {
    if (this.discovery === null) return []
    const room = this.replicator?.peers
    return [...this.discovery.connections.entries()].map(([key, conn]) => ({
      remoteKey: key,
      transport: conn.transport,
      since: conn.since,
      authenticated: room?.get(key)?.authenticated === true
    }))
  }

  async close (): Promise<void> {
    await this.replicator?.close()
    await this.discovery?.close()
  }
}

function fromWire (info: WriterInfo): KnownWriter {
  return { key: info.key.toString('hex'), sessionId: info.sessionId, agentId: info.agentId, local: false }
}

function toWire (w: KnownWriter): WriterInfo {
  return { key: Buffer.from(w.key, 'hex'), sessionId: w.sessionId, agentId: w.agentId }
}
