// Issue 12 §1: cost follows activity. A node knows every writer but opens a
// log only while someone is behind on it or a session writes to it; a fresh
// peer still gets everything (the holder serves closed logs without opening
// them), an ended log stays closed, and a log that grows again is followed.
import test from 'brittle'
import { Crosscast, contentHash } from '../lib/index.ts'
import { countEvents, link, until } from './helpers/node.ts'
import { startGateway, post } from './helpers/gateway.ts'

const WRITERS = 300
const IDLE_MS = 200

async function open (storage: string, sessionId: string): Promise<Crosscast> {
  return await Crosscast.open({ storage, room: 'lifecycle', agent: 'claude', sessionId, swarm: false, lan: false, writerIdleMs: IDLE_MS })
}

function writer (cc: Crosscast, sessionId: string) {
  return cc.status().writers.find(w => w.sessionId === sessionId)
}

test('writer lifecycle: 300 writers; a reopened node opens none of the quiet logs, a fresh peer converges, an ended log stays closed, a log that grows again is followed', { timeout: 120_000 }, async (t) => {
  const storageA = await t.tmp()
  let a = await open(storageA, 'holder')
  for (let i = 0; i < WRITERS; i += 30) {
    await Promise.all(Array.from({ length: 30 }, async (_, j) => {
      const id = `w-${i + j}`
      const session = await a.session({ sessionId: id })
      await session.features.create(`feature of ${id}`).save()
      // Half of them end their log, half only close it (the gateway's idle close ends; a crash would not).
      await a.closeSession(id, { end: (i + j) % 2 === 0 })
    }))
  }
  t.is(a.status().logs.open, 1, 'only the node\'s own log is open once the sessions closed')
  t.is(writer(a, 'w-0')?.ended, true, 'an ended session is reported as ended')
  t.is(writer(a, 'w-1')?.ended, false, 'a closed one is not')
  const events = countEvents(a)
  await a.close()

  a = await open(storageA, 'holder')
  t.teardown(() => a.close())
  t.is(a.status().logs.known, WRITERS + 1, 'every writer is known after a restart')
  t.is(a.status().logs.opened, 1, 'and only the node\'s own log was opened')
  t.is(countEvents(a), events)

  const storageB = await t.tmp()
  let b = await open(storageB, 'fresh')
  let { cut } = await link(t, a, b)
  await until(() => countEvents(b) === events && contentHash(b.db) === contentHash(a.db), 60_000, 'the fresh peer to hold everything')
  t.pass(`the fresh peer holds all ${events} events with the identical content hash`)
  t.is(a.status().logs.opened, 1, 'the holder served the 300 logs without opening them')
  await until(() => b.status().logs.open === 1, 20_000, 'the fresh peer to close the logs it caught up on')
  t.pass('the fresh peer closed every quiet, projected log')

  // The ended log is not reopened on restart; nor is any other quiet one.
  await cut()
  await b.close()
  b = await open(storageB, 'fresh')
  t.teardown(() => b.close())
  t.is(b.status().logs.opened, 1, 'a restarted peer opens none of the 300 logs')
  const ended = writer(b, 'w-0')
  t.ok(ended !== undefined && !ended.open && ended.ended, 'w-0 is known as ended and closed')

  // w-0 (ended) and w-1 (closed) grow again: the peer hears the new lengths, reopens, projects, closes again.
  ;({ cut } = await link(t, a, b))
  const [s0, s1] = await Promise.all([a.session({ sessionId: 'w-0' }), a.session({ sessionId: 'w-1' })])
  await s0.features.create('w-0 writes again').save()
  await s1.features.create('w-1 writes again').save()
  await until(() => countEvents(b) === countEvents(a) && contentHash(b.db) === contentHash(a.db), 30_000, 'the peer to follow both logs again')
  t.pass('both logs are followed again, identical content')
  t.is(b.status().logs.opened, 3, 'the peer opened exactly those two logs')
  t.is(writer(b, 'w-0')?.ended, false, 'w-0 is no longer ended: it grew past its end marker')
  await a.closeSession('w-0', { end: true })
  await a.closeSession('w-1')
  await until(() => b.status().logs.open === 1, 20_000, 'the peer to close them again once quiet')
  t.pass('closed again once quiet')
  await cut()
})

test('writer lifecycle: a gateway X-Session-ID that wrote once and left is ended, closed, still its own signed writer, and not opened on restart', { timeout: 60_000 }, async (t) => {
  const { url, cc, gw, storage } = await startGateway(t, { sessionIdleMs: 200 })
  const ids = ['once-a', 'once-b', 'once-c']
  for (const id of ids) t.is((await post(url, '/api/broadcast/features', { title: `from ${id}` }, { 'x-agent-id': 'agent', 'x-session-id': id })).status, 201)
  await until(() => ids.every(id => writer(cc, id)?.open === false), 10_000, 'the idle sessions to be closed')
  for (const id of ids) t.ok(writer(cc, id)?.ended === true, `${id} ended its log`)
  const keys = new Set(ids.map(id => writer(cc, id)?.key))
  t.is(keys.size, ids.length, 'each X-Session-ID kept its own log (its own signing key)')
  const events = countEvents(cc)
  await gw.close()
  await cc.close()

  const again = await Crosscast.open({ storage, room: 'gateway-test', agent: 'gateway', sessionId: 'gateway', swarm: false, lan: false })
  t.teardown(() => again.close())
  t.is(again.status().logs.opened, 1, 'a restart opens only the node\'s own log')
  t.is(countEvents(again), events, 'and every event is still there')
})

test('writer lifecycle: a log a peer announced is not closed for idleness before it is fetched, however short writerIdleMs (a closed one would wait for an announcement that never comes)', { timeout: 120_000 }, async (t) => {
  const holder = await Crosscast.open({ storage: await t.tmp(), room: 'lifecycle', agent: 'claude', sessionId: 'holder', swarm: false, lan: false, writerIdleMs: 1 })
  t.teardown(() => holder.close())
  for (let i = 0; i < 100; i += 25) {
    await Promise.all(Array.from({ length: 25 }, async (_, j) => {
      const id = `w-${i + j}`
      await (await holder.session({ sessionId: id })).features.create(`feature of ${id}`).save()
      await holder.closeSession(id, { end: true })
    }))
  }
  // 1 ms: the sweep finds most logs quiet and projected (nothing fetched yet) long before their replication is up.
  const fresh = await Crosscast.open({ storage: await t.tmp(), room: 'lifecycle', agent: 'claude', sessionId: 'fresh', swarm: false, lan: false, writerIdleMs: 1 })
  t.teardown(() => fresh.close())
  await link(t, holder, fresh)
  await until(() => countEvents(fresh) === countEvents(holder) && contentHash(fresh.db) === contentHash(holder.db), 60_000, 'the fresh peer to hold every log')
  t.pass('the fresh peer holds every log, identical content')
  await until(() => fresh.status().logs.open === 1, 20_000, 'the fresh peer to close the logs it caught up on')
  t.pass('and closed them once fetched and projected')
})

test('writer lifecycle: every write reaches both readers of a 3-node mesh while their copies of the log close for idleness and reopen around each write (writes 0.3-3.3x writerIdleMs apart, some in bursts)', { timeout: 180_000 }, async (t) => {
  const idleMs = 50
  const nodes: Crosscast[] = []
  for (const id of ['writer', 'reader-1', 'reader-2']) {
    const cc = await Crosscast.open({ storage: await t.tmp(), room: 'lifecycle', agent: 'claude', sessionId: id, swarm: false, lan: false, writerIdleMs: idleMs })
    t.teardown(() => cc.close())
    nodes.push(cc)
  }
  const [writerNode, ...readers] = nodes
  await link(t, writerNode, readers[0])
  await link(t, writerNode, readers[1])
  await link(t, readers[0], readers[1])
  const feature = await writerNode.features.create('idle writes').save()
  for (let i = 0; i < 60; i++) {
    await new Promise(resolve => setTimeout(resolve, Math.floor(idleMs * (0.3 + (i % 37) / 12))))
    if (i % 20 === 19) await Promise.all(Array.from({ length: 200 }, (_, k) => feature.comment(`burst ${i}.${k}`)))
    else await feature.comment(`write ${i}`)
    const expected = countEvents(writerNode)
    for (const reader of readers) await until(() => countEvents(reader) === expected, 30_000, `write ${i} to reach ${reader.status().sessionId}`)
  }
  t.pass('every write reached both readers')
  for (const reader of readers) {
    t.is(contentHash(reader.db), contentHash(writerNode.db), `${reader.status().sessionId} holds identical content`)
    t.ok(reader.status().logs.opened > 10, `${reader.status().sessionId} closed and reopened the writer's log ${reader.status().logs.opened - 1} times`)
  }
})
