// One crosscast node per round, in its own OS process, on a loopback DHT: how
// long from Crosscast.open() to the first authenticated peer, and how long a
// late joiner takes to catch up. Each `open` uses a fresh storage directory, so
// every round starts with new keys, as a new session does. Used by
// bench/connect.ts and test/connect-race.test.ts.
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Crosscast, type BootstrapNode } from '../../lib/index.ts'
import { servePeer, peerDir } from '../lib/peer.ts'

const dir = peerDir()
const POLL_MS = 2
let cc: Crosscast | null = null
let openedAt = 0n

function node (): Crosscast {
  if (cc === null) throw new Error('open first')
  return cc
}

function msSinceOpen (): number {
  return Number(process.hrtime.bigint() - openedAt) / 1e6
}

async function until (check: () => boolean, timeoutMs: number, what: string): Promise<number> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`)
    await sleep(POLL_MS)
  }
  return msSinceOpen()
}

servePeer({
  async open (args) {
    if (cc !== null) throw new Error('close the previous round first')
    openedAt = process.hrtime.bigint()
    cc = await Crosscast.open({
      storage: join(dir, `round-${String(args.round)}`),
      room: String(args.room),
      sessionId: String(args.sessionId),
      bootstrap: args.bootstrap as BootstrapNode[],
      lan: false
    })
    return { writerKey: cc.writerKey }
  },
  /** ms from open() until an authenticated peer is connected. */
  async firstPeer (args) {
    const c = node()
    return await until(() => c.status().peers.some(p => p.authenticated), Number(args.timeoutMs ?? 30_000), 'an authenticated peer')
  },
  /** ms from open() until `count` events are projected. */
  async events (args) {
    const c = node()
    const count = Number(args.count)
    return await until(() => c.status().events.total >= count, Number(args.timeoutMs ?? 60_000), `${count} events`)
  },
  async write (args) {
    const c = node()
    const count = Number(args.count)
    let next = 0
    await Promise.all(Array.from({ length: Math.min(16, count) }, async () => {
      while (next < count) await c.features.create(`connect ${next++}`).save()
    }))
    return c.status().events.total
  },
  status () {
    return node().status()
  },
  /** Closes this round's node; returns how long close() took. */
  async close () {
    const c = node()
    cc = null
    const started = process.hrtime.bigint()
    await c.close()
    return Number(process.hrtime.bigint() - started) / 1e6
  }
}, async () => { await cc?.close() })
