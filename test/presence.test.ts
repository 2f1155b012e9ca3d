import test, { type Assert } from 'brittle'
import net from 'node:net'
import { Crosscast, type PresenceEntry } from '../lib/index.ts'
import { until } from './helpers/node.ts'
import { createTestnet } from './helpers/testnet.ts'
import { spawnPeer } from './helpers/child-peer.ts'

async function offlineNode (t: Assert, sessionId: string, agent = sessionId): Promise<Crosscast> {
  const cc = await Crosscast.open({ storage: await t.tmp(), room: 'presence', secret: 's3cret', agent, sessionId, swarm: false, lan: false })
  t.teardown(() => cc.close())
  return cc
}

async function link (t: Assert, server: Crosscast, client: Crosscast): Promise<void> {
  const listener = net.createServer((socket) => { server.replicate(false, socket) })
  await new Promise<void>(resolve => listener.listen(0, '127.0.0.1', resolve))
  const socket = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1')
  client.replicate(true, socket)
  t.teardown(() => { socket.destroy(); listener.close() })
}

const sessions = (cc: Crosscast): string[] => cc.presence().map(e => e.session_id)

test('presence: each node lists the other with agent, session, writer and claims; a closed session leaves at once', async (t) => {
  const a = await offlineNode(t, 'sess-a', 'alice')
  const b = await offlineNode(t, 'sess-b', 'bob')
  t.alike(a.presence().map(e => [e.session_id, e.agent_id, e.writer, e.self, e.claims]), [['sess-a', 'alice', a.writerKey, true, []]], 'alone: only itself')
  const changes: PresenceEntry[][] = []
  a.on('presence', (entries: PresenceEntry[]) => changes.push(entries))
  await link(t, a, b)
  await until(() => sessions(a).includes('sess-b') && sessions(b).includes('sess-a'), 10_000, 'each to see the other')
  const bAtA = a.presence().find(e => e.session_id === 'sess-b')!
  t.is(bAtA.agent_id, 'bob')
  t.is(bAtA.writer, b.writerKey)
  t.is(bAtA.node, b.writerKey, 'hosted by B\'s node')
  t.is(bAtA.self, false)
  t.ok(Date.parse(bAtA.since) <= Date.parse(bAtA.last_seen), 'since and last_seen are timestamps')
  t.ok(changes.some(list => list.some(e => e.session_id === 'sess-b')), 'a presence event announced B')

  const f = await b.features.create('held by B').save()
  await b.claim(f.id)
  await until(() => a.presence().find(e => e.session_id === 'sess-b')?.claims.includes(f.id) === true, 10_000, 'A to list B\'s claim')
  t.alike(b.presence()[0].claims, [f.id], 'B lists its own claim')
  t.ok(changes.some(list => list.find(e => e.session_id === 'sess-b')?.claims.includes(f.id)), 'the claim was announced as a presence change')

  await b.close()
  await until(() => !sessions(a).includes('sess-b'), 5000, 'B to leave A\'s list')
  t.alike(sessions(a), ['sess-a'])
  t.is(changes[changes.length - 1].some(e => e.session_id === 'sess-b'), false, 'the last presence event has B gone')
})

test('presence: relayed on, so a chain A - B - C lists everyone, and nothing is written to the logs', async (t) => {
  const a = await offlineNode(t, 'sess-a')
  const b = await offlineNode(t, 'sess-b')
  const c = await offlineNode(t, 'sess-c')
  await link(t, a, b)
  await link(t, b, c)
  await until(() => sessions(a).length === 3 && sessions(c).length === 3, 15_000, 'A and C to see all three sessions')
  t.alike(sessions(c).slice(1), ['sess-a', 'sess-b'], 'others sorted after self')
  t.is(a.listEvents().events.length, 0, 'presence wrote no event')
  await c.close()
  await until(() => sessions(a).length === 2, 5000, 'C\'s goodbye to reach A through B')
})

test('presence: a session whose process is killed lapses on its peer (two processes on a testnet)', { timeout: 120_000 }, async (t) => {
  const testnet = await createTestnet(t)
  const a = await Crosscast.open({ storage: await t.tmp(), room: 'presence-kill', agent: 'alice', sessionId: 'sess-a', swarm: true, lan: false, bootstrap: testnet.bootstrap })
  t.teardown(() => a.close())
  const child = await spawnPeer(t, { storage: await t.tmp(), room: 'presence-kill', agent: 'bob', sessionId: 'sess-child', swarm: true, lan: false, bootstrap: testnet.bootstrap })
  await until(() => sessions(a).includes('sess-child'), 30_000, 'A to see the child session')
  t.is(a.presence().find(e => e.session_id === 'sess-child')?.writer, child.writerKey)
  await child.kill('SIGKILL')
  const killedAt = Date.now()
  await until(() => !sessions(a).includes('sess-child'), 40_000, 'the killed session to lapse')
  t.comment(`lapsed ${Date.now() - killedAt} ms after SIGKILL`)
})

// Issue 12 §5: a room of 24-32 nodes at Hyperswarm's default maxPeers (a full mesh)
// stalled after churn because every node relayed every announcement to every other
// peer (n² copies per interval) and re-flooded late copies: the presence queue
// grew to ~50,000 messages per node and the logs queued behind it never arrived.
// An announcement now lists the peers it reached at first hand, and no one relays
// it to them: in a full mesh a node receives one copy of each session per interval.
test('presence: in a full mesh of 8 nodes nobody relays, so each node receives about one announcement per peer per interval', { timeout: 90_000 }, async (t) => {
  const N = 8
  const nodes = await Promise.all(Array.from({ length: N }, (_, i) => offlineNode(t, `sess-${i}`)))
  const sockets: net.Socket[][] = nodes.map(() => [])
  for (let i = 0; i < N; i++) {
    for (let j = i + 1; j < N; j++) {
      const listener = net.createServer((socket) => { sockets[i].push(socket); nodes[i].replicate(false, socket) })
      await new Promise<void>(resolve => listener.listen(0, '127.0.0.1', resolve))
      const socket = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1')
      sockets[j].push(socket)
      nodes[j].replicate(true, socket)
      t.teardown(() => { socket.destroy(); listener.close() })
    }
  }
  await until(() => nodes.every(cc => sessions(cc).length === N), 20_000, 'every node to list every session')
  // Past the announcements every new connection brings; then only the interval's refreshes flow (no events are written).
  await new Promise(resolve => setTimeout(resolve, 1000))
  const read = (): number[] => sockets.map(list => list.reduce((n, s) => n + s.bytesRead, 0))
  const before = read()
  const intervals = 3
  await new Promise(resolve => setTimeout(resolve, intervals * 5000))
  const perNode = read().map((b, i) => b - before[i])
  // One announcement of a session with its `reached` list, encrypted and framed, is under 600 bytes; a node
  // ticks `intervals` or `intervals + 1` times in the window. Relaying to everyone would bring N - 2 more copies each.
  const bound = (intervals + 1) * (N - 1) * 600
  t.comment(`bytes received per node in ${intervals} intervals: ${perNode.join(' ')} (bound ${bound}; relaying to all would be about ${intervals * (N - 1) * (N - 1) * 300})`)
  t.alike(perNode.filter(b => b > bound), [], `every node received at most ${bound} bytes`)
  t.ok(nodes.every(cc => sessions(cc).length === N), 'and still lists every session')
})
