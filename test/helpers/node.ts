// Opens real nodes in temporary directories, closed at teardown. Offline by
// default (swarm: false, lan: false): tests that need peers pass a testnet.
import type { Assert } from 'brittle'
import net from 'node:net'
import { Crosscast, type CrosscastOptions } from '../../lib/index.ts'

export async function openNode (t: Assert, opts: Partial<CrosscastOptions> = {}): Promise<Crosscast> {
  const storage = opts.storage ?? await t.tmp()
  const cc = await Crosscast.open({ room: 'test-room', agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false, ...opts, storage })
  t.teardown(() => cc.close())
  return cc
}

/** Rows of the seed's audit query, oldest first. */
export function auditTrail (cc: Crosscast): Array<{ event_id: string, agent_id: string, event_type: string, resource_id: string, timestamp: string }> {
  return (cc.db.prepare(`SELECT event_id, agent_id, event_type, resource_id, timestamp
    FROM broadcast_events ORDER BY timestamp DESC LIMIT 100`).all() as Array<{ event_id: string, agent_id: string, event_type: string, resource_id: string, timestamp: string }>).reverse()
}

export function countEvents (cc: Crosscast): number {
  return (cc.db.prepare('SELECT count(*) AS n FROM broadcast_events').get() as { n: number }).n
}

/** Waits until `check` is true, polling, bounded by `timeoutMs`. */
export async function until (check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/** A TCP connection on 127.0.0.1 between two nodes through replicate(); cut() is a partition. */
export async function link (t: Assert, server: Crosscast, client: Crosscast): Promise<{ cut: () => Promise<void> }> {
  const sockets: net.Socket[] = []
  const listener = net.createServer((socket) => { sockets.push(socket); server.replicate(false, socket) })
  await new Promise<void>(resolve => listener.listen(0, '127.0.0.1', resolve))
  const socket = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1')
  sockets.push(socket)
  client.replicate(true, socket)
  const cut = async (): Promise<void> => {
    for (const s of sockets) s.destroy()
    await new Promise<void>(resolve => listener.close(() => resolve()))
    await until(() => server.status().peers.length === 0 && client.status().peers.length === 0, 10_000, 'both sides to see the link gone')
  }
  t.teardown(() => { for (const s of sockets) s.destroy(); listener.close() })
  return { cut }
}
