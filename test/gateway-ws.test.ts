import test from 'brittle'
import { startGateway, post, get, openWs, WsClient, until } from './helpers/gateway.ts'

async function createFeature (url: string, title = 'F', headers?: Record<string, string>): Promise<string> {
  const res = await post(url, '/api/broadcast/features', { title }, headers)
  return res.body.feature_id
}

test('seed protocol: text subscribe and ping, then broadcast_event frames', async (t) => {
  const { url } = await startGateway(t)
  const ws = await openWs(t, url)
  ws.send('subscribe')
  const subscribed = await ws.waitFor(f => f.type === 'subscribed')
  t.ok(typeof subscribed.client_id === 'string' && subscribed.client_id.length > 0)
  ws.send('ping')
  t.alike(await ws.waitFor(f => f.type === 'pong'), { type: 'pong' })

  const id = await createFeature(url)
  const res = await post(url, `/api/broadcast/features/${id}`, { title: 'Updated Title', status: 'in_progress' })
  const [created, updated, changed] = await ws.waitForEvents(3)
  t.is(created.event_type, 'feature_created')
  t.is(updated.event_type, 'feature_updated')
  t.is(updated.event_id, res.body.event_id)
  t.is(changed.event_type, 'status_changed')
  t.alike(changed.payload, { old_status: 'todo', new_status: 'in_progress' })
  t.alike(Object.keys(updated).sort(), ['agent_id', 'cursor', 'event_id', 'event_type', 'payload', 'resource_id', 'resource_type', 'session_id', 'timestamp', 'type'])
  t.is(updated.agent_id, 'claude-1')
  t.is(updated.session_id, 'sess-1')
  t.is(updated.resource_type, 'feature')
  t.ok(created.cursor < updated.cursor && updated.cursor < changed.cursor, 'cursors increase')
})

test('a client that never sends subscribe still gets events (the seed JavaScript client)', async (t) => {
  const { url } = await startGateway(t)
  const ws = await openWs(t, url)
  const id = await createFeature(url)
  const [e] = await ws.waitForEvents(1)
  t.is(e.resource_id, id)
})

test('JSON subscribe filters by event type, resource, track and session', async (t) => {
  const { url } = await startGateway(t)
  const a = await createFeature(url, 'A')
  const b = await createFeature(url, 'B')
  await post(url, '/api/broadcast/tracks/trk-000000aa', { title: 'Track' })
  const inTrack = (await post(url, '/api/broadcast/features', { title: 'C', track_id: 'trk-000000aa' })).body.feature_id

  const byType = await openWs(t, url)
  byType.send({ type: 'subscribe', filter: { event_types: ['status_changed'] } })
  const byResource = await openWs(t, url)
  byResource.send({ type: 'subscribe', filter: { resource_ids: [b] } })
  const byTrack = await openWs(t, url)
  byTrack.send({ type: 'subscribe', filter: { track_id: 'trk-000000aa' } })
  const notMine = await openWs(t, url)
  notMine.send({ type: 'subscribe', filter: { exclude_session: 'sess-1' } })
  const tracksOnly = await openWs(t, url)
  tracksOnly.send({ type: 'subscribe', filter: { resource_types: ['track'] } })
  for (const c of [byType, byResource, byTrack, notMine, tracksOnly]) await c.waitFor(f => f.type === 'subscribed')

  await post(url, `/api/broadcast/features/${a}/status`, { new_status: 'done' })
  await post(url, `/api/broadcast/features/${b}`, { title: 'B2' })
  await post(url, `/api/broadcast/features/${inTrack}/status`, { new_status: 'blocked' })
  await post(url, '/api/broadcast/tracks/trk-000000aa', { description: 'd' })
  await post(url, `/api/broadcast/features/${a}`, { title: 'from another session' }, { 'x-agent-id': 'copilot', 'x-session-id': 'sess-2' })
  // A last event everyone sees marks the end of the stream for each client.
  const marker = await createFeature(url, 'marker', { 'x-agent-id': 'copilot', 'x-session-id': 'sess-2' })
  await byType.waitFor(f => f.type === 'broadcast_event' && f.event_type === 'status_changed' && f.resource_id === inTrack)
  await byResource.waitFor(f => f.event_type === 'feature_updated' && f.resource_id === b)
  await byTrack.waitFor(f => f.resource_id === 'trk-000000aa')
  await notMine.waitFor(f => f.resource_id === marker)
  await tracksOnly.waitFor(f => f.resource_id === 'trk-000000aa')
  await new Promise(resolve => setTimeout(resolve, 100))

  t.alike(byType.events().map(e => [e.event_type, e.resource_id]), [['status_changed', a], ['status_changed', inTrack]])
  t.alike(byResource.events().map(e => e.resource_id), [b])
  t.alike(byTrack.events().map(e => e.resource_id), [inTrack, 'trk-000000aa'], 'the track and its features')
  t.alike(notMine.events().map(e => e.session_id), ['sess-2', 'sess-2'])
  t.alike(tracksOnly.events().map(e => e.event_type), ['track_updated'])
})

test('bad frames get an error frame, never a crash', async (t) => {
  const { url } = await startGateway(t)
  const ws = await openWs(t, url)
  const cases: Array<[unknown, string]> = [
    ['{not json', 'DECODE_FAILED'],
    ['hello', 'DECODE_FAILED'],
    [{ type: 'dance' }, 'INVALID_FIELD'],
    [[1, 2], 'INVALID_FIELD'],
    [{ type: 'subscribe', since: -3 }, 'INVALID_CURSOR'],
    [{ type: 'subscribe', since: 'yesterday' }, 'INVALID_CURSOR'],
    [{ type: 'subscribe', filter: { event_types: ['nope'] } }, 'INVALID_EVENT_TYPE'],
    [{ type: 'subscribe', filter: { resource_ids: ['feat-1 2'] } }, 'INVALID_ID'],
    [{ type: 'subscribe', filter: { colour: 'red' } }, 'INVALID_FIELD'],
    [{ type: 'subscribe', filter: 'all' }, 'INVALID_FIELD']
  ]
  for (const [frame, code] of cases) {
    const from = ws.frames.length
    ws.send(frame)
    const err = await ws.waitFor(f => f.type === 'error', 2000, from)
    t.is(err.code, code, `${JSON.stringify(frame)} → ${code}`)
    t.is(typeof err.message, 'string')
  }
  ws.socket.send(Buffer.from([1, 2, 3]), { binary: true })
  t.is((await ws.waitFor(f => f.type === 'error', 2000, ws.frames.length - 0)).code !== undefined, true)
  // Still subscribed and working after all of that.
  const id = await createFeature(url)
  await ws.waitFor(f => f.resource_id === id)
  t.pass('the connection survived every bad frame')
  const upgrade = await WsClient.open(url, '?since=abc').then(() => 'opened', (err: Error) => err.message)
  t.is(upgrade, 'upgrade refused: 400', 'a bad since in the URL is refused at the upgrade')
})

test('resume from a cursor after a disconnect: no gap, no duplicate', async (t) => {
  const { url } = await startGateway(t)
  const id = await createFeature(url)
  const first = await openWs(t, url)
  for (let i = 0; i < 3; i++) await post(url, `/api/broadcast/features/${id}`, { title: `before ${i}` })
  const seen = await first.waitForEvents(3)
  const last = seen[seen.length - 1].cursor
  first.close()

  for (let i = 0; i < 5; i++) await post(url, `/api/broadcast/features/${id}`, { title: `while away ${i}` })

  const resumed = await openWs(t, url)
  resumed.send({ type: 'subscribe', since: last })
  await resumed.waitFor(f => f.type === 'subscribed')
  // Writes racing with the replay must land exactly once too.
  const racing = Promise.all([0, 1, 2].map(i => post(url, `/api/broadcast/features/${id}`, { title: `during ${i}` })))
  await racing
  const events = await resumed.waitForEvents(8)
  await new Promise(resolve => setTimeout(resolve, 100))
  const all = resumed.events()
  const cursors = all.map(e => e.cursor)
  t.is(all.length, 8, 'five missed and three new, nothing more')
  t.is(new Set(cursors).size, cursors.length, 'no duplicate')
  t.alike(cursors, [...cursors].sort((a, b) => a - b), 'in order')
  t.is(cursors[0], last + 1, 'no gap after the cursor')
  const audit = await get(url, `/api/events?since=${last}&limit=1000`)
  t.alike(cursors, audit.body.events.map((e: { cursor: number }) => e.cursor), 'exactly the audit trail after the cursor')
  t.ok(events.length >= 8)
})

test('connect with ?since= resumes too, and a large backlog is paced, not dropped', async (t) => {
  const { url, cc } = await startGateway(t, { wsMaxLag: 64 * 1024 })
  const id = await createFeature(url)
  const description = 'x'.repeat(2000)
  for (let i = 0; i < 100; i++) await cc.append([{ event_type: 'feature_updated', resource_id: id, payload: { description: description + i } }])
  const ws = await openWs(t, url, '?since=1')
  const events = await ws.waitForEvents(100, 10000)
  t.is(events.length, 100, 'all 100 events (about 200 KB, over the 64 KB lag bound) arrived')
  t.is(events[0].cursor, 2)
  t.is(ws.closed, null, 'still connected')
  const live = await createFeature(url, 'live after replay')
  await ws.waitFor(f => f.resource_id === live)
  t.is(new Set(ws.events().map(e => e.cursor)).size, ws.events().length, 'no duplicate')
})

test('a client that never reads is closed; the others are not harmed', async (t) => {
  const { url, cc } = await startGateway(t, { wsMaxLag: 256 * 1024 })
  const id = await createFeature(url)
  const healthy = await openWs(t, url)
  const stuck = await openWs(t, url)
  stuck.send('subscribe')
  await stuck.waitFor(f => f.type === 'subscribed')
  // Stop reading: the kernel buffers fill, then the gateway's unsent backlog grows.
  ;(stuck.socket as unknown as { _socket: { pause: () => void } })._socket.pause()
  const big = 'y'.repeat(40_000)
  let written = 0
  for (let i = 0; i < 400; i++) {
    await cc.append([{ event_type: 'feature_updated', resource_id: id, payload: { description: big + i } }])
    written++
    const m = await get(url, '/api/metrics')
    if (m.body.clients_dropped_lagging === 1) break
  }
  const metrics = await get(url, '/api/metrics')
  t.is(metrics.body.clients_dropped_lagging, 1, `the stuck client was dropped after ${written} events of 40 KB`)
  await until(async () => (await get(url, '/api/metrics')).body.total_connected_clients === 1, 3000, 'one client left')
  ;(stuck.socket as unknown as { _socket: { resume: () => void } })._socket.resume()
  const closed = await stuck.waitClosed(10000)
  t.is(closed.code, 1008, 'policy violation close code')
  t.ok(/lagging/.test(closed.reason), `a clear reason: ${closed.reason}`)

  // It connected after the feature was created: it gets every update written since.
  const events = await healthy.waitForEvents(written, 10000)
  t.is(events.length, written, 'the healthy client got every event')
  const next = await createFeature(url, 'after')
  await healthy.waitFor(f => f.resource_id === next)
  t.is(healthy.closed, null)
})

test('heartbeat drops a client that stops answering pings', async (t) => {
  const { url } = await startGateway(t, { heartbeatMs: 300 })
  const alive = await openWs(t, url)
  const dead = await openWs(t, url)
  // A dead peer never answers: stop the client's automatic pong by pausing its socket.
  ;(dead.socket as unknown as { _socket: { pause: () => void } })._socket.pause()
  await until(async () => (await get(url, '/api/metrics')).body.clients_dropped_dead === 1, 5000, 'the dead client to be dropped')
  const m = await get(url, '/api/metrics')
  t.is(m.body.total_connected_clients, 1)
  t.is(alive.closed, null, 'the live client stays')
})

test('unsubscribe stops events; switching filters does not repeat events', async (t) => {
  const { url } = await startGateway(t)
  const ws = await openWs(t, url)
  const a = await createFeature(url, 'A')
  await ws.waitFor(f => f.resource_id === a)
  const cursor = ws.events()[0].cursor
  // Already holding everything up to `cursor` from the default subscription: since=0 must not resend it.
  ws.send({ type: 'subscribe', since: 0 })
  await ws.waitFor(f => f.type === 'subscribed')
  const b = await createFeature(url, 'B')
  await ws.waitFor(f => f.resource_id === b)
  t.alike(ws.events().map(e => e.resource_id), [a, b])
  t.ok(cursor > 0)
  ws.send({ type: 'unsubscribe' })
  await ws.waitFor(f => f.type === 'unsubscribed')
  await createFeature(url, 'C')
  ws.send('ping')
  await ws.waitFor(f => f.type === 'pong')
  t.is(ws.events().length, 2, 'nothing after unsubscribe')
})
