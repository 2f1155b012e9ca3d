// Only the parts of hyperswarm 4 that crosscast calls.
declare module 'hyperswarm' {
  import { EventEmitter } from 'node:events'
  import type HyperDHT from 'hyperdht'
  import type { KeyPair } from 'hyperdht'
  import type NoiseSecretStream from '@hyperswarm/secret-stream'

  export interface PeerInfo { publicKey: Buffer, topics: Buffer[], client: boolean, banned: boolean }
  export interface PeerDiscoverySession {
    refresh (opts?: { client?: boolean, server?: boolean }): Promise<boolean | void>
    flushed (): Promise<boolean>
    destroy (): Promise<void>
  }
  export interface HyperswarmOptions {
    keyPair?: KeyPair
    dht?: HyperDHT
    bootstrap?: Array<string | { host: string, port: number }>
    port?: number
    maxPeers?: number
    /** Relays (DHT server keys running a blind relay) for peers that cannot hole-punch; used when forced (a punch failed) or this node's NAT is randomized. */
    relayThrough?: Buffer | Buffer[] | ((force: boolean) => Buffer | Buffer[] | null)
  }

  export default class Hyperswarm extends EventEmitter {
    constructor (opts?: HyperswarmOptions)
    readonly keyPair: KeyPair
    readonly dht: HyperDHT
    readonly destroyed: boolean
    readonly connections: Set<NoiseSecretStream>
    /** Read on every dial and every accepted handshake, so it may be replaced while the swarm runs. */
    relayThrough: ((force: boolean, swarm: Hyperswarm) => Buffer | Buffer[] | null) | null
    join (topic: Buffer, opts?: { client?: boolean, server?: boolean }): PeerDiscoverySession
    leave (topic: Buffer): Promise<void>
    flush (): Promise<boolean>
    destroy (opts?: { force?: boolean }): Promise<void>
    on (event: 'connection', listener: (conn: NoiseSecretStream, info: PeerInfo) => void): this
    on (event: 'update', listener: () => void): this
    on (event: string, listener: (...args: any[]) => void): this
  }
}
