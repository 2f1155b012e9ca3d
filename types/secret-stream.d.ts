// Only the parts of @hyperswarm/secret-stream 6 that crosscast calls.
declare module '@hyperswarm/secret-stream' {
  import { Duplex } from 'node:stream'

  export interface KeyPair { publicKey: Buffer, secretKey: Buffer }
  export interface NoiseSecretStreamOptions {
    keyPair?: KeyPair
    remotePublicKey?: Buffer
    keepAlive?: number
    autoStart?: boolean
  }

  // A streamx Duplex at runtime; typed as node's Duplex, whose surface we use.
  export default class NoiseSecretStream extends Duplex {
    constructor (isInitiator: boolean, rawStream?: Duplex | null, opts?: NoiseSecretStreamOptions)
    readonly isInitiator: boolean
    // Without a raw stream it is a bridge: pipe two bridges together for an in-process pair.
    readonly rawStream: Duplex & { pipe<T extends NodeJS.WritableStream>(dest: T): T }
    readonly publicKey: Buffer | null
    readonly remotePublicKey: Buffer | null
    readonly handshakeHash: Buffer | null
    readonly connected: boolean
    readonly opened: Promise<boolean>
    readonly rawBytesRead: number
    readonly rawBytesWritten: number
    userData: unknown
    setTimeout (ms: number): void
    setKeepAlive (ms: number): void
    sendKeepAlive (): void
    static keyPair (seed?: Buffer): KeyPair
  }
}
