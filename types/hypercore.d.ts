// Only the parts of hypercore 11 that crosscast calls.
declare module 'hypercore' {
  import { EventEmitter } from 'node:events'
  import type { Duplex } from 'node:stream'

  export interface HypercoreOptions {
    valueEncoding?: 'binary' | 'utf-8' | 'json'
    allowFork?: boolean
    writable?: boolean
    wait?: boolean
    active?: boolean
  }
  export interface GetOptions { wait?: boolean, timeout?: number, valueEncoding?: string }
  export interface Download { done (): Promise<void>, destroy (): void }
  export interface PeerInfo { remotePublicKey: Buffer, remoteLength: number, remoteContiguousLength: number }

  export default class Hypercore extends EventEmitter {
    constructor (storage: unknown, key?: Buffer | null, opts?: HypercoreOptions)
    readonly key: Buffer
    readonly discoveryKey: Buffer
    readonly id: string
    readonly length: number
    readonly contiguousLength: number
    readonly byteLength: number
    readonly fork: number
    readonly writable: boolean
    readonly readable: boolean
    readonly opened: boolean
    readonly closed: boolean
    readonly closing: Promise<void> | null
    readonly peers: PeerInfo[]
    readonly keyPair: { publicKey: Buffer, secretKey: Buffer } | null
    ready (): Promise<void>
    close (): Promise<void>
    append (block: Buffer | Buffer[]): Promise<{ length: number, byteLength: number }>
    get (index: number, opts?: GetOptions): Promise<Buffer | null>
    has (start: number, end?: number): Promise<boolean>
    update (opts?: { wait?: boolean }): Promise<boolean>
    truncate (length: number, fork?: number): Promise<void>
    download (range?: { start?: number, end?: number, linear?: boolean }): Download
    info (opts?: { storage?: boolean }): Promise<{ length: number, contiguousLength: number, byteLength: number, storage?: { oplog: number, tree: number, blocks: number, bitfield: number } | null }>
    findingPeers (): () => void
    replicate (isInitiator: boolean | Duplex, opts?: Record<string, unknown>): Duplex
    on (event: 'append' | 'close' | 'ready', listener: () => void): this
    on (event: 'truncate', listener: (ancestors: number, forkId: number) => void): this
    on (event: 'download' | 'upload', listener: (index: number, byteLength: number, from: unknown) => void): this
    on (event: 'verification-error' | 'invalid-request', listener: (err: Error) => void): this
    on (event: 'peer-add' | 'peer-remove', listener: (peer: PeerInfo) => void): this
    on (event: 'conflict', listener: (length: number, fork: number) => void): this
    on (event: string, listener: (...args: any[]) => void): this
    static getProtocolMuxer (stream: unknown): unknown
  }
}
