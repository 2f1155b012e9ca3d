import test, { type Assert } from 'brittle'
import net from 'node:net'
import { Crosscast, CrosscastError, contentHash, type ClaimLost, type ErrorCode } from '../lib/index.ts'
import fc from 'fast-check'
import { encodeBlock, decodeBlock } from '../lib/events/codec.ts'
import { ClaimReader, claimChains, winningChain, type ClaimEventRow } from '../lib/projection/claims.ts'
import { countEvents, link, until } from './helpers/node.ts'
import { spawnPeer } from './helpers/child-peer.ts'

async function offlineNode (t: Assert, sessionId: string, agent = sessionId): Promise<Crosscast> {
  const cc = await Crosscast.open({ storage: await t.tmp(), room: 'claims', secret: 's3cret', agent, sessionId, swarm: false, lan: false })
  t.teardown(() => cc.close())
  return cc
}

async function rejectsWith (t: Assert, promise: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<CrosscastError | null> {
  try {
    await promise
  } catch (err) {
    t.is((err as CrosscastError).code, code, `rejects with ${code}: ${(err as Error).message}`)
    if (message !== undefined) t.ok(message.test((err as Error).message), `message matches ${message}`)
    return err as CrosscastError
  }
  t.fail(`expected ${code}`)
  return null
}

test('claim codec: a block without claims stays version 1, a claim block is version 2 and decodes', async (t) => {
  const plain = encodeBlock('s', [{ event_type: 'comment_added', resource_id: 'feat-00000001', agent_id: 'a', hlc: 1, parent: null, payload: { comment_text: 'x', author: 'a' } }])
  t.is(plain[0], 1, 'old-format block for old event types (older peers still read it)')
  t.alike(decodeBlock(plain).events[0].payload, { comment_text: 'x', author: 'a' }, 'and it decodes as before')
  const claim = encodeBlock('s', [{ event_type: 'claim_added', resource_id: 'feat-00000001', agent_id: 'a', hlc: 1, parent: null, payload: { ttl_s: 60 } }])
  t.is(claim[0], 2)
  t.alike(decodeBlock(claim).events[0].payload, { ttl_s: 60 })
  const forged = Buffer.from(claim)
  forged[0] = 1
  t.exception(() => decodeBlock(forged), /unknown event type 8 in a version 1 block/, 'a version-1 block cannot carry a claim')
})

test('claim rule: the same holder whatever order the claim events arrive in, at any moment', async (t) => {
  const writers = ['aa', 'bb', 'cc']
  const event = fc.record({
    writer: fc.constantFrom(...writers),
    release: fc.boolean(),
    atMs: fc.integer({ min: 0, max: 60_000 }),
    ttl: fc.integer({ min: 1, max: 30 })
  })
  fc.assert(fc.property(fc.array(event, { maxLength: 24 }), fc.integer({ min: 0, max: 100_000 }), fc.integer(), (drawn, nowMs, seed) => {
    const rows: ClaimEventRow[] = drawn.map((e, i) => ({
      event_id: `e${i}`,
      event_type: e.release ? 'claim_released' : 'claim_added',
      writer: e.writer,
      agent_id: 'a',
      session_id: e.writer,
      // A clock never repeats: the index is the counter inside the millisecond.
      hlc: e.atMs * 1000 + i,
      payload: e.release ? '{}' : JSON.stringify({ ttl_s: e.ttl })
    }))
    const shuffled = [...rows].sort((x, y) => ((x.hlc * 31 + seed) % 97) - ((y.hlc * 31 + seed) % 97) || x.event_id.localeCompare(y.event_id))
    const a = winningChain(claimChains(rows), nowMs)
    const b = winningChain(claimChains(shuffled), nowMs)
    return (a?.start.event_id ?? null) === (b?.start.event_id ?? null) && (a?.expiresMs ?? null) === (b?.expiresMs ?? null)
  }), { numRuns: 500 })
  t.pass('500 random claim histories, each in two arrival orders, name one holder')
})

test('claim: a second session is refused with CLAIMED naming the holder; release lets it in', async (t) => {
  const a = await offlineNode(t, 'sess-a', 'alice')
  const b = await offlineNode(t, 'sess-b', 'bob')
  const f = await a.features.create('Contended').save()
  await link(t, a, b)
  await until(async () => (await b.features.get(f.id)) !== null, 10_000, 'B to see the feature')

  const won = await a.claim(f.id, { ttlS: 60 })
  t.is(won.won, true)
  t.is(won.holder?.writer, a.writerKey)
  t.is(won.holder?.session_id, 'sess-a')
  t.is(won.expires_at, won.holder?.expires_at)
  t.alike(a.claimOf(f.id), won.holder)
  await until(() => b.claimOf(f.id) !== null, 10_000, 'B to see A\'s claim')
  t.alike(b.claimOf(f.id), won.holder, 'same holder on both peers')

  const before = countEvents(b)
  const err = await rejectsWith(t, b.claim(f.id), 'CLAIMED', /claimed by agent alice \(session sess-a\)/)
  t.is((err?.current as { writer?: string } | undefined)?.writer, a.writerKey, 'the error carries the holder')
  t.is(countEvents(b), before, 'a refused claim writes nothing')
  t.is((await a.claim(f.id)).won, true, 'the holder may claim again (a renewal)')

  const beforeReindex = a.claimOf(f.id)
  t.is(beforeReindex?.event_id, won.holder?.event_id, 'the renewal kept the claim\'s identity')
  await a.reindex()
  t.alike(a.claimOf(f.id), beforeReindex, 'a rebuilt projection names the same holder (claims are read from the audit trail)')
  await a.release(f.id)
  t.is(a.claimOf(f.id), null)
  await until(() => b.claimOf(f.id) === null, 10_000, 'B to see the release')
  const bWon = await b.claim(f.id, { ttlS: 60 })
  t.is(bWon.won, true)
  await until(() => a.claimOf(f.id) !== null, 10_000, 'A to see B\'s claim')
  await rejectsWith(t, a.claim(f.id), 'CLAIMED')
  await rejectsWith(t, a.claim('feat-0000dead'), 'NOT_FOUND')
  await rejectsWith(t, a.claim(f.id, { ttlS: 0 }), 'INVALID_FIELD', /ttlS must be an integer number of seconds from 1 to 86400/)
  await rejectsWith(t, a.claim('nope'), 'INVALID_ID')
})

test('claim: two claimants cut off from each other converge on the earlier claim; the loser gets claim-lost', async (t) => {
  const a = await offlineNode(t, 'sess-a', 'alice')
  const b = await offlineNode(t, 'sess-b', 'bob')
  const f = await a.features.create('Claimed apart').save()
  const first = await link(t, a, b)
  await until(async () => (await b.features.get(f.id)) !== null, 10_000, 'B to see the feature')
  await first.cut()

  const lost: ClaimLost[] = []
  b.on('claim-lost', (e: ClaimLost) => lost.push(e))
  const aClaim = await a.claim(f.id, { ttlS: 120 })
  await new Promise(resolve => setTimeout(resolve, 5))
  const bClaim = await b.claim(f.id, { ttlS: 120 })
  t.ok(aClaim.won && bClaim.won, 'each side, alone, wins its own claim')
  t.is(b.claimOf(f.id)?.writer, b.writerKey)

  await link(t, a, b)
  await until(() => lost.length === 1, 15_000, 'B to learn that it lost')
  t.is(lost[0].resource_id, f.id)
  t.is(lost[0].session_id, 'sess-b')
  t.is(lost[0].holder?.writer, a.writerKey, 'the claim-lost event names the winner')
  t.is(b.claimOf(f.id)?.writer, a.writerKey, 'B now sees A as the holder')
  t.is(a.claimOf(f.id)?.writer, a.writerKey, 'A kept it')
  // The loser withdrew its claim, so it cannot come back when A lets go.
  await until(() => a.listEvents({ type: 'claim_released', limit: 10 }).events.length === 1, 10_000, 'A to receive B\'s withdrawal')
  t.is(a.listEvents({ type: 'claim_released', limit: 10 }).events[0].session_id, 'sess-b')
  await until(() => contentHash(a.db) === contentHash(b.db), 10_000, 'identical content')
  await a.release(f.id)
  await until(() => b.claimOf(f.id) === null, 10_000, 'B to see the item free, not held by its own withdrawn claim')
})

test('claim: expires after its ttl when not renewed, and when its node is gone', async (t) => {
  const a = await offlineNode(t, 'sess-a')
  const b = await offlineNode(t, 'sess-b')
  const f = await a.features.create('Short hold').save()
  const g = await a.features.create('Renewed hold').save()
  await link(t, a, b)
  await until(async () => (await b.features.get(g.id)) !== null, 10_000, 'B to see both features')

  await a.claim(f.id, { ttlS: 2, renew: false })
  await a.claim(g.id, { ttlS: 2 })
  await until(() => b.claimOf(f.id) !== null && b.claimOf(g.id) !== null, 10_000, 'B to see both claims')
  await until(() => b.claimOf(f.id) === null, 6000, 'the unrenewed claim to lapse')
  t.is(b.claimOf(g.id)?.writer, a.writerKey, 'the renewed claim is still held while its node runs')
  t.ok(b.listEvents({ type: 'claim_added', resourceId: g.id, limit: 100 }).events.length >= 2, 'renewals are claim_added events from the holder')
  t.is(b.claimOf(g.id)?.event_id, b.listEvents({ type: 'claim_added', resourceId: g.id, limit: 1 }).events[0].event_id, 'a renewal keeps the claim\'s identity (its first event)')
  await a.close()
  await until(() => b.claimOf(g.id) === null, 8000, 'the claim of a closed node to lapse')
  t.is((await b.claim(g.id)).won, true, 'the item can be claimed again')
})

test('claim: a session reopened from the same storage keeps its claims and renews them', async (t) => {
  const storage = await t.tmp()
  const options = { storage, room: 'claims', secret: 's3cret', agent: 'alice', sessionId: 'sess-a', swarm: false, lan: false }
  const first = await Crosscast.open(options)
  const f = await first.features.create('Held across a restart').save()
  const { holder } = await first.claim(f.id, { ttlS: 3 })
  await first.close()
  const again = await Crosscast.open(options)
  t.teardown(() => again.close())
  t.is(again.claimOf(f.id)?.event_id, holder?.event_id, 'still its claim after the restart')
  await new Promise(resolve => setTimeout(resolve, 4500))
  t.is(again.claimOf(f.id)?.event_id, holder?.event_id, 'renewed past its first ttl, same claim')
  t.ok(again.listEvents({ type: 'claim_added', limit: 100 }).events.length >= 2, 'by new claim_added events')
})

test('ready(): todo features with done dependencies and no live claim, by priority then age', async (t) => {
  const cc = await offlineNode(t, 'sess-a')
  const dep = await cc.features.create('dependency').save()
  const low = await cc.features.create('low').setPriority('low').save()
  const none = await cc.features.create('no priority').save()
  const crit = await cc.features.create('critical').setPriority('critical').save()
  const waits = await cc.features.create('waits on dep').setPriority('critical').blockedBy(dep.id).save()
  const blocked = await cc.features.create('blocked by dep').setPriority('high').save()
  await dep.blocks(blocked.id).save()
  const claimed = await cc.features.create('claimed').setPriority('critical').save()
  await cc.features.create('in progress').setStatus('in_progress').save()
  const gone = await cc.features.create('deleted dependency').save()
  const afterGone = await cc.features.create('after deleted').setPriority('high').blockedBy(gone.id).save()
  await cc.features.delete(gone.id)
  await cc.claim(claimed.id)

  const ids = (list: Array<{ id: string }>): string[] => list.map(x => x.id)
  t.alike(ids(cc.ready()), [crit.id, afterGone.id, low.id, dep.id, none.id], 'claimed, waiting and non-todo features are left out')
  t.alike(ids(cc.ready({ limit: 2 })), [crit.id, afterGone.id])
  dep.status = 'done'
  await dep.save()
  t.alike(ids(cc.ready()), [crit.id, waits.id, blocked.id, afterGone.id, low.id, none.id], 'done dependency frees its dependents')
  await cc.release(claimed.id)
  t.is(cc.ready()[0].id, crit.id)
  t.ok(ids(cc.ready()).includes(claimed.id), 'a released feature is ready again')
  t.exception(() => cc.ready({ limit: 0 }), /limit must be an integer/)
})

test('ifVersion: every read carries version; a stale save is refused with CONFLICT and the current item, for features, tracks and spikes', async (t) => {
  const cc = await offlineNode(t, 'sess-a')
  const f = await cc.features.create('Versioned').save()
  t.is(f.version, f.lastEvents[0].event_id, 'version = id of the last event applied')
  const tab1 = (await cc.features.get(f.id))!
  const tab2 = (await cc.features.get(f.id))!
  t.is(tab1.version, f.version)
  tab1.title = 'first writer'
  await tab1.save({ ifVersion: tab1.version })
  t.is(tab1.version, tab1.lastEvents[tab1.lastEvents.length - 1].event_id)
  await tab1.comment('comments do not move the version')
  t.is((await cc.features.get(f.id))!.version, tab1.version)

  const before = countEvents(cc)
  tab2.title = 'stale writer'
  const err = await rejectsWith(t, tab2.save({ ifVersion: tab2.version }), 'CONFLICT', /changed since version/)
  t.is((err?.current as { title?: string, version?: string }).title, 'first writer', 'the error carries the current item')
  t.is((err?.current as { version?: string }).version, tab1.version)
  t.is(countEvents(cc), before, 'nothing written')
  tab2.refresh()
  tab2.title = 'merged writer'
  await tab2.save({ ifVersion: tab2.version })
  t.is((await cc.features.get(f.id))!.title, 'merged writer')

  // Two conditional saves from one node at once: exactly one wins.
  const x = (await cc.features.get(f.id))!
  const y = (await cc.features.get(f.id))!
  x.description = 'x'
  y.description = 'y'
  const results = await Promise.allSettled([x.save({ ifVersion: x.version }), y.save({ ifVersion: y.version })])
  t.alike(results.map(r => r.status), ['fulfilled', 'rejected'], 'the second sees the first\'s write')

  for (const collection of [cc.tracks, cc.spikes] as const) {
    const item = await collection.create('item').save()
    const stale = (await collection.get(item.id))!
    t.is(stale.version, item.lastEvents[0].event_id)
    item.title = 'moved on'
    await item.save({ ifVersion: item.version })
    stale.title = 'stale'
    await rejectsWith(t, stale.save({ ifVersion: stale.version }), 'CONFLICT')
    t.is((await collection.get(item.id))!.toJSON().version, item.version, 'toJSON carries version')
  }
})

test('claim: a claimant in another process, cut off and claiming the same item, loses to the earlier claim and is told', { timeout: 120_000 }, async (t) => {
  const a = await offlineNode(t, 'sess-a', 'alice')
  const f = await a.features.create('Claimed across processes').save()
  const sockets = new Set<net.Socket>()
  const listener = net.createServer((socket) => { sockets.add(socket); a.replicate(false, socket) })
  await new Promise<void>(resolve => listener.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { for (const s of sockets) s.destroy(); listener.close() })
  const port = (listener.address() as net.AddressInfo).port
  const b = await spawnPeer(t, { storage: await t.tmp(), room: 'claims', secret: 's3cret', agent: 'bob', sessionId: 'sess-b', swarm: false, lan: false })
  await b.call('connect', { port })
  await until(async () => (await b.call<number>('count')) === 1, 20_000, 'B to receive the feature')

  for (const s of sockets) s.destroy()
  await until(() => a.status().peers.length === 0, 10_000, 'the link to be down')
  const aClaim = await a.claim(f.id, { ttlS: 120 })
  await new Promise(resolve => setTimeout(resolve, 5))
  const bClaim = await b.call<{ won: boolean }>('claim', { resourceId: f.id, opts: { ttlS: 120 } })
  t.ok(aClaim.won && bClaim.won, 'both win alone')

  await b.call('connect', { port })
  await until(async () => (await b.call<unknown[]>('lost')).length === 1, 20_000, 'B to be told it lost')
  const [lost] = await b.call<ClaimLost[]>('lost')
  t.alike([lost.resource_id, lost.session_id, lost.holder?.writer], [f.id, 'sess-b', a.writerKey])
  t.alike(await b.call('claimOf', { resourceId: f.id }), a.claimOf(f.id), 'both processes name the same holder')
  await until(async () => (await b.call('hash')) === contentHash(a.db), 20_000, 'identical content, the withdrawal included')
  t.is(a.listEvents({ type: 'claim_released', limit: 10 }).events.map(e => e.session_id).join(), 'sess-b')
})

test('claims: the items that may hold a live claim are found through the claims index, not by scanning every event (presence asks on every change)', async (t) => {
  const a = await offlineNode(t, 'sess-a')
  const f = await a.features.create('Claimed among many').save()
  for (let i = 0; i < 50; i++) await a.append([{ event_type: 'status_changed', resource_id: f.id, payload: { old_status: null, new_status: i % 2 === 0 ? 'in_progress' : 'todo' } }])
  const { holder } = await a.claim(f.id)
  const reader = new ClaimReader(a.db) as unknown as Record<'claimed' | 'claimedBy', { source: string }>
  for (const name of ['claimed', 'claimedBy'] as const) {
    const plan = (a.db.prepare(`EXPLAIN QUERY PLAN ${reader[name].source}`).all(...(name === 'claimed' ? [0] : [0, a.writerKey])) as Array<{ detail: string }>).map(r => r.detail).join('; ')
    t.ok(/USING INDEX idx_broadcast_claims/.test(plan) && !/^SCAN broadcast_events/m.test(plan), `${name}: ${plan}`)
  }
  t.is(a.claimOf(f.id)?.event_id, holder?.event_id, 'and the holder is still found')
})
