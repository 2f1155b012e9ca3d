import test from 'brittle'
import { startGateway, post, get, request, dbSnapshot, eventCount, openWs, WRITER } from './helpers/gateway.ts'

async function createFeature (url: string, body: Record<string, unknown> = { title: 'A feature' }): Promise<string> {
  const res = await post(url, '/api/broadcast/features', body)
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body.feature_id
}

test('create, read and list features', async (t) => {
  const { url, cc } = await startGateway(t)
  const res = await post(url, '/api/broadcast/features', { title: 'Auth', status: 'in_progress', tags: ['api'], priority: 'high' })
  t.is(res.status, 201)
  t.is(res.body.success, true)
  t.ok(/^feat-[0-9a-z]{16}$/.test(res.body.feature_id), 'a new feature id')
  t.ok(typeof res.body.event_id === 'string' && res.body.event_id.length > 0)
  t.is(res.body.clients_notified, 0)
  t.ok(!Number.isNaN(Date.parse(res.body.timestamp)))
  const id = res.body.feature_id

  const one = await get(url, `/api/features/${id}`)
  t.is(one.status, 200)
  t.is(one.body.title, 'Auth')
  t.is(one.body.status, 'in_progress')
  t.alike(one.body.tags, ['api'])
  t.is(one.body.created_by, 'claude-1')

  await createFeature(url, { title: 'Other' })
  const all = await get(url, '/api/features')
  t.is(all.body.count, 2)
  t.is(all.body.cursor, eventCount(cc), 'the list carries the newest cursor')
  const inProgress = await get(url, '/api/features?status=in_progress')
  t.alike(inProgress.body.features.map((f: { id: string }) => f.id), [id])

  const row = cc.db.prepare('SELECT agent_id, session_id, event_type FROM broadcast_events WHERE event_id = ?').get(res.body.event_id) as Record<string, string>
  t.alike(row, { agent_id: 'claude-1', session_id: 'sess-1', event_type: 'feature_created' }, 'written as the headers say')
  const status = cc.status()
  t.ok(status.writers.some(w => w.sessionId === 'sess-1' && w.local), 'X-Session-ID got its own log')
})

test('the seed update route: feature_updated plus status_changed when the status moves', async (t) => {
  const { url, cc } = await startGateway(t)
  const id = await createFeature(url, { title: 'Original' })
  const res = await post(url, `/api/broadcast/features/${id}`, { title: 'Updated Title', status: 'in_progress', description: 'New description' })
  t.is(res.status, 200)
  t.alike(Object.keys(res.body).slice(0, 5), ['success', 'feature_id', 'event_id', 'clients_notified', 'timestamp'], 'the seed response shape')
  t.is(res.body.feature_id, id)
  t.is(res.body.event_ids.length, 2)
  const events = cc.listEvents({ resourceId: id }).events
  t.alike(events.map(e => e.event_type), ['feature_created', 'feature_updated', 'status_changed'])
  t.alike(events[2].payload, { old_status: 'todo', new_status: 'in_progress' })
  t.is(events[1].seq, events[2].seq, 'both events of one request are in one block')

  const same = await post(url, `/api/broadcast/features/${id}`, { title: 'Again', status: 'in_progress' })
  t.is(same.body.event_ids.length, 1, 'no status_changed when the status did not move')
  const f = await get(url, `/api/features/${id}`)
  t.is(f.body.title, 'Again')
  t.is(f.body.description, 'New description')
})

test('status and link routes (seed) and comments', async (t) => {
  const { url, cc } = await startGateway(t)
  const a = await createFeature(url, { title: 'A', status: 'in_progress' })
  const b = await createFeature(url, { title: 'B' })

  const status = await post(url, `/api/broadcast/features/${a}/status`, { new_status: 'done' })
  t.is(status.status, 200)
  const changed = cc.getEvent(status.body.event_id)
  t.is(changed?.event_type, 'status_changed')
  t.alike(changed?.payload, { old_status: 'in_progress', new_status: 'done' }, 'old_status comes from the current state')
  t.is((await get(url, `/api/features/${a}`)).body.status, 'done')

  const link = await post(url, `/api/broadcast/features/${a}/links`, { linked_feature_id: b, link_type: 'depends_on' })
  t.is(link.status, 200)
  t.alike(cc.getEvent(link.body.event_id)?.payload, { linked_feature_id: b, link_type: 'depends_on' })
  t.is((await get(url, `/api/features/${a}`)).body.links[0].linked_feature_id, b)

  const comment = await post(url, `/api/broadcast/features/${a}/comments`, { comment_text: 'looks good' })
  t.is(comment.status, 200)
  t.alike(cc.getEvent(comment.body.event_id)?.payload, { comment_text: 'looks good', author: 'claude-1' }, 'author defaults to X-Agent-ID')
  const comments = (await get(url, `/api/features/${a}`)).body.comments
  t.alike(comments.map((c: { comment_text: string, author: string }) => [c.comment_text, c.author]), [['looks good', 'claude-1']], 'a feature read carries its comments')
  t.is((await get(url, '/api/features')).body.features.find((f: { id: string }) => f.id === a).comments.length, 1, 'so does the list')
  t.is((await get(url, `/api/features/${a}`)).body.claim, null, 'and its claim: none')
  await post(url, `/api/broadcast/features/${a}/claim`, {})
  t.is((await get(url, `/api/features/${a}`)).body.claim?.agent_id, 'claude-1', 'the live claim once there is one')
})

test('delete a feature, then it is gone', async (t) => {
  const { url, cc } = await startGateway(t)
  const id = await createFeature(url)
  const del = await request(url, 'DELETE', `/api/broadcast/features/${id}`)
  t.is(del.status, 200)
  t.is(cc.getEvent(del.body.event_id)?.event_type, 'feature_deleted')
  t.is((await get(url, `/api/features/${id}`)).status, 404)
  // The same headers as every other call, Content-Type included, and no body.
  const second = await createFeature(url, { title: 'B' })
  const withType = await request(url, 'DELETE', `/api/broadcast/features/${second}`, undefined, { ...WRITER, 'content-type': 'application/json' })
  t.is(withType.status, 200, `DELETE with Content-Type: application/json and an empty body: ${JSON.stringify(withType.body)}`)
  t.is(cc.getEvent(withType.body.event_id)?.event_type, 'feature_deleted')
  const again = await request(url, 'DELETE', `/api/broadcast/features/${id}`)
  t.is(again.status, 404)
  t.is(again.body.code, 'NOT_FOUND')
})

test('tracks and spikes are upserts', async (t) => {
  const { url } = await startGateway(t)
  const noTitle = await post(url, '/api/broadcast/tracks/trk-0000000a', { description: 'd' })
  t.is(noTitle.status, 400)
  t.is(noTitle.body.code, 'MISSING_FIELD')
  t.is(noTitle.body.field, 'title')
  t.is((await post(url, '/api/broadcast/tracks/trk-0000000a', { title: 'Track A' })).status, 200)
  t.is((await post(url, '/api/broadcast/tracks/trk-0000000a', { description: 'now described' })).status, 200)
  const tracks = await get(url, '/api/tracks')
  t.is(tracks.body.count, 1)
  t.is(tracks.body.tracks[0].title, 'Track A')
  t.is(tracks.body.tracks[0].description, 'now described')
  t.is((await get(url, '/api/tracks/trk-0000000a')).body.title, 'Track A')

  t.is((await post(url, '/api/broadcast/spikes/spk-0000000b', { title: 'Spike', findings: 'it works' })).status, 200)
  const spikes = await get(url, '/api/spikes')
  t.is(spikes.body.spikes[0].findings, 'it works')
  t.is((await get(url, '/api/spikes/spk-000000ff')).status, 404)

  const featureInTrack = await createFeature(url, { title: 'In track', track_id: 'trk-0000000a' })
  const byTrack = await get(url, '/api/features?track=trk-0000000a')
  t.alike(byTrack.body.features.map((f: { id: string }) => f.id), [featureInTrack])
})

test('batch: all operations in one block, or none', async (t) => {
  const { url, cc } = await startGateway(t)
  const existing = await createFeature(url, { title: 'Existing', status: 'blocked' })
  const res = await post(url, '/api/broadcast/batch', {
    operations: [
      { event_type: 'feature_created', resource_id: 'feat-0000aaaa', payload: { title: 'New one' } },
      { event_type: 'status_changed', resource_id: 'feat-0000aaaa', payload: { new_status: 'in_progress' } },
      { event_type: 'link_added', resource_id: existing, payload: { linked_feature_id: 'feat-0000aaaa', link_type: 'blocks' } },
      { event_type: 'track_updated', resource_id: 'trk-0000bbbb', payload: { title: 'T' } },
      { event_type: 'comment_added', resource_id: 'trk-0000bbbb', payload: { comment_text: 'hi' } }
    ]
  })
  t.is(res.status, 200, JSON.stringify(res.body))
  t.is(res.body.event_ids.length, 5)
  const events = res.body.event_ids.map((id: string) => cc.getEvent(id))
  t.is(new Set(events.map((e: { seq: number }) => e.seq)).size, 1, 'one block')
  t.alike(events[1].payload, { old_status: 'todo', new_status: 'in_progress' }, 'old_status from the batch itself')
  t.is(events[4].payload.author, 'claude-1')
  t.is((await get(url, '/api/features/feat-0000aaaa')).body.status, 'in_progress')

  const before = dbSnapshot(cc)
  const bad = await post(url, '/api/broadcast/batch', {
    operations: [
      { event_type: 'feature_created', payload: { title: 'Would be created' } },
      { event_type: 'status_changed', resource_id: existing, payload: { new_status: 'finished' } }
    ]
  })
  t.is(bad.status, 400)
  t.is(bad.body.code, 'INVALID_STATUS')
  t.is(bad.body.field, 'operations[1].payload.new_status')
  t.alike(bad.body.allowed, ['todo', 'in_progress', 'blocked', 'done'])
  const missing = await post(url, '/api/broadcast/batch', {
    operations: [
      { event_type: 'feature_created', payload: { title: 'Would be created' } },
      { event_type: 'feature_updated', resource_id: 'feat-0badbad0', payload: { title: 'x' } }
    ]
  })
  t.is(missing.status, 404)
  t.is(missing.body.field, 'operations[1].resource_id')
  t.is(dbSnapshot(cc), before, 'a failed batch wrote nothing')
})

test('the audit trail is paginated by cursor', async (t) => {
  const { url } = await startGateway(t)
  const id = await createFeature(url)
  for (let i = 0; i < 4; i++) await post(url, `/api/broadcast/features/${id}`, { title: `t${i}` })
  await createFeature(url, { title: 'other' })
  const first = await get(url, '/api/events?limit=2')
  t.is(first.body.events.length, 2)
  t.is(first.body.next_cursor, first.body.events[1].cursor)
  const rest = await get(url, `/api/events?since=${first.body.next_cursor as number}&limit=100`)
  t.is(rest.body.events.length, 4)
  t.is(rest.body.next_cursor, null)
  const cursors = [...first.body.events, ...rest.body.events].map((e: { cursor: number }) => e.cursor)
  t.alike(cursors, [...cursors].sort((a, b) => a - b), 'oldest first')
  t.is(new Set(cursors).size, 6, 'no event twice')
  const updates = await get(url, `/api/events?type=feature_updated&resource_id=${id}`)
  t.is(updates.body.events.length, 4)
  const e = updates.body.events[0]
  for (const key of ['event_id', 'event_type', 'resource_id', 'resource_type', 'agent_id', 'session_id', 'payload', 'timestamp', 'cursor']) t.ok(key in e, `event has ${key}`)
  const badSince = await get(url, '/api/events?since=-1')
  t.is(badSince.status, 400)
  t.is(badSince.body.code, 'INVALID_CURSOR')
  const badType = await get(url, '/api/events?type=nope')
  t.is(badType.status, 400)
  t.is(badType.body.code, 'INVALID_EVENT_TYPE')
  t.ok(Array.isArray(badType.body.allowed))
  const badLimit = await get(url, '/api/events?limit=abc')
  t.alike([badLimit.status, badLimit.body.code, badLimit.body.field], [400, 'INVALID_OPTION', 'limit'], '?limit=abc is an invalid option')
  t.is((await get(url, '/api/events?colour=red')).body.code, 'INVALID_OPTION', 'an unknown query parameter too')
})

test('every failing write is a JSON error with a stable code, and writes nothing', async (t) => {
  const { url, cc } = await startGateway(t, { maxBodyBytes: 4096 })
  const id = await createFeature(url)
  const other = await createFeature(url, { title: 'B' })
  await post(url, `/api/broadcast/tracks/trk-00000001`, { title: 'T' })
  const json = { 'content-type': 'application/json' }
  const cases: Array<{ name: string, method?: string, path: string, body?: unknown, headers?: Record<string, string>, status: number, code: string, field?: string, allowed?: string[] }> = [
    { name: 'missing X-Agent-ID', path: `/api/broadcast/features/${id}`, body: { title: 'x' }, headers: { 'x-session-id': 'sess-1' }, status: 400, code: 'INVALID_HEADER', field: 'X-Agent-ID' },
    { name: 'missing X-Session-ID', path: `/api/broadcast/features/${id}/status`, body: { new_status: 'done' }, headers: { 'x-agent-id': 'claude-1' }, status: 400, code: 'INVALID_HEADER', field: 'X-Session-ID' },
    { name: 'malformed X-Session-ID', path: `/api/broadcast/features/${id}/links`, body: { linked_feature_id: other, link_type: 'blocks' }, headers: { 'x-agent-id': 'claude-1', 'x-session-id': 'sess 1; drop' }, status: 400, code: 'INVALID_HEADER', field: 'X-Session-ID' },
    { name: 'bad header wins over a bad body', path: `/api/broadcast/features/${id}`, body: { status: 'nope' }, headers: { 'x-agent-id': '' }, status: 400, code: 'INVALID_HEADER', field: 'X-Agent-ID' },
    { name: 'missing headers on create', path: '/api/broadcast/features', body: { title: 'x' }, headers: {}, status: 400, code: 'INVALID_HEADER', field: 'X-Agent-ID' },
    { name: 'missing headers on delete', method: 'DELETE', path: `/api/broadcast/features/${id}`, headers: {}, status: 400, code: 'INVALID_HEADER', field: 'X-Agent-ID' },
    { name: 'unknown feature (update) without a title to create it', path: '/api/broadcast/features/feat-0000dead', body: { status: 'done' }, status: 400, code: 'MISSING_FIELD', field: 'title' },
    { name: 'unknown feature (status)', path: '/api/broadcast/features/feat-0000dead/status', body: { new_status: 'done' }, status: 404, code: 'NOT_FOUND' },
    { name: 'unknown feature (links)', path: '/api/broadcast/features/feat-0000dead/links', body: { linked_feature_id: id, link_type: 'blocks' }, status: 404, code: 'NOT_FOUND' },
    { name: 'unknown feature (comments)', path: '/api/broadcast/features/feat-0000dead/comments', body: { comment_text: 'x' }, status: 404, code: 'NOT_FOUND' },
    { name: 'malformed feature id', path: '/api/broadcast/features/feat-12.3', body: { title: 'x' }, status: 400, code: 'INVALID_ID', field: 'id' },
    { name: 'a feature id on the track route', path: '/api/broadcast/tracks/feat-00000001', body: { title: 'x' }, status: 400, code: 'INVALID_ID', field: 'id' },
    { name: 'an over-long spike id', path: `/api/broadcast/spikes/spk-${'a'.repeat(65)}`, body: { title: 'x' }, status: 400, code: 'INVALID_ID', field: 'id' },
    { name: 'bad status (update)', path: `/api/broadcast/features/${id}`, body: { status: 'finished' }, status: 400, code: 'INVALID_STATUS', field: 'status', allowed: ['todo', 'in_progress', 'blocked', 'done'] },
    { name: 'bad status (status)', path: `/api/broadcast/features/${id}/status`, body: { new_status: 'finished' }, status: 400, code: 'INVALID_STATUS', field: 'new_status', allowed: ['todo', 'in_progress', 'blocked', 'done'] },
    { name: 'bad status (create)', path: '/api/broadcast/features', body: { title: 'x', status: 'later' }, status: 400, code: 'INVALID_STATUS', field: 'status' },
    { name: 'bad link type', path: `/api/broadcast/features/${id}/links`, body: { linked_feature_id: other, link_type: 'friends' }, status: 400, code: 'INVALID_LINK_TYPE', field: 'link_type', allowed: ['depends_on', 'blocks', 'related'] },
    { name: 'link to itself', path: `/api/broadcast/features/${id}/links`, body: { linked_feature_id: id, link_type: 'blocks' }, status: 400, code: 'INVALID_FIELD' },
    { name: 'missing new_status', path: `/api/broadcast/features/${id}/status`, body: {}, status: 400, code: 'MISSING_FIELD', field: 'new_status' },
    { name: 'missing title on create', path: '/api/broadcast/features', body: { status: 'todo' }, status: 400, code: 'MISSING_FIELD', field: 'title' },
    { name: 'empty title on create', path: '/api/broadcast/features', body: { title: '' }, status: 400, code: 'MISSING_FIELD', field: 'title' },
    { name: 'empty title on update', path: `/api/broadcast/features/${id}`, body: { title: '' }, status: 400, code: 'MISSING_FIELD', field: 'title' },
    { name: 'no Content-Type on a body', path: `/api/broadcast/features/${id}`, body: '{"title":"x"}', headers: { ...WRITER, 'content-type': '' }, status: 415, code: 'INVALID_HEADER', field: 'Content-Type' },
    { name: 'empty update', path: `/api/broadcast/features/${id}`, body: {}, status: 400, code: 'MISSING_FIELD' },
    { name: 'unknown body field', path: `/api/broadcast/features/${id}`, body: { titel: 'typo' }, status: 400, code: 'INVALID_FIELD', field: 'titel' },
    { name: 'wrong type', path: `/api/broadcast/features/${id}`, body: { tags: 'not-a-list' }, status: 400, code: 'INVALID_FIELD', field: 'tags' },
    { name: 'malformed JSON', path: `/api/broadcast/features/${id}`, body: '{"title": "x",', status: 400, code: 'DECODE_FAILED' },
    { name: 'oversized body', path: `/api/broadcast/features/${id}`, body: { description: 'x'.repeat(8000) }, status: 413, code: 'PAYLOAD_TOO_LARGE' },
    { name: 'not JSON', path: `/api/broadcast/features/${id}`, body: 'title=x', headers: { ...WRITER, 'content-type': 'text/plain' }, status: 415, code: 'INVALID_HEADER', field: 'Content-Type' },
    { name: 'new track without title', path: '/api/broadcast/tracks/trk-00000002', body: { description: 'x' }, status: 400, code: 'MISSING_FIELD', field: 'title' },
    { name: 'unknown track on a feature', path: '/api/broadcast/features', body: { title: 'x', track_id: 'track-1' }, status: 400, code: 'INVALID_ID', field: 'track_id' },
    { name: 'unknown route', path: '/api/broadcast/nothing', body: {}, status: 404, code: 'NOT_FOUND' },
    { name: 'empty batch', path: '/api/broadcast/batch', body: { operations: [] }, status: 400, code: 'INVALID_FIELD', field: 'operations' }
  ]
  for (const c of cases) {
    const before = dbSnapshot(cc)
    const headers: Record<string, string> = c.headers === undefined ? { ...WRITER } : { ...c.headers }
    if (c.body !== undefined && headers['content-type'] === undefined) Object.assign(headers, json)
    const res = await request(url, c.method ?? 'POST', c.path, c.body, headers)
    t.is(res.status, c.status, `${c.name}: status ${c.status}`)
    t.is(res.body?.code, c.code, `${c.name}: code ${c.code} (${JSON.stringify(res.body)})`)
    t.is(typeof res.body?.message, 'string', `${c.name}: a message`)
    t.ok(res.headers.get('content-type')?.startsWith('application/json'), `${c.name}: JSON body`)
    if (c.field !== undefined) t.is(res.body.field, c.field, `${c.name}: names ${c.field}`)
    if (c.allowed !== undefined) t.alike(res.body.allowed, c.allowed, `${c.name}: lists the allowed values`)
    t.is(dbSnapshot(cc), before, `${c.name}: nothing written`)
  }
})

test('clients_notified counts the WebSocket clients the event reached', async (t) => {
  const { url } = await startGateway(t)
  const id = await createFeature(url)
  const all = await openWs(t, url)
  const onlyOther = await openWs(t, url)
  onlyOther.send({ type: 'subscribe', filter: { resource_ids: ['feat-0000ffff'] } })
  await onlyOther.waitFor(f => f.type === 'subscribed')
  const third = await openWs(t, url)
  third.send('subscribe')
  await third.waitFor(f => f.type === 'subscribed')
  const res = await post(url, `/api/broadcast/features/${id}/status`, { new_status: 'blocked' })
  t.is(res.body.clients_notified, 2, 'two subscribed clients matched, the filtered one did not')
  await all.waitFor(f => f.event_id === res.body.event_id)
})

test('metrics as JSON and as Prometheus text', async (t) => {
  const { url } = await startGateway(t)
  const ws = await openWs(t, url, '?session_id=viewer-1')
  const id = await createFeature(url)
  await ws.waitForEvents(1)
  const m = await get(url, '/api/metrics')
  t.is(m.status, 200)
  t.is(m.body.total_connected_clients, 1)
  t.is(m.body.active_sessions, 2, 'the WebSocket viewer and the writing session')
  t.is(m.body.total_events_broadcast, 1)
  t.ok(m.body.total_bytes_sent > 0)
  t.is(m.body.connected_peers, 0)
  t.is(m.body.writers, 2, 'the gateway session and sess-1')
  t.is(m.body.indexing_lag, 0)
  t.is(m.body.events_total, 1)
  t.is(m.body.rest_writes_total, 1)
  t.ok(id)

  const p = await get(url, '/metrics')
  t.ok(p.headers.get('content-type')?.startsWith('text/plain'))
  const text = p.body as string
  t.ok(/^# TYPE crosscast_gateway_connected_clients gauge$/m.test(text))
  t.ok(/^crosscast_gateway_connected_clients\{room="gateway-test",session_id="gateway"\} 1$/m.test(text))
  t.ok(/^crosscast_gateway_events_broadcast_total\{[^}]*\} 1$/m.test(text))
  t.ok(/^crosscast_indexing_lag\{[^}]*\} 0$/m.test(text))
  for (const line of text.trim().split('\n')) {
    if (!line.startsWith('#')) t.ok(/^[a-z_]+\{[^}]*\} -?[0-9.e+]+$/.test(line), `valid sample line: ${line}`)
  }
})

test('health, OpenAPI document and the demo page', async (t) => {
  const { url } = await startGateway(t)
  const h = await get(url, '/healthz')
  t.alike(h.body, { ok: true, room: 'gateway-test', session_id: 'gateway' })

  const doc = await get(url, '/docs/json')
  t.is(doc.body.openapi, '3.1.0')
  const update = doc.body.paths['/api/broadcast/features/{id}'].post
  t.ok(update.requestBody.content['application/json'].schema.properties.status.enum.includes('in_progress'))
  t.ok(update.parameters.some((p: { name: string, in: string, required: boolean }) => p.name === 'x-agent-id' && p.in === 'header' && p.required))
  t.ok(doc.body.paths['/api/broadcast/features/{id}/status'].post)
  t.ok(doc.body.paths['/api/broadcast/features/{id}/links'].post.requestBody.content['application/json'].schema.properties.link_type.enum)
  t.ok(doc.body.paths['/api/events'].get.parameters.some((p: { name: string }) => p.name === 'since'))
  t.ok(doc.body.paths['/api/features'].get.responses['200'])
  t.absent(doc.body.paths['/ws/broadcasts'], 'the WebSocket route is not a REST operation')

  const page = await fetch(url + '/static/broadcast-demo.html')
  t.is(page.status, 200)
  t.ok(page.headers.get('content-type')?.startsWith('text/html'))
  t.is(page.headers.get('referrer-policy'), 'no-referrer')
  t.ok((await page.text()).includes('/ws/broadcasts'))
  const root = await fetch(url + '/', { redirect: 'manual' })
  t.is(root.status, 302)
  t.is(root.headers.get('location'), '/static/broadcast-demo.html')
})

test('gateway close is idempotent and leaves the node open', async (t) => {
  const { cc, gw, url } = await startGateway(t)
  const ws = await openWs(t, url)
  await gw.close()
  await gw.close()
  const closed = await ws.waitClosed()
  t.is(closed.code, 1001)
  const refused = await fetch(url + '/healthz').then(() => false, () => true)
  t.ok(refused, 'no longer listening')
  const f = await cc.features.create('still works').save()
  t.ok(f.id, 'the node is still usable')
  t.is(cc.subscriberCount, 0, 'no subscription left behind')
})
