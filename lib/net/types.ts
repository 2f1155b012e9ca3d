import type NoiseSecretStream from '@hyperswarm/secret-stream'
import type { Logger } from '../logger.ts'

/** 'stream': a duplex the application handed to Crosscast#replicate (a pipe, an SSH tunnel, a TCP socket). */
export type TransportName = 'swarm' | 'lan' | 'stream' | 'memory'

export interface KeyPair { publicKey: Buffer, secretKey: Buffer }

export interface PeerConnection {
  stream: NoiseSecretStream
  remotePublicKey: Buffer
  transport: TransportName
  isInitiator: boolean
  since: number
  /** Set once the peer proved the room secret on this connection (Discovery#authenticate). */
  authenticated: boolean
}

export interface LanOptions {
  // IPv4 address of the interface to send and join multicast on; default: all interfaces.
  interface?: string
  // Address the mDNS socket binds; default 0.0.0.0, because on Linux a socket bound
  // to a unicast address does not receive multicast.
  bind?: string
  // mDNS UDP port and group; defaults 5353 and 224.0.0.251.
  mdnsPort?: number
  mdnsGroup?: string
  // TCP listener for incoming peers; defaults 0.0.0.0 and a free port.
  host?: string
  port?: number
  // How often to query while no peer is connected (ms, default 2000); with peers,
  // every `idleQueryInterval` (ms, default 30000) so late joiners are still found.
  queryInterval?: number
  idleQueryInterval?: number
  // Secret-stream keep-alive and idle timeout (ms, defaults 5000 and 15000): a cut
  // cable never closes TCP, so this is how a dead LAN peer is noticed.
  // The timeout must exceed the peers' keep-alive.
  keepAlive?: number
  timeout?: number
}

export interface DiscoveryOptions {
  keyPair: KeyPair
  swarm?: boolean
  bootstrap?: Array<string | { host: string, port: number }>
  lan?: boolean | LanOptions
  /**
   * Run a blind relay on this node's DHT, for peers that cannot punch through
   * their NATs. Only useful on a reachable address; its key is `relayPublicKey`.
   */
  relay?: boolean
  /** Relay public keys (hex) to go through when a direct connection cannot be punched. */
  relayThrough?: Array<string | Buffer>
  /**
   * Hyperswarm's maxPeers: it stops dialling at this many connections (default 64). When
   * set, swarm connections accepted beyond this many are refused too (Hyperswarm accepts all).
   */
  maxPeers?: number
  logger?: Logger
}
