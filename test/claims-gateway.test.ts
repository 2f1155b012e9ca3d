import test, { type Assert } from 'brittle'
import net from 'node:net'
import { Crosscast } from '../lib/index.ts'
import { startGateway, post, get, request, openWs, dbSnapshot, until, WRITER } from './helpers/gateway.ts'

const OTHER = { 'x-agent-id': 'copilot-1', 'x-session-id': 'sess-2' }

async function createFeature (url: string, body: Record<string, unknown> = { title: 'F' }): Promise<string> {
  const res = await post(url, '/api/broadcast/features', body)
  return res.body.feature_id
}

test('a page of features carries each one\'s comments (oldest first) and live claim, exactly as its single read does', async (t) => {
  const { url } = await startGateway(t)
  const ids: string[] = []
  for (let i = 0; i < 6; i++) ids.push(await createFeature(url, { title: `listed ${i}` }))
  for (const text of ['first', 'second']) t.is((await post(url, `/api/broadcast/features/${ids[2]}/comments`, { comment_text: text })).status, 200)
  t.is((await post(url, `/api/broadcast/features/${ids[4]}/comments`, { comment_text: 'from the other session' }, OTHER)).status, 200)
  t.is((await post(url, `/api/broadcast/features/${ids[3]}/claim`, { ttl_s: 60 }, OTHER)).body.won, true)
  t.is((await post(url, `/api/broadcast/features/${ids[4]}/claim`, { ttl_s: 60 })).body.won, true)
  await request(url, 'DELETE', `/api/broadcast/features/${ids[4]}/claim`)

  const page = (await get(url, `/api/features?limit=4&after=${ids[0]}`)).body
  t.alike(page.features.map((f: { id: string }) => f.id), ids.slice(1, 5))
  const singles = []
  for (const id of ids.slice(1, 5)) singles.push((await get(url, `/api/features/${id}`)).body)
  t.alike(page.features, singles, 'each listed feature reads as GET /api/features/:id does')
  t.alike(page.features[1].comments.map((c: { comment_text: string }) => c.comment_text), ['first', 'second'], 'comments oldest first')
  t.is(page.features[2].claim.session_id, 'sess-2', 'the live claim and its holder')
  t.alike([page.features[0].comments, page.features[0].claim], [[], null], 'none of either')
  t.alike([page.features[3].comments.length, page.features[3].claim], [1, null], 'a released claim is no claim')
  const all = (await get(url, '/api/features')).body.features
  t.alike(all.slice(1, 5), singles, 'the unpaged list too')
})

test('If-Match: reads carry version; a stale version is 409 CONFLICT with the current item and writes nothing', async (t) => {
  const { cc, url } = await startGateway(t)
  const id = await createFeature(url, { title: 'Versioned' })
  const read = (await get(url, `/api/features/${id}`)).body
  t.is(typeof read.version, 'string')
  t.is(read.version, (await get(url, `/api/events?resource_id=${id}`)).body.events[0].event_id, 'version = id of the last event applied')
  t.is((await get(url, '/api/features')).body.features[0].version, read.version, 'lists carry it too')

  const first = await post(url, `/api/broadcast/features/${id}`, { title: 'first tab' }, { ...WRITER, 'if-match': `"${read.version}"` })
  t.is(first.status, 200, 'a quoted current version is accepted')
  const now = (await get(url, `/api/features/${id}`)).body.version
  t.is(now, first.body.event_id)

  const before = dbSnapshot(cc)
  const stale = await post(url, `/api/broadcast/features/${id}`, { title: 'second tab' }, { ...WRITER, 'if-match': read.version })
  t.is(stale.status, 409)
  t.is(stale.body.code, 'CONFLICT')
  t.ok(stale.body.message.includes(read.version), 'the message names the stale version')
  t.is(stale.body.current.title, 'first tab', 'the body carries the current item')
  t.is(stale.body.current.version, now)
  t.is(dbSnapshot(cc), before, 'nothing written')
  for (const [method, path, body] of [
    ['POST', `/api/broadcast/features/${id}/status`, { new_status: 'done' }],
    ['POST', `/api/broadcast/features/${id}/links`, { linked_feature_id: 'feat-00000001', link_type: 'related' }],
    ['POST', `/api/broadcast/features/${id}/comments`, { comment_text: 'hi' }],
    ['DELETE', `/api/broadcast/features/${id}`, undefined]
  ] as const) {
    const res = await request(url, method, path, body, { ...WRITER, 'if-match': read.version })
    t.is(`${method} ${path.replace(id, ':id')} ${res.status} ${res.body.code}`, `${method} ${path.replace(id, ':id')} 409 CONFLICT`)
  }
  t.is(dbSnapshot(cc), before, 'still nothing written')

  const bad = await post(url, `/api/broadcast/features/${id}`, { title: 'x' }, { ...WRITER, 'if-match': 'two words' })
  t.alike([bad.status, bad.body.code, bad.body.field], [400, 'INVALID_HEADER', 'If-Match'])
  const batch = await post(url, '/api/broadcast/batch', { operations: [{ event_type: 'feature_created', payload: { title: 'a' } }, { event_type: 'feature_created', payload: { title: 'b' } }] }, { ...WRITER, 'if-match': now })
  t.alike([batch.status, batch.body.code], [400, 'INVALID_HEADER'], 'If-Match on a write to several items is refused')
  t.is((await post(url, `/api/broadcast/features/${id}`, { title: 'star' }, { ...WRITER, 'if-match': '*' })).status, 200, '* matches any version of an existing item')

  for (const kind of ['tracks', 'spikes'] as const) {
    const itemId = kind === 'tracks' ? 'trk-0000000a' : 'spk-0000000a'
    await post(url, `/api/broadcast/${kind}/${itemId}`, { title: 'one' })
    const v = (await get(url, `/api/${kind}/${itemId}`)).body.version
    t.is((await post(url, `/api/broadcast/${kind}/${itemId}`, { title: 'two' }, { ...WRITER, 'if-match': v })).status, 200)
    const conflict = await post(url, `/api/broadcast/${kind}/${itemId}`, { title: 'three' }, { ...WRITER, 'if-match': v })
    t.alike([conflict.status, conflict.body.code, conflict.body.current.title], [409, 'CONFLICT', 'two'], `${kind}: stale version refused`)
  }
  const missing = await post(url, '/api/broadcast/tracks/trk-0000000b', { title: 'new' }, { ...WRITER, 'if-match': now })
  t.alike([missing.status, missing.body.code], [409, 'CONFLICT'], 'If-Match on an item that does not exist')

  // Two requests with the same version at once: one wins.
  const v = (await get(url, `/api/features/${id}`)).body.version
  const racing = await Promise.all(['x', 'y'].map(title => post(url, `/api/broadcast/features/${id}`, { title }, { ...WRITER, 'if-match': v })))
  t.alike(racing.map(r => r.status).sort(), [200, 409])
})

test('claims over REST: claim, CLAIMED for another session, release, ready; batch cannot write claims', async (t) => {
  const { cc, url } = await startGateway(t)
  const a = await createFeature(url, { title: 'A', priority: 'high' })
  const b = await createFeature(url, { title: 'B', priority: 'critical' })
  const c = await createFeature(url, { title: 'C' })

  const won = await post(url, `/api/broadcast/features/${a}/claim`, { ttl_s: 60 })
  t.is(won.status, 200)
  t.is(won.body.won, true)
  t.is(won.body.holder.session_id, 'sess-1')
  t.is(won.body.holder.agent_id, 'claude-1')
  t.is(won.body.expires_at, won.body.holder.expires_at)
  t.alike(cc.claimOf(a), won.body.holder, 'the SDK sees the same holder')
  t.alike((await get(url, `/api/features/${a}`)).body.claim, won.body.holder, 'a single-item read carries its claim')
  t.is((await get(url, `/api/features/${b}`)).body.claim, null)

  const refused = await post(url, `/api/broadcast/features/${a}/claim`, {}, OTHER)
  t.is(refused.status, 409)
  t.is(refused.body.code, 'CLAIMED')
  t.ok(/claude-1 \(session sess-1\)/.test(refused.body.message), `names the holder: ${refused.body.message}`)
  t.is(refused.body.current.session_id, 'sess-1')

  t.alike((await get(url, '/api/ready')).body.features.map((f: { id: string }) => f.id), [b, c], 'claimed A is not ready; critical before none')
  t.alike((await get(url, '/api/ready?limit=1')).body, { features: [(await get(url, `/api/features/${b}`)).body], count: 1 }, 'a ready feature reads as GET /api/features/:id does')
  t.is((await get(url, '/api/ready?limit=0')).status, 400)

  const notMine = await request(url, 'DELETE', `/api/broadcast/features/${a}/claim`, undefined, OTHER)
  t.alike([notMine.status, notMine.body.holder.session_id], [200, 'sess-1'], 'releasing what you do not hold changes nothing')
  const released = await request(url, 'DELETE', `/api/broadcast/features/${a}/claim`)
  t.alike(released.body, { success: true, holder: null })
  t.is((await post(url, `/api/broadcast/features/${a}/claim`, undefined, OTHER)).body.won, true, 'free again for another session (no body needed)')

  t.is((await post(url, '/api/broadcast/tracks/trk-0000000c', { title: 'T' })).status, 200)
  t.is((await post(url, '/api/broadcast/tracks/trk-0000000c/claim', {})).body.won, true, 'tracks can be claimed')
  t.is((await get(url, '/api/tracks/trk-0000000c')).body.claim.session_id, 'sess-1', 'and their reads carry the claim')
  const missing = await post(url, '/api/broadcast/features/feat-0000beef/claim', {})
  t.alike([missing.status, missing.body.code], [404, 'NOT_FOUND'])
  const badTtl = await post(url, `/api/broadcast/features/${c}/claim`, { ttl_s: 0 })
  t.alike([badTtl.status, badTtl.body.code, badTtl.body.field], [400, 'INVALID_FIELD', 'ttl_s'])
  const noHeader = await post(url, `/api/broadcast/features/${c}/claim`, {}, {})
  t.alike([noHeader.status, noHeader.body.code], [400, 'INVALID_HEADER'])
  const viaBatch = await post(url, '/api/broadcast/batch', { operations: [{ event_type: 'claim_added', resource_id: c, payload: { ttl_s: 60 } }] })
  t.alike([viaBatch.status, viaBatch.body.code], [400, 'INVALID_EVENT_TYPE'], 'a batch cannot bypass the holder check')

  const doc = (await get(url, '/docs/json')).body
  for (const path of ['/api/broadcast/features/{id}/claim', '/api/broadcast/tracks/{id}/claim', '/api/ready', '/api/presence']) t.ok(doc.paths[path] !== undefined, `OpenAPI documents ${path}`)
  t.ok(doc.paths['/api/broadcast/features/{id}/claim'].post.responses['409'] !== undefined, 'and its 409')
})

async function link (t: Assert, server: Crosscast, client: Crosscast): Promise<net.Socket> {
  const listener = net.createServer((socket) => { server.replicate(false, socket) })
  await new Promise<void>(resolve => listener.listen(0, '127.0.0.1', resolve))
  const socket = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1')
  client.replicate(true, socket)
  t.teardown(() => { socket.destroy(); listener.close() })
  return socket
}

test('presence over HTTP and WebSocket: GET /api/presence and presence frames when a peer comes and goes', async (t) => {
  const { cc, url } = await startGateway(t)
  const peer = await Crosscast.open({ storage: await t.tmp(), room: 'gateway-test', agent: 'bob', sessionId: 'sess-peer', swarm: false, lan: false })
  t.teardown(() => peer.close())

  const ws = await openWs(t, url)
  ws.send(JSON.stringify({ type: 'subscribe' }))
  const first = await ws.waitFor(f => f.type === 'presence')
  t.alike(first.sessions.map((s: { session_id: string, self: boolean }) => [s.session_id, s.self]), [['gateway', true]], 'after subscribe: who is online now')
  t.alike((await get(url, '/api/presence')).body.sessions.map((s: { session_id: string }) => s.session_id), ['gateway'])

  const socket = await link(t, cc, peer)
  const joined = await ws.waitFor(f => f.type === 'presence' && f.sessions.some((s: { session_id: string }) => s.session_id === 'sess-peer'), 10_000)
  const entry = joined.sessions.find((s: { session_id: string }) => s.session_id === 'sess-peer')
  t.alike([entry.agent_id, entry.writer, entry.self, entry.claims], ['bob', peer.writerKey, false, []])
  t.alike(Object.keys(entry).sort(), ['agent_id', 'claims', 'last_seen', 'node', 'self', 'session_id', 'since', 'writer'])
  const listed = (await get(url, '/api/presence')).body.sessions
  t.alike(listed.map((s: { session_id: string }) => s.session_id), ['gateway', 'sess-peer'])

  const from = ws.frames.length
  socket.destroy()
  const left = await ws.waitFor(f => f.type === 'presence', 10_000, from)
  t.alike(left.sessions.map((s: { session_id: string }) => s.session_id), ['gateway'], 'a frame without the peer once its connection is gone')
  await until(async () => (await get(url, '/api/presence')).body.sessions.length === 1, 5000, 'GET /api/presence to drop the peer')
})

test('claim_lost frame: a REST claimant cut off from an earlier claimant is told on the WebSocket', async (t) => {
  const { cc, url } = await startGateway(t)
  const peer = await Crosscast.open({ storage: await t.tmp(), room: 'gateway-test', agent: 'bob', sessionId: 'sess-peer', swarm: false, lan: false })
  t.teardown(() => peer.close())
  const id = await createFeature(url, { title: 'contended' })
  const first = await link(t, cc, peer)
  await until(async () => (await peer.features.get(id)) !== null, 10_000, 'the peer to see the feature')
  first.destroy()
  await until(() => cc.status().peers.length === 0 && peer.status().peers.length === 0, 10_000, 'the link to be down')

  const ws = await openWs(t, url)
  ws.send('subscribe')
  await ws.waitFor(f => f.type === 'presence')
  t.is((await peer.claim(id)).won, true, 'the peer claims first, alone')
  await new Promise(resolve => setTimeout(resolve, 5))
  t.is((await post(url, `/api/broadcast/features/${id}/claim`, { ttl_s: 60 })).body.won, true, 'the REST session claims later, alone')

  await link(t, cc, peer)
  const lost = await ws.waitFor(f => f.type === 'claim_lost', 10_000)
  t.alike([lost.resource_id, lost.session_id, lost.holder.session_id, lost.holder.writer], [id, 'sess-1', 'sess-peer', peer.writerKey])
  t.is((await get(url, `/api/ready`)).body.count, 0, 'held by the peer now, so not ready')
})
