import test, { type Assert } from 'brittle'
import net from 'node:net'
import { Crosscast, contentHash } from '../lib/index.ts'
import { countEvents, until } from './helpers/node.ts'

async function offlineNode (t: Assert, sessionId: string, secret?: string): Promise<Crosscast> {
  const cc = await Crosscast.open({ storage: await t.tmp(), room: 'piped', secret, agent: sessionId, sessionId, swarm: false, lan: false })
  t.teardown(() => cc.close())
  return cc
}

/** A TCP connection on 127.0.0.1 between two nodes, through replicate() on both ends. */
async function pipe (t: Assert, server: Crosscast, client: Crosscast): Promise<net.Socket> {
  const listener = net.createServer((socket) => { server.replicate(false, socket) })
  await new Promise<void>(resolve => listener.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>(resolve => listener.close(() => resolve())))
  const socket = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1')
  client.replicate(true, socket)
  t.teardown(() => { socket.destroy() })
  return socket
}

test('replicate(): two nodes with no discovery at all sync over a plain TCP socket', async (t) => {
  const a = await offlineNode(t, 'sess-a', 's3cret')
  const b = await offlineNode(t, 'sess-b', 's3cret')
  await a.features.create('before the pipe').save()
  await pipe(t, a, b)
  await until(() => countEvents(b) === 1, 10_000, 'B to catch up')
  const f = await b.features.create('over the pipe').save()
  await until(() => countEvents(a) === 2, 10_000, 'A to receive B\'s event')
  t.is((await a.features.get(f.id))?.title, 'over the pipe')
  t.is(contentHash(a.db), contentHash(b.db))
  const peer = a.status().peers[0]
  t.is(peer.transport, 'stream')
  t.ok(peer.authenticated, 'the pipe passed the room handshake')
})

test('replicate(): a peer with the wrong secret gets nothing over the pipe', async (t) => {
  const a = await offlineNode(t, 'sess-a', 's3cret')
  const intruder = await offlineNode(t, 'sess-x', 'guess')
  await a.features.create('private').save()
  await pipe(t, a, intruder)
  await until(() => a.status().rejected.peers >= 1, 15_000, 'A to reject the intruder')
  t.is(countEvents(intruder), 0, 'the intruder received no event')
  t.exception(() => a.replicate('yes' as never, new net.Socket()), /isInitiator must be true or false/)
})
