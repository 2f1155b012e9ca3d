// Only the parts of corestore 7 that crosscast calls.
declare module 'corestore' {
  import { EventEmitter } from 'node:events'
  import type { Duplex } from 'node:stream'
  import type Hypercore from 'hypercore'
  import type { HypercoreOptions } from 'hypercore'

  export interface GetOptions extends HypercoreOptions {
    name?: string
    key?: Buffer
    exclusive?: boolean
  }

  export default class Corestore extends EventEmitter {
    constructor (storage: string, opts?: { primaryKey?: Buffer, writable?: boolean, readOnly?: boolean })
    readonly opened: boolean
    readonly closed: boolean
    ready (): Promise<void>
    close (): Promise<void>
    get (opts: GetOptions | Buffer): Hypercore
    namespace (name: string): Corestore
    session (opts?: Record<string, unknown>): Corestore
    replicate (isInitiator: boolean | Duplex, opts?: Record<string, unknown>): Duplex
    createKeyPair (name: string): Promise<{ publicKey: Buffer, secretKey: Buffer }>
    watch (fn: (core: Hypercore) => void): void
    unwatch (fn: (core: Hypercore) => void): void
  }
}
