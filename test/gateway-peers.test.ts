// Two `crosscast serve` processes in one room over a private DHT on 127.0.0.1:
// a REST write on one reaches a WebSocket client of the other, exactly like a local one.
import test from 'brittle'
import { createTestnet } from './helpers/testnet.ts'
import { spawnServe, post, openWs, until, get } from './helpers/gateway.ts'

test('a REST write on one gateway reaches the WebSocket clients of another process\'s gateway', { timeout: 240_000 }, async (t) => {
  const { bootstrap } = await createTestnet(t)
  const common = ['--port', '0', '--no-lan', '--room', `gateway-peers-${process.pid}`, '--secret', 'peers-secret', '--bootstrap', ...bootstrap.map(b => `${b.host}:${b.port}`)]
  const a = await spawnServe(t, ['--storage', await t.tmp(), ...common])
  const b = await spawnServe(t, ['--storage', await t.tmp(), ...common])

  await until(async () => {
    const [ma, mb] = await Promise.all([get(a.url, '/api/metrics'), get(b.url, '/api/metrics')])
    return ma.body.connected_peers >= 1 && mb.body.connected_peers >= 1
  }, 60_000, 'the two nodes to find each other')

  const onB = await openWs(t, b.url)
  onB.send({ type: 'subscribe', filter: { event_types: ['feature_created', 'status_changed'] } })
  await onB.waitFor(f => f.type === 'subscribed')

  const created = await post(a.url, '/api/broadcast/features', { title: 'Written on A' }, { 'x-agent-id': 'claude-1', 'x-session-id': 'sess-a' })
  t.is(created.status, 201)
  const id = created.body.feature_id
  const remote = await onB.waitFor(f => f.type === 'broadcast_event' && f.resource_id === id, 60_000)
  t.is(remote.event_type, 'feature_created')
  t.is(remote.agent_id, 'claude-1')
  t.is(remote.session_id, 'sess-a', 'the writer\'s session travels with the event')
  t.is(remote.event_id, created.body.event_id, 'the same event id on both nodes')

  await post(a.url, `/api/broadcast/features/${id}/status`, { new_status: 'done' }, { 'x-agent-id': 'claude-1', 'x-session-id': 'sess-a' })
  const changed = await onB.waitFor(f => f.event_type === 'status_changed' && f.resource_id === id, 60_000)
  t.alike(changed.payload, { old_status: 'todo', new_status: 'done' })
  t.is((await get(b.url, `/api/features/${id}`)).body.status, 'done', 'B\'s state follows')

  // And the other way round: B writes, a client on A sees it.
  const onA = await openWs(t, a.url)
  const fromB = await post(b.url, `/api/broadcast/features/${id}/comments`, { comment_text: 'seen on B' }, { 'x-agent-id': 'copilot', 'x-session-id': 'sess-b' })
  const comment = await onA.waitFor(f => f.event_id === fromB.body.event_id, 60_000)
  t.is(comment.payload.comment_text, 'seen on B')
})
