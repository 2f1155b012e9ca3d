// Only the parts of multicast-dns 7 that crosscast calls.
declare module 'multicast-dns' {
  import { EventEmitter } from 'node:events'

  export interface RemoteInfo { address: string, family: string, port: number, size: number }
  export interface TxtAnswer { name: string, type: 'TXT', ttl?: number, class?: string, flush?: boolean, data: Array<string | Buffer> | string | Buffer }
  export interface OtherAnswer { name: string, type: string, ttl?: number, class?: string, flush?: boolean, data?: unknown }
  export type Answer = TxtAnswer | OtherAnswer
  export interface Question { name: string, type: string, class?: string }
  export interface Packet {
    type: 'query' | 'response'
    id?: number
    flags?: number
    questions?: Question[]
    answers?: Answer[]
    additionals?: Answer[]
  }
  export interface MulticastDnsOptions {
    multicast?: boolean
    interface?: string
    bind?: string | false
    port?: number
    ip?: string
    ttl?: number
    loopback?: boolean
    reuseAddr?: boolean
  }
  export interface MulticastDNS extends EventEmitter {
    query (q: Packet | Question[] | string, cb?: (err: Error | null) => void): void
    respond (res: Packet | Answer[], cb?: (err: Error | null) => void): void
    respond (res: Packet | Answer[], rinfo: { port: number, address?: string }, cb?: (err: Error | null) => void): void
    destroy (cb?: () => void): void
    update (): void
    on (event: 'query', listener: (packet: Packet, rinfo: RemoteInfo) => void): this
    on (event: 'response', listener: (packet: Packet, rinfo: RemoteInfo) => void): this
    on (event: 'ready' | 'networkInterface', listener: () => void): this
    on (event: 'error' | 'warning', listener: (err: Error) => void): this
  }
  export default function multicastDns (opts?: MulticastDnsOptions): MulticastDNS
}
