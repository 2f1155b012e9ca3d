// Only the parts of blind-relay 1 that crosscast calls.
declare module 'blind-relay' {
  import { EventEmitter } from 'node:events'
  import type { Duplex } from 'node:stream'

  export class Server extends EventEmitter {
    constructor (opts: { createStream: (opts: Record<string, unknown>) => Duplex })
    readonly stats: { pairings: { matched: number, active: number }, sessions: { active: number } }
    accept (stream: Duplex, opts: { id: Buffer }): EventEmitter
    close (): Promise<void>
  }
}
