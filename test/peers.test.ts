import test, { type Assert } from 'brittle'
import { Crosscast, contentHash, type BroadcastEvent, type CrosscastOptions } from '../lib/index.ts'
import { countEvents, until } from './helpers/node.ts'
import { createTestnet } from './helpers/testnet.ts'
import { spawnPeer } from './helpers/child-peer.ts'

type Net = { bootstrap: Array<{ host: string, port: number }> }

async function online (t: Assert, net: Net, opts: Partial<CrosscastOptions> & { sessionId: string }): Promise<Crosscast> {
  const storage = opts.storage ?? await t.tmp()
  const cc = await Crosscast.open({ room: 'peers', agent: 'claude', swarm: true, lan: false, bootstrap: net.bootstrap, ...opts, storage })
  t.teardown(() => cc.close())
  return cc
}

async function writeMany (cc: Crosscast, count: number, prefix: string, concurrency = 100): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const i = next++
      await cc.features.create(`${prefix} ${i}`).save()
    }
  }))
}

test('two sessions in one process: every SDK flow on A reaches B\'s subscriber and B\'s SQLite', async (t) => {
  const net = await createTestnet(t)
  const a = await online(t, net, { sessionId: 'sess-a' })
  const b = await online(t, net, { sessionId: 'sess-b', agent: 'copilot' })
  const atB: BroadcastEvent[] = []
  b.subscribe({ excludeOwn: true }, e => atB.push(e))

  const f = await a.features.create('User Authentication').setStatus('in_progress').setTrack('trk-00000123').save()
  f.status = 'done'
  await f.save()
  await f.blocks('feat-00000456').save()
  await f.blockedBy('feat-00000789').save()
  await f.comment('looks good')
  await a.tracks.create('Auth').setDescription('login').save()
  await a.spikes.create('Try OAuth').setFindings('works').save()
  await a.features.delete(f.id)
  await until(() => atB.length === 9, 30_000, 'B to receive all 9 events')
  t.alike(atB.map(e => e.event_type), ['feature_created', 'feature_updated', 'status_changed', 'link_added', 'link_added', 'comment_added', 'track_updated', 'spike_updated', 'feature_deleted'])
  t.ok(atB.every(e => e.session_id === 'sess-a' && e.agent_id === 'claude' && e.writer === a.writerKey), 'remote events carry the writer\'s session, agent and key')
  const local = a.listEvents({ limit: 100 }).events
  t.alike(atB.map(e => [e.event_id, e.payload, e.timestamp, e.parent]), local.map(e => [e.event_id, e.payload, e.timestamp, e.parent]), 'same ids, payloads, timestamps and parents on both sides')
  t.is(contentHash(b.db), contentHash(a.db), 'identical broadcast_events and state')

  // And back: B writes, A sees it.
  const seenAtA: string[] = []
  a.subscribe({ sessions: ['sess-b'] }, e => seenAtA.push(e.resource_id))
  const g = await b.features.create('From B').save()
  await until(() => seenAtA.length === 1, 10_000, 'A to receive B\'s event')
  t.alike(seenAtA, [g.id])
  const status = a.status()
  t.is(status.peers.length, 1, 'one peer connection (deduplicated)')
  t.is(status.peers[0].transport, 'swarm')
  t.ok(status.writers.some(w => !w.local && w.sessionId === 'sess-b' && w.lag === 0), 'B\'s writer is known with no lag')
})

test('three sessions in three processes that join at the same moment converge to identical content', { timeout: 120_000 }, async (t) => {
  const net = await createTestnet(t)
  const opts = async (sessionId: string): Promise<CrosscastOptions> => ({ storage: await t.tmp(), room: 'three', agent: sessionId, sessionId, swarm: true, lan: false, bootstrap: net.bootstrap })
  const peers = await Promise.all(['p1', 'p2', 'p3'].map(async id => spawnPeer(t, await opts(id))))
  await Promise.all(peers.map(p => p.call('write', { count: 300, concurrency: 20 })))
  await until(async () => (await Promise.all(peers.map(p => p.call<number>('count')))).every(n => n === 900), 60_000, 'every peer to hold 900 events')
  const hashes = await Promise.all(peers.map(p => p.call<string>('hash')))
  t.is(new Set(hashes).size, 1, `one content hash on all three: ${hashes[0].slice(0, 16)}`)
  const status = await peers[0].call<{ writers: Array<{ local: boolean }> }>('status')
  t.is(status.writers.filter(w => !w.local).length, 2, 'each peer knows the two other writers')
  await Promise.all(peers.map(p => p.call('close')))
})

test('offline: a session that was closed, and wrote while cut off, converges with the others when it rejoins', { timeout: 180_000 }, async (t) => {
  const net = await createTestnet(t)
  const a = await online(t, net, { sessionId: 'sess-a' })
  const b = await online(t, net, { sessionId: 'sess-b' })
  const cStorage = await t.tmp()
  let c = await Crosscast.open({ storage: cStorage, room: 'peers', agent: 'claude', sessionId: 'sess-c', swarm: true, lan: false, bootstrap: net.bootstrap })
  await c.features.create('C was here').save()
  await until(() => countEvents(a) === 1 && countEvents(b) === 1, 30_000, 'C\'s first event everywhere')
  await c.close()

  await Promise.all([writeMany(a, 2500, 'a'), writeMany(b, 2500, 'b')])
  // C keeps working with no network at all.
  c = await Crosscast.open({ storage: cStorage, room: 'peers', agent: 'claude', sessionId: 'sess-c', swarm: false, lan: false })
  await writeMany(c, 500, 'c offline')
  t.ok(countEvents(c) >= 501, 'C wrote while offline')
  await c.close()

  c = await online(t, net, { sessionId: 'sess-c', storage: cStorage })
  const total = 1 + 5000 + 500
  await until(() => countEvents(a) === total && countEvents(b) === total && countEvents(c) === total, 90_000, `all three to hold ${total} events`)
  t.is(contentHash(c.db), contentHash(a.db))
  t.is(contentHash(b.db), contentHash(a.db), 'all three identical')
})

test('relay: a session catches up on a writer that went offline, from a peer that holds its log', async (t) => {
  const net = await createTestnet(t)
  const a = await online(t, net, { sessionId: 'sess-a' })
  const b = await online(t, net, { sessionId: 'sess-b' })
  await writeMany(a, 200, 'a')
  await until(() => countEvents(b) === 200, 30_000, 'B to replicate A')
  await a.close()
  const c = await online(t, net, { sessionId: 'sess-c' })
  await until(() => countEvents(c) === 200, 30_000, 'C to get A\'s events from B')
  t.is(contentHash(c.db), contentHash(b.db))
  t.ok(c.status().writers.some(w => w.sessionId === 'sess-a' && w.lag === 0), 'C knows A\'s writer though it never met A')
})

test('partitioned concurrent updates of one field converge to the same winner and record the conflict everywhere', async (t) => {
  const net = await createTestnet(t)
  const [aDir, bDir] = [await t.tmp(), await t.tmp()]
  const open = (storage: string, sessionId: string, swarm: boolean): Promise<Crosscast> =>
    Crosscast.open({ storage, room: 'peers', agent: sessionId, sessionId, swarm, lan: false, bootstrap: net.bootstrap })
  let a = await open(aDir, 'sess-a', true)
  let b = await open(bDir, 'sess-b', true)
  const f = await a.features.create('Contested').setStatus('todo').save()
  await until(() => countEvents(b) === 1, 30_000, 'B to see the feature')
  await Promise.all([a.close(), b.close()])

  // Each side changes status and title without seeing the other.
  a = await open(aDir, 'sess-a', false)
  b = await open(bDir, 'sess-b', false)
  const fa = (await a.features.get(f.id))!
  fa.status = 'done'
  fa.title = 'Contested (A)'
  await fa.save()
  const fb = (await b.features.get(f.id))!
  fb.status = 'blocked'
  await fb.save()
  t.is(fa.lastEvents[0].parent, fb.lastEvents[0].parent, 'both updates have the same parent: they are concurrent')
  await Promise.all([a.close(), b.close()])

  a = await open(aDir, 'sess-a', true)
  b = await open(bDir, 'sess-b', true)
  t.teardown(() => Promise.all([a.close(), b.close()]))
  await until(() => countEvents(a) === 5 && countEvents(b) === 5, 30_000, 'both to hold all 5 events')
  const [sa, sb] = [(await a.features.get(f.id))!, (await b.features.get(f.id))!]
  t.is(sa.status, sb.status, `the same winner on both: ${sa.status}`)
  t.is(sa.title, 'Contested (A)', 'a field only one side changed keeps that change')
  const ca = a.conflicts({ resourceId: f.id })
  t.alike(ca, b.conflicts({ resourceId: f.id }), 'the same conflict rows on both')
  t.is(ca.length, 1, 'one conflict: status')
  t.is(ca[0].field, 'status')
  t.alike([ca[0].value_a, ca[0].value_b].sort(), ['blocked', 'done'], 'both values recorded')
  t.is(contentHash(a.db), contentHash(b.db))
})

test('a receiver SIGKILLed in the middle of a 20,000-event burst converges with no duplicate and no missing event', { timeout: 240_000 }, async (t) => {
  const net = await createTestnet(t)
  const a = await online(t, net, { sessionId: 'sess-a' })
  const storage = await t.tmp()
  const options: CrosscastOptions = { storage, room: 'peers', agent: 'receiver', sessionId: 'sess-r', swarm: true, lan: false, bootstrap: net.bootstrap }
  const receiver = await spawnPeer(t, options)
  const writing = writeMany(a, 20_000, 'burst', 200)
  await until(async () => (await receiver.call<number>('count')) > 2000, 60_000, 'the receiver to be mid-burst')
  await receiver.kill('SIGKILL')
  await writing
  const again = await spawnPeer(t, options)
  await until(async () => (await again.call<number>('count')) === 20_000, 90_000, 'the restarted receiver to hold all 20,000')
  t.is(await again.call<string>('hash'), contentHash(a.db), 'identical content: nothing missing, nothing twice')
  await again.call('close')
})
