// Issue 9 §8: what a long-running node keeps in memory is bounded. Gateway
// session logs are capped (429 LIMIT_REACHED past the cap) and closed when idle;
// the latest-event-per-resource memory and the refused-writer set are LRUs.
import test from 'brittle'
import { randomBytes } from 'node:crypto'
import type { EventDraft } from '../lib/index.ts'
import { openNode, until } from './helpers/node.ts'
import { startGateway, post } from './helpers/gateway.ts'
import { LruMap } from '../lib/sdk/bounded.ts'

const as = (session: string): Record<string, string> => ({ 'x-agent-id': 'agent', 'x-session-id': session })

test('gateway sessions: past maxSessions a new X-Session-ID gets 429 LIMIT_REACHED; idle ones are closed and reopen on their next write', async (t) => {
  const { url, cc } = await startGateway(t, { maxSessions: 2, sessionIdleMs: 400 })
  const base = cc.sessionCount
  t.is((await post(url, '/api/broadcast/features', { title: 'a' }, as('s-a'))).status, 201)
  t.is((await post(url, '/api/broadcast/features', { title: 'b' }, as('s-b'))).status, 201)
  const refused = await post(url, '/api/broadcast/features', { title: 'c' }, as('s-c'))
  t.is(refused.status, 429, 'a third session is refused')
  t.is(refused.body.code, 'LIMIT_REACHED')
  t.ok(/maxSessions/.test(refused.body.message) && /--max-sessions/.test(refused.body.message), `the message names the setting: ${refused.body.message}`)
  t.is((await post(url, '/api/broadcast/features', { title: 'a2' }, as('s-a'))).status, 201, 'a session already hosted still writes')
  t.is(cc.sessionCount, base + 2)

  await until(() => cc.sessionCount === base, 5000, 'idle session logs to be closed')
  t.pass('idle session logs were closed')
  t.is((await post(url, '/api/broadcast/features', { title: 'c' }, as('s-c'))).status, 201, 'a new session is accepted once others went idle')
  const again = await post(url, '/api/broadcast/features', { title: 'a3' }, as('s-a'))
  t.is(again.status, 201, 'a closed session reopens on its next write')
  t.is(cc.getEvent(again.body.event_id)?.seq, 3, 'and its log continues where it stopped: blocks 0 and 1, then the end marker its idle close appended')
})

test('bounded memory: the latest-event-per-resource memory is an LRU, and parents stay right for evicted resources', async (t) => {
  const cc = await openNode(t)
  const first = await cc.features.create('first').save()
  const created = first.lastEvents[0].event_id
  for (let i = 0; i < 21; i++) {
    const drafts: EventDraft[] = Array.from({ length: 500 }, (_, j) => ({ event_type: 'feature_created', resource_id: `feat-${(0x100000 + i * 500 + j).toString(16).padStart(8, '0')}`, payload: { title: `filler ${i}/${j}`, status: 'todo' } }))
    await cc.append(drafts)
  }
  const lastSeen = (cc as unknown as { lastSeen: { size: number } }).lastSeen
  t.ok(lastSeen.size <= 10_000, `${lastSeen.size} resources remembered after 10,501 were written`)
  first.title = 'updated long after'
  await first.save()
  t.is(first.lastEvents[0].parent, created, 'an evicted resource\'s parent is read back from the database')
})

test('bounded memory: refused writers are counted exactly but remembered only up to a cap', async (t) => {
  const cc = await openNode(t, { writers: [randomBytes(32).toString('hex')] })
  const refused = Array.from({ length: 3000 }, (_, i) => ({ key: randomBytes(32).toString('hex'), sessionId: `r-${i}`, agentId: 'x', local: false }))
  t.alike(await cc._addRemoteWriters(refused), [], 'none is followed')
  t.is(cc.status().rejected.writers, 3000, 'status() counts every refused writer')
  const remembered = (cc as unknown as { registry: { rejected: { size: number } } }).registry.rejected.size
  t.ok(remembered <= 1024, `${remembered} refused writers held in memory`)
})

test('bounded memory: an LRU holds at most its cap, keeps what was used recently (null values too) and forgets the rest', (t) => {
  const lru = new LruMap<string, string | null>(100)
  lru.set('kept', null)
  for (let i = 0; i < 10_000; i++) {
    lru.set(`k${i}`, `v${i}`)
    if (i % 40 === 0) t.is(lru.get('kept'), null, i === 0 ? 'a null value is held, not read as missing' : undefined)
    if (lru.size > 100) t.fail(`${lru.size} entries held, over the cap of 100`)
  }
  t.is(lru.size <= 100, true, `${lru.size} entries held after 10,001 were set`)
  t.is(lru.peek('kept'), null, 'an entry read every 40 sets is still held')
  t.is(lru.has('k0'), false, 'an entry not used since is forgotten')
  for (let i = 9_950; i < 10_000; i++) if (lru.peek(`k${i}`) !== `v${i}`) t.fail(`k${i}, among the 50 most recent, was forgotten`)
  t.is(lru.get('k9999'), 'v9999', 'the most recent entry is held')
  lru.clear()
  t.is(lru.size, 0)
})
