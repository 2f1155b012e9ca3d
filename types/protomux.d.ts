// Only the parts of protomux 3 that crosscast calls.
declare module 'protomux' {
  import type { Encoder } from 'compact-encoding'

  export interface MessageOptions<T = any> {
    encoding?: Encoder<T>
    onmessage?: (message: T, channel: Channel) => unknown
    autoBatch?: boolean
  }

  export interface Message<T = any> {
    readonly type: number
    send (message: T, channel?: Channel): boolean
  }

  export interface ChannelOptions {
    protocol: string
    id?: Buffer | null
    aliases?: string[]
    unique?: boolean
    userData?: unknown
    handshake?: Encoder<any> | null
    messages?: Array<MessageOptions | null>
    onopen?: (handshake: any, channel: Channel) => unknown
    onclose?: (isRemote: boolean, channel: Channel) => unknown
    ondestroy?: (channel: Channel) => unknown
    ondrain?: (channel: Channel) => unknown
  }

  export interface Channel {
    readonly protocol: string
    readonly id: Buffer | null
    readonly opened: boolean
    readonly closed: boolean
    readonly destroyed: boolean
    readonly messages: Message[]
    userData: unknown
    open (handshake?: unknown): void
    close (): void
    addMessage<T = any> (opts: MessageOptions<T>): Message<T>
    fullyOpened (): Promise<boolean>
    fullyClosed (): Promise<void>
    cork (): void
    uncork (): void
  }

  export default class Protomux {
    constructor (stream: unknown, opts?: { alloc?: (size: number) => Buffer })
    readonly isProtomux: true
    readonly stream: unknown
    static from (stream: unknown, opts?: { alloc?: (size: number) => Buffer }): Protomux
    static isProtomux (value: unknown): value is Protomux
    createChannel (opts: ChannelOptions): Channel | null
    pair (opts: { protocol: string, id?: Buffer | null }, notify: (id: Buffer | null) => unknown): void
    unpair (opts: { protocol: string, id?: Buffer | null }): void
    opened (opts: { protocol: string, id?: Buffer | null }): boolean
    cork (): void
    uncork (): void
    isIdle (): boolean
  }
}
