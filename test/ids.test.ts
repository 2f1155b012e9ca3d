import test from 'brittle'
import { Crosscast, newResourceId, type CrosscastOptions } from '../lib/index.ts'
import { decodeBlock, encodeBlock } from '../lib/events/codec.ts'
import { isResourceId, validateId } from '../lib/events/validate.ts'
import { openNode, until } from './helpers/node.ts'
import { startGateway, post, get } from './helpers/gateway.ts'
import { createTestnet } from './helpers/testnet.ts'
import { spawnPeer } from './helpers/child-peer.ts'

// Generated ids: the prefix, 9 base32 digits of creation time in ms, 7 of a per-millisecond counter.
const GENERATED = /^(feat|trk|spk)-[0-9a-hjkmnp-tv-z]{16}$/
const BASE32 = '0123456789abcdefghjkmnpqrstvwxyz'

function timeOf (id: string): number {
  let ms = 0
  for (const ch of id.slice(id.indexOf('-') + 1, id.indexOf('-') + 10)) ms = ms * 32 + BASE32.indexOf(ch)
  return ms
}

test('generated ids: prefix, creation time and counter in sortable base32; valid under the seed\'s id rule', (t) => {
  const before = Date.now()
  const ids = Array.from({ length: 5000 }, (_, i) => newResourceId((['feature', 'track', 'spike'] as const)[i % 3]))
  const after = Date.now()
  t.ok(ids.every(id => GENERATED.test(id)), `every id has the shape, e.g. ${ids[0]}`)
  t.ok(ids.every(id => isResourceId(id) && validateId(id, 'id') === id), 'every id passes validation')
  const labels = ids.map(id => id.slice(id.indexOf('-') + 1))
  t.ok(labels.every((label, i) => i === 0 || label > labels[i - 1]), 'each id sorts after the one made before it, within a millisecond too')
  t.ok(ids.every(id => timeOf(id) >= before && timeOf(id) <= after + 1), 'the time part is the creation time in ms')
})

test('generated ids keep increasing when the wall clock steps back', (t) => {
  const first = newResourceId('feature')
  const realNow = Date.now
  Date.now = () => realNow() - 3_600_000
  try {
    const later = Array.from({ length: 100 }, () => newResourceId('feature'))
    t.ok(later.every((id, i) => id > (i === 0 ? first : later[i - 1])), 'an hour back, ids still sort after the earlier ones')
  } finally {
    Date.now = realNow
  }
})

test('codec: a generated id travels as its label and round trips', (t) => {
  const id = newResourceId('feature')
  const event = { event_type: 'feature_created' as const, resource_id: id, agent_id: 'claude', hlc: Date.now() * 1000, parent: null, payload: { title: 'x', status: 'todo' as const } }
  t.alike(decodeBlock(encodeBlock('sess-1', [event])).events, [event])
  const chosen = encodeBlock('sess-1', [{ ...event, resource_id: 'feat-1' }]).byteLength
  t.is(encodeBlock('sess-1', [event]).byteLength, chosen + 15, 'a 16-character label, as a chosen one of that length would be')
})

test('the SDK creates features, tracks and spikes with generated ids; chosen ids still work beside them', async (t) => {
  const cc = await openNode(t)
  const f = await cc.features.create('generated').save()
  const track = await cc.tracks.create('generated').save()
  const spike = await cc.spikes.create('generated').save()
  t.ok(GENERATED.test(f.id) && GENERATED.test(track.id) && GENERATED.test(spike.id), `${f.id} ${track.id} ${spike.id}`)
  const chosen = await cc.features.create('chosen', { id: 'feat-123' }).save()
  t.is(chosen.id, 'feat-123')
  const next = await cc.features.create('later').save()
  t.ok(next.id > f.id, 'a later feature has a larger id')
  t.alike((await cc.features.list()).map(x => x.id), [f.id, 'feat-123', next.id], 'listed oldest first')
})

test('gateway: generated feature ids are returned, read and written back through the routes', async (t) => {
  const { url } = await startGateway(t)
  const created = await post(url, '/api/broadcast/features', { title: 'from REST' })
  t.is(created.status, 201)
  const id = created.body.feature_id as string
  t.ok(GENERATED.test(id), `a generated id: ${id}`)
  const read = await get(url, `/api/features/${id}`)
  t.is(read.status, 200)
  t.is(read.body.id, id)
  const status = await post(url, `/api/broadcast/features/${id}/status`, { new_status: 'done' })
  t.is(status.status, 200, 'the id passes the route\'s id pattern')
  // An id of the generated shape chosen by a client (made by another node, say) is accepted too.
  const foreign = newResourceId('feature')
  const upsert = await post(url, `/api/broadcast/features/${foreign}`, { title: 'made elsewhere' })
  t.is(upsert.status, 200)
  t.is((await get(url, `/api/features/${foreign}`)).body.title, 'made elsewhere')
  const batch = await post(url, '/api/broadcast/batch', { operations: [{ event_type: 'feature_created', payload: { title: 'batched' } }] })
  t.is(batch.status, 200)
  t.ok(GENERATED.test(batch.body.resource_ids[0]), 'a batch create gets a generated id')
})

test('two writers in two processes creating at once: every id unique, each writer\'s ids in its log order', { timeout: 120_000 }, async (t) => {
  const net = await createTestnet(t)
  const storages = [await t.tmp(), await t.tmp()]
  const opts = (i: number): CrosscastOptions => ({ storage: storages[i], room: 'ids', agent: `agent-${i}`, sessionId: `sess-${i}`, swarm: true, lan: false, bootstrap: net.bootstrap })
  const peers = await Promise.all([0, 1].map(i => spawnPeer(t, opts(i))))
  const perWriter = 3000
  await Promise.all(peers.map(p => p.call('write', { count: perWriter, concurrency: 64 }, 60_000)))
  await until(async () => (await Promise.all(peers.map(p => p.call<number>('count')))).every(n => n === 2 * perWriter), 60_000, 'both peers to hold every create')
  await Promise.all(peers.map(p => p.call('close')))

  const cc = await Crosscast.open({ ...opts(0), swarm: false })
  t.teardown(() => cc.close())
  const count = (sql: string): number => (cc.db.prepare(sql).get() as { n: number }).n
  t.is(count("SELECT count(DISTINCT resource_id) AS n FROM broadcast_events WHERE event_type = 'feature_created'"), 2 * perWriter, 'no two creates share an id')
  t.is(count('SELECT count(*) AS n FROM features'), 2 * perWriter, 'one feature per create')
  t.is(cc.status().writers.reduce((n, w) => n + w.skipped, 0), 0, 'every block of the other writer passed validation')
  const writers = cc.db.prepare('SELECT DISTINCT writer FROM broadcast_events').pluck().all() as string[]
  t.is(writers.length, 2)
  const spans: Array<[number, number]> = []
  for (const writer of writers) {
    const ids = cc.db.prepare("SELECT resource_id FROM broadcast_events WHERE writer_key = ? AND event_type = 'feature_created' ORDER BY seq, idx").pluck().all(Buffer.from(writer, 'hex')) as string[]
    t.ok(ids.every(id => GENERATED.test(id)), `${ids.length} generated ids from writer ${writer.slice(0, 8)}`)
    t.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), 'in the order its log holds them')
    spans.push([timeOf(ids[0]), timeOf(ids[ids.length - 1])])
  }
  t.comment(`creation spans (ms): ${spans.map(([a, b]) => `${a}..${b}`).join(' and ')}; ${spans[0][0] <= spans[1][1] && spans[1][0] <= spans[0][1] ? 'overlapping' : 'not overlapping on this run'}`)
})
