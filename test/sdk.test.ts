import test from 'brittle'
import { Crosscast, contentHash, type BroadcastEvent, type SubscriptionFilter } from '../lib/index.ts'
import { openNode, auditTrail, countEvents, until } from './helpers/node.ts'

function shape (events: BroadcastEvent[]): Array<[string, string, unknown]> {
  return events.map(e => [e.event_type, e.resource_id, e.payload])
}

test('every SDK flow writes exactly the seed\'s events, and the seed\'s SQL audit query returns them', async (t) => {
  const cc = await openNode(t)
  const received: BroadcastEvent[] = []
  cc.subscribe({}, e => received.push(e))

  const f = await cc.features.create('User Authentication').setStatus('in_progress').setTrack('trk-00000123').save()
  t.alike(shape(f.lastEvents), [['feature_created', f.id, { title: 'User Authentication', status: 'in_progress', track_id: 'trk-00000123' }]])
  t.ok(/^feat-[0-9a-z]{16}$/.test(f.id), 'feature id is feat- and 16 base32 digits')

  f.status = 'done'
  await f.save()
  t.alike(shape(f.lastEvents), [
    ['feature_updated', f.id, { status: 'done' }],
    ['status_changed', f.id, { old_status: 'in_progress', new_status: 'done' }]
  ], 'status change → feature_updated + status_changed')
  t.is(f.lastEvents[0].seq, f.lastEvents[1].seq, 'the events of one save share a block')

  await f.blocks('feat-00000456').save()
  t.alike(shape(f.lastEvents), [['link_added', f.id, { linked_feature_id: 'feat-00000456', link_type: 'blocks' }]])
  await f.blockedBy('feat-00000789').save()
  t.alike(shape(f.lastEvents), [['link_added', f.id, { linked_feature_id: 'feat-00000789', link_type: 'depends_on' }]])
  const comment = await f.comment('looks good')
  t.alike(shape([comment]), [['comment_added', f.id, { comment_text: 'looks good', author: 'claude' }]])

  f.title = 'User Auth v2'
  f.description = 'OAuth and passwords'
  await f.save()
  t.alike(shape(f.lastEvents), [['feature_updated', f.id, { title: 'User Auth v2', description: 'OAuth and passwords' }]], 'only changed fields, no status_changed')
  await f.save()
  t.is(f.lastEvents.length, 0, 'a save with no change writes nothing')

  const got = await cc.features.get(f.id)
  t.is(got?.status, 'done')
  t.is(got?.title, 'User Auth v2')
  t.alike(got?.links.map(l => [l.linked_feature_id, l.link_type]), [['feat-00000456', 'blocks'], ['feat-00000789', 'depends_on']])
  t.is(got?.comments()[0].comment_text, 'looks good')
  const other = await cc.features.create('Other').setTrack('trk-00000999').save()
  t.alike((await cc.features.list({ status: 'done', track: 'trk-00000123' })).map(x => x.id), [f.id], 'list by status and track')
  t.alike((await cc.features.list({ track: 'trk-00000999' })).map(x => x.id), [other.id])

  const track = await cc.tracks.create('Auth').setDescription('everything login').save()
  t.alike(shape(track.lastEvents), [['track_updated', track.id, { title: 'Auth', description: 'everything login' }]])
  t.ok(/^trk-[0-9a-z]{16}$/.test(track.id))
  const spike = await cc.spikes.create('Try OAuth').setFindings('works with PKCE').save()
  t.alike(shape(spike.lastEvents), [['spike_updated', spike.id, { title: 'Try OAuth', findings: 'works with PKCE' }]])
  t.ok(/^spk-[0-9a-z]{16}$/.test(spike.id))
  spike.findings = 'PKCE required'
  await spike.save()
  t.alike(shape(spike.lastEvents), [['spike_updated', spike.id, { findings: 'PKCE required' }]])

  const deleted = await cc.features.delete(f.id)
  t.alike(shape([deleted]), [['feature_deleted', f.id, { feature_id: f.id }]])
  t.is(await cc.features.get(f.id), null, 'a deleted feature is gone')

  const expected = ['feature_created', 'feature_updated', 'status_changed', 'link_added', 'link_added', 'comment_added', 'feature_updated', 'feature_created', 'track_updated', 'spike_updated', 'spike_updated', 'feature_deleted']
  t.alike(received.map(e => e.event_type), expected, 'the subscriber saw every event in order')
  const trail = auditTrail(cc)
  t.alike(trail.map(r => r.event_type), expected, 'the seed\'s audit query returns them')
  t.alike(trail.map(r => r.event_id), received.map(e => e.event_id))
  t.ok(trail.every(r => r.agent_id === 'claude' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(r.timestamp)), 'agent and ISO timestamps')
  const e = received[2]
  for (const key of ['event_id', 'event_type', 'resource_id', 'resource_type', 'agent_id', 'session_id', 'payload', 'timestamp', 'cursor']) t.ok(key in e, `subscriber events carry ${key}`)
  t.is(e.session_id, 'sess-1')
  t.is(e.resource_type, 'feature')
  t.is(e.parent, received[1].event_id, 'parent is the last event seen on that resource')
  t.ok(received.every((ev, i) => i === 0 || ev.cursor > received[i - 1].cursor), 'cursors increase')
})

test('a created feature is returned as the projection stores it, for generated and chosen ids alike', async (t) => {
  const cc = await openNode(t)
  const other = await cc.features.create('dependency').save()
  const built = (b: ReturnType<typeof cc.features.create>) => b.setStatus('blocked').setDescription('with every field').setTags(['api', 'auth']).setPriority('high').setTrack('trk-7').blocks('feat-9').blockedBy(other.id)
  const generated = await built(cc.features.create('generated id')).save()
  const chosen = await built(cc.features.create('chosen id', { id: 'feat-42' })).save()
  for (const f of [generated, chosen]) {
    t.alike(f.toJSON(), (await cc.features.get(f.id))?.toJSON(), `${f.id}: the returned feature equals the one read back`)
    t.is(f.version, f.lastEvents[f.lastEvents.length - 1].event_id, 'its version is the last event it wrote')
  }
  // A chosen id another session already wrote: the merged state is returned.
  await (await cc.session({ sessionId: 'sess-2' })).features.create('first', { id: 'feat-shared' }).setDescription('from sess-2').save()
  const merged = await cc.features.create('second', { id: 'feat-shared' }).save()
  t.is(merged.title, 'second')
  t.is(merged.description, 'from sess-2', 'a field only the other session set is kept')
})

test('restart with the same session id continues the same log; a second session has its own', async (t) => {
  const storage = await t.tmp()
  const a = await Crosscast.open({ storage, agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })
  const f = await a.features.create('Persisted').save()
  const key = a.writerKey
  const firstLength = a.status().writers.find(w => w.key === key)?.length
  await a.close()

  const b = await Crosscast.open({ storage, agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })
  t.teardown(() => b.close())
  t.is(b.writerKey, key, 'same session id, same log')
  t.is((await b.features.get(f.id))?.title, 'Persisted', 'state survives the restart')
  const g = await b.features.create('After restart').save()
  t.is(g.lastEvents[0].seq, firstLength, 'the log continues where it stopped')
  t.is(countEvents(b), 2)

  const other = await b.session({ sessionId: 'sess-2', agent: 'copilot' })
  t.not(other.writerKey, key, 'another session id has its own log')
  t.is(await b.session({ sessionId: 'sess-2' }), other, 'the same session id returns the same session')
  const h = await other.features.create('From copilot').save()
  t.is(h.lastEvents[0].session_id, 'sess-2')
  t.is(h.lastEvents[0].agent_id, 'copilot')
  t.is(h.lastEvents[0].writer, other.writerKey)
  t.is(h.lastEvents[0].seq, 0)
  t.is((await b.features.list()).length, 3, 'one projection holds every session of the node')
})

test('a second process cannot open the same storage: STORAGE_LOCKED', async (t) => {
  const storage = await t.tmp()
  const a = await Crosscast.open({ storage, swarm: false, lan: false })
  t.teardown(() => a.close())
  await t.exception(Crosscast.open({ storage, swarm: false, lan: false }), /open in another process/)
})

test('subscriptions: each filter delivers exactly its events', async (t) => {
  const cc = await openNode(t)
  const copilot = await cc.session({ sessionId: 'sess-2', agent: 'copilot' })
  const got: Record<string, string[]> = {}
  const sub = (name: string, filter: Parameters<Crosscast['subscribe']>[0]): void => {
    got[name] = []
    cc.subscribe(filter, e => got[name].push(`${e.event_type}:${e.resource_id}`))
  }
  const track = await cc.tracks.create('Auth', { id: 'trk-0000000a' }).save()
  sub('types', { eventTypes: ['status_changed'] })
  sub('resourceTypes', { resourceTypes: ['spike'] })
  sub('resourceIds', { resourceIds: ['feat-00000001'] })
  sub('track', { track: track.id })
  sub('agents', { agents: ['copilot'] })
  sub('sessions', { sessions: ['sess-1'] })
  sub('excludeSessions', { excludeSessions: ['sess-1'] })
  sub('excludeOwn', { excludeOwn: true })
  sub('combined', { eventTypes: ['feature_updated'], agents: ['claude'] })

  const f1 = await cc.features.create('One', { id: 'feat-00000001' }).setTrack(track.id).save()
  f1.status = 'in_progress'
  await f1.save()
  const f2 = await copilot.features.create('Two', { id: 'feat-00000002' }).save()
  f2.title = 'Two!'
  await f2.save()
  await cc.spikes.create('S', { id: 'spk-00000003' }).save()
  track.description = 'changed'
  await track.save()

  t.alike(got.types, ['status_changed:feat-00000001'])
  t.alike(got.resourceTypes, ['spike_updated:spk-00000003'])
  t.alike(got.resourceIds, ['feature_created:feat-00000001', 'feature_updated:feat-00000001', 'status_changed:feat-00000001'])
  t.alike(got.track, ['feature_created:feat-00000001', 'feature_updated:feat-00000001', 'status_changed:feat-00000001', 'track_updated:trk-0000000a'], 'the track and its features')
  t.alike(got.agents, ['feature_created:feat-00000002', 'feature_updated:feat-00000002'])
  t.alike(got.sessions, ['feature_created:feat-00000001', 'feature_updated:feat-00000001', 'status_changed:feat-00000001', 'spike_updated:spk-00000003', 'track_updated:trk-0000000a'])
  t.alike(got.excludeSessions, got.agents)
  t.alike(got.excludeOwn, [], 'every event here was written by this node')
  t.alike(got.combined, ['feature_updated:feat-00000001'])

  // The same filters replayed from a cursor return the same events.
  for (const [name, filter] of [['track', { track: track.id }], ['agents', { agents: ['copilot'] }]] as Array<[string, SubscriptionFilter]>) {
    const replayed: string[] = []
    const off = cc.subscribe(filter, e => replayed.push(`${e.event_type}:${e.resource_id}`), { since: 1 })
    off()
    t.alike(replayed, got[name], `${name} replay matches live`)
  }
  t.exception(() => cc.subscribe({ eventTypes: ['nope' as never] }, () => {}), /event_type|eventTypes/)
  t.exception(() => cc.subscribe({ colour: 'red' } as never, () => {}), /not a filter field/)
})

test('subscriptions: since replays what was missed, then goes live, with no gap and no duplicate', async (t) => {
  const cc = await openNode(t)
  for (let i = 0; i < 300; i++) await cc.features.create(`before ${i}`).save()
  const cursor = 100
  const seen: number[] = []
  const iterator = cc.events({ since: cursor })
  // Writers keep going while the iterator replays.
  const writing = (async () => {
    for (let i = 0; i < 300; i++) await cc.features.create(`during ${i}`).save()
  })()
  for await (const event of iterator) {
    seen.push(event.cursor)
    if (seen.length === 500) break
  }
  await writing
  t.is(seen.length, 500)
  t.alike(seen, Array.from({ length: 500 }, (_, i) => cursor + 1 + i), 'every cursor after since, once, in order')

  const callbackSeen: number[] = []
  const off = cc.subscribe({}, e => callbackSeen.push(e.cursor), { since: 590 })
  await cc.features.create('live').save()
  off()
  t.alike(callbackSeen, [591, 592, 593, 594, 595, 596, 597, 598, 599, 600, 601], 'callback: replay then live')
})

test('a slow subscriber does not stall the projector or other subscribers', async (t) => {
  const cc = await openNode(t)
  const fast: number[] = []
  cc.subscribe({}, e => fast.push(e.cursor))
  const slow = cc.events({})
  const first = slow.next() // the slow consumer reads one event, then stops reading
  await Promise.all(Array.from({ length: 3000 }, (_, i) => cc.features.create(`f${i}`).save()))
  t.is(fast.length, 3000, 'the fast subscriber got everything while the slow one did not read')
  t.is((await first).value?.cursor, 1)
  // When it resumes it gets every event, in order, from the database rather than an unbounded queue.
  let expected = 2
  let ok = true
  for (let i = 0; i < 2999; i++) {
    const { value } = await slow.next()
    if (value?.cursor !== expected++) ok = false
  }
  t.ok(ok, 'the slow subscriber resumes without a gap or duplicate')
  await slow.return(undefined)
})

test('group commit: 1,000 concurrent saves end in far fewer blocks, each event once, in order per caller', async (t) => {
  const cc = await openNode(t)
  const start = cc.status().writers[0].length
  const callers = 50
  const perCaller = 20
  const results = await Promise.all(Array.from({ length: callers }, async (_, c) => {
    const ids: string[] = []
    const f = await cc.features.create(`caller ${c}`).save()
    ids.push(...f.lastEvents.map(e => e.event_id))
    for (let i = 1; i < perCaller; i++) {
      f.title = `caller ${c} v${i}`
      await f.save()
      ids.push(...f.lastEvents.map(e => e.event_id))
    }
    return ids
  }))
  const blocks = cc.status().writers[0].length - start
  const total = callers * perCaller
  t.is(countEvents(cc), total, 'every event present')
  const ids = new Set(results.flat())
  t.is(ids.size, total, 'each event once')
  t.ok(blocks <= total / 10, `${total} saves from ${callers} concurrent callers in ${blocks} blocks`)
  const cursorOf = cc.db.prepare('SELECT cursor FROM broadcast_events WHERE event_id = ?')
  const inOrder = results.every(list => list.every((id, i) => i === 0 || (cursorOf.get(id) as { cursor: number }).cursor > (cursorOf.get(list[i - 1]) as { cursor: number }).cursor))
  t.ok(inOrder, 'each caller\'s events are in its order')

  const burstStart = cc.status().writers[0].length
  await Promise.all(Array.from({ length: 1000 }, (_, i) => cc.features.create(`burst ${i}`).save()))
  const burstBlocks = cc.status().writers[0].length - burstStart
  t.ok(burstBlocks <= 4, `1,000 saves issued at once: ${burstBlocks} blocks`)
  const status = cc.status()
  t.is(status.events.total, countEvents(cc), 'status() counts every stored event')
  t.ok(status.events.perSecond >= Math.floor(2000 / 10), `status() reports the recent rate (${status.events.perSecond}/s over 10 s)`)
})

test('reindex rebuilds the database from the logs with the same content', async (t) => {
  const cc = await openNode(t)
  const other = await cc.session({ sessionId: 'sess-2', agent: 'copilot' })
  for (let i = 0; i < 50; i++) {
    const f = await (i % 2 === 0 ? cc : other).features.create(`f${i}`).setPriority('high').save()
    f.status = 'blocked'
    await f.save()
    if (i % 5 === 0) await f.blocks('feat-00000abc').save()
    if (i % 7 === 0) await f.comment('note')
    if (i % 9 === 0) await cc.features.delete(f.id)
  }
  await cc.tracks.create('T').save()
  const before = contentHash(cc.db)
  const count = countEvents(cc)
  let progressCalls = 0
  await cc.reindex(() => { progressCalls++ })
  t.is(countEvents(cc), count)
  t.is(contentHash(cc.db), before, 'identical content after reindex')
  t.ok(progressCalls >= 2, 'progress reported per log')
  const f = await cc.features.create('after reindex').save()
  t.ok(f.lastEvents[0].cursor > 0, 'writes continue after reindex')

  // Deleting the database file is safe: reopening rebuilds it from the logs.
  const storage = cc.storage
  await cc.close()
  const { rmSync } = await import('node:fs')
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${storage}/crosscast.db${suffix}`, { force: true })
  const again = await Crosscast.open({ storage, agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })
  t.teardown(() => again.close())
  await again.session({ sessionId: 'sess-2' })
  await until(() => countEvents(again) === count + 1, 5000, 'rebuild')
  t.is(countEvents(again), count + 1, 'a deleted database is rebuilt from the logs')
})

test('features.list pages oldest first with limit and after; a bad limit is INVALID_OPTION', async (t) => {
  const cc = await openNode(t)
  const ids: string[] = []
  for (let i = 0; i < 5; i++) ids.push((await cc.features.create(`page ${i}`).blocks('feat-00000abc').save()).id)
  const first = await cc.features.list({ limit: 2 })
  t.alike(first.map(f => f.id), ids.slice(0, 2))
  const second = await cc.features.list({ limit: 2, after: first[1].id })
  t.alike(second.map(f => f.id), ids.slice(2, 4))
  t.alike((await cc.features.list({ after: ids[3] })).map(f => f.id), ids.slice(4))
  t.alike((await cc.features.list()).map(f => f.links.map(l => l.linked_feature_id)), ids.map(() => ['feat-00000abc']), 'links come with a listed page')
  await t.exception(() => cc.features.list({ limit: 0 }), /limit must be an integer from 1 to 1000/)
})

test('a database in the previous layout (schema 2) is rebuilt from the logs on open, with the same content', async (t) => {
  const cc = await openNode(t)
  for (let i = 0; i < 20; i++) {
    const f = await cc.features.create(`old ${i}`).save()
    f.status = 'done'
    await f.save()
  }
  const count = countEvents(cc)
  const before = contentHash(cc.db)
  const storage = cc.storage
  await cc.close()
  const BetterSqlite3 = (await import('better-sqlite3')).default
  const db = new BetterSqlite3(`${storage}/crosscast.db`)
  db.exec(`DROP TABLE broadcast_events; CREATE TABLE broadcast_events (event_id TEXT PRIMARY KEY, event_type TEXT NOT NULL, resource_id TEXT NOT NULL, resource_type TEXT NOT NULL,
    agent_id TEXT NOT NULL, session_id TEXT NOT NULL, payload JSON, timestamp TEXT NOT NULL, hlc INTEGER NOT NULL, writer TEXT NOT NULL, seq INTEGER NOT NULL,
    idx INTEGER NOT NULL, parent TEXT, cursor INTEGER NOT NULL UNIQUE); PRAGMA user_version = 2`)
  db.close()
  const again = await Crosscast.open({ storage, agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })
  t.teardown(() => again.close())
  await until(() => countEvents(again) === count, 5000, 'rebuild')
  t.is(contentHash(again.db), before, 'identical content after the rebuild')
  t.is((await again.features.list({ status: 'done' })).length, 20)
})

test('status changes keep a feature\'s track and creation order, a move to another track is stored, and both survive a reopen', async (t) => {
  const storage = await t.tmp()
  const a = await Crosscast.open({ storage, agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })
  const first = await a.features.create('first').setTrack('trk-aaaaaaaa').save()
  const second = await a.features.create('second').setTrack('trk-aaaaaaaa').save()
  for (const status of ['in_progress', 'blocked', 'done'] as const) {
    first.status = status
    await first.save()
  }
  second.trackId = 'trk-bbbbbbbb'
  await second.save()
  second.status = 'done'
  await second.save()
  const check = async (cc: Crosscast, when: string): Promise<void> => {
    t.alike((await cc.features.list({ track: 'trk-aaaaaaaa' })).map(f => [f.id, f.status]), [[first.id, 'done']], `${when}: track a holds the first, done`)
    t.alike((await cc.features.list({ track: 'trk-bbbbbbbb' })).map(f => [f.id, f.status]), [[second.id, 'done']], `${when}: track b holds the moved one`)
    t.alike((await cc.features.list()).map(f => f.id), [first.id, second.id], `${when}: oldest first`)
    t.alike((await cc.features.list({ limit: 1, after: first.id })).map(f => f.id), [second.id], `${when}: a page after the first`)
  }
  await check(a, 'live')
  await a.close()
  const b = await Crosscast.open({ storage, agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })
  t.teardown(() => b.close())
  await check(b, 'reopened')
})
