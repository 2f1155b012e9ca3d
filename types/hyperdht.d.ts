// Only the parts of hyperdht 6 that crosscast calls.
declare module 'hyperdht' {
  import { EventEmitter } from 'node:events'
  import type NoiseSecretStream from '@hyperswarm/secret-stream'

  export interface KeyPair { publicKey: Buffer, secretKey: Buffer }
  export interface NodeAddress { host: string, port: number }
  export interface HyperDHTOptions {
    bootstrap?: Array<string | NodeAddress> | false
    host?: string
    port?: number
    anyPort?: boolean
    ephemeral?: boolean
    firewalled?: boolean
    keyPair?: KeyPair
  }

  export default class HyperDHT extends EventEmitter {
    constructor (opts?: HyperDHTOptions)
    readonly destroyed: boolean
    readonly bootstrapped: boolean
    readonly firewalled: boolean
    readonly ephemeral: boolean
    /** dht-rpc's routing table: size 0 means no DHT node ever answered. */
    readonly table: { readonly size: number }
    ready (): Promise<void>
    fullyBootstrapped (): Promise<void>
    address (): { host: string, family: number, port: number }
    /** True when this node's NAT maps each destination to a new port (hole punching cannot predict it). */
    readonly randomized: boolean
    connect (remotePublicKey: Buffer, opts?: { keyPair?: KeyPair, relayThrough?: Buffer | Buffer[] | null }): NoiseSecretStream
    createServer (opts: { shareLocalAddress?: boolean }, onconnection: (socket: NoiseSecretStream) => void): HyperDHTServer
    createRawStream (opts?: Record<string, unknown>): import('node:stream').Duplex
    destroy (opts?: { force?: boolean }): Promise<void>
    static keyPair (seed?: Buffer): KeyPair
    static bootstrapper (port: number, host: string, opts?: HyperDHTOptions): HyperDHT
  }

  export interface HyperDHTServer extends EventEmitter {
    readonly publicKey: Buffer
    listen (keyPair?: KeyPair): Promise<void>
    close (): Promise<void>
  }
}

declare module 'hyperdht/testnet' {
  import type HyperDHT from 'hyperdht'
  import type { NodeAddress, HyperDHTOptions } from 'hyperdht'

  export interface Testnet {
    nodes: HyperDHT[]
    bootstrap: NodeAddress[]
    createNode (opts?: HyperDHTOptions): HyperDHT
    destroy (): Promise<void>
  }
  export default function createTestnet (size?: number, opts?: { host?: string, port?: number, bootstrap?: NodeAddress[], teardown?: (fn: () => unknown, opts?: { order?: number }) => void }): Promise<Testnet>
}
