// Issue 9 §7: cursors carry an epoch (the database's identity). A subscriber or
// WebSocket client resuming with a cursor from another epoch is told so and
// replayed from the new epoch's start, instead of getting silent duplicates or
// gaps; a reindex keeps delivering what peers write during and after it.
import test from 'brittle'
import { rmSync } from 'node:fs'
import { Crosscast, type BroadcastEvent, type EventDraft } from '../lib/index.ts'
import { openNode, until, countEvents } from './helpers/node.ts'
import { createTestnet } from './helpers/testnet.ts'
import { capturingLogger } from './helpers/logger.ts'
import { startGateway, get, post, openWs } from './helpers/gateway.ts'

const OPTS = { sessionId: 'sess-1', agent: 'claude', swarm: false, lan: false } as const

test('epoch: a cursor from before a deleted database is reset, not silently resumed', async (t) => {
  const storage = await t.tmp()
  const first = await Crosscast.open({ storage, ...OPTS })
  for (let i = 0; i < 3; i++) await first.features.create(`f${i}`).save()
  const old = { epoch: first.epoch, cursor: first.lastCursor }
  t.ok(/^[0-9a-f]{16}$/.test(old.epoch), `cc.epoch is the database's identity: ${old.epoch}`)
  await first.close()
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${storage}/crosscast.db${suffix}`, { force: true })

  const cc = await Crosscast.open({ storage, ...OPTS })
  t.teardown(() => cc.close())
  t.not(cc.epoch, old.epoch, 'a rebuilt database is a new epoch')
  await cc.features.create('after').save()

  const resets: Array<{ epoch: string, cursor: number }> = []
  const got: string[] = []
  const off = cc.subscribe({}, e => got.push((e.payload as { title: string }).title), { since: old.cursor, epoch: old.epoch, onReset: r => resets.push(r) })
  off()
  t.alike(resets, [{ epoch: cc.epoch, cursor: 0 }], 'onReset names the new epoch and the position replay starts from')
  t.alike(got, ['f0', 'f1', 'f2', 'after'], 'replay restarts at 0 in the new epoch: nothing missed')

  const same: string[] = []
  cc.subscribe({}, e => same.push(e.event_id), { since: 3, epoch: cc.epoch, onReset: () => t.fail('no reset within one epoch') })()
  t.is(same.length, 1, 'a cursor of the current epoch resumes as before')

  const iterResets: Array<{ epoch: string, cursor: number }> = []
  const iterator = cc.events({ since: old.cursor, epoch: old.epoch, onReset: r => iterResets.push(r) })
  const firstItem = await iterator.next()
  await iterator.return(undefined)
  t.is((firstItem.value as BroadcastEvent).cursor, 1, 'the iterator replays from the start of the new epoch')
  t.is(iterResets.length, 1, 'after telling its caller')
  t.exception(() => cc.subscribe({}, () => {}, { since: 1, epoch: 42 as never }), /epoch must be/)
})

test('epoch: during and after reindex, events from a peer keep reaching subscribers, each once; live subscribers get onReset', { timeout: 90_000 }, async (t) => {
  const net = await createTestnet(t)
  const log = capturingLogger()
  const a = await openNode(t, { swarm: true, bootstrap: net.bootstrap, room: 'epoch-room', logger: log.logger })
  const b = await openNode(t, { swarm: true, bootstrap: net.bootstrap, room: 'epoch-room', sessionId: 'sess-b', agent: 'bob' })
  // Enough history, in enough blocks, that the reindex takes a while and yields between its transactions.
  const BLOCKS = 1500
  const PER_BLOCK = 4
  for (let i = 0; i < BLOCKS; i++) {
    const drafts: EventDraft[] = Array.from({ length: PER_BLOCK }, (_, j) => ({ event_type: 'feature_created', resource_id: `feat-${(i * PER_BLOCK + j + 1).toString(16).padStart(8, '0')}`, payload: { title: `history ${i}/${j}`, status: 'todo' } }))
    await a.append(drafts)
  }
  const first = await b.features.create('b before').save()
  await until(() => a.getEvent(first.lastEvents[0].event_id) !== null, 20_000, 'A to see B')

  const fromB = new Map<string, number>()
  const resets: Array<{ epoch: string, cursor: number }> = []
  a.subscribe({ sessions: ['sess-b'] }, e => fromB.set(e.event_id, (fromB.get(e.event_id) ?? 0) + 1), { onReset: r => resets.push(r) })

  const written: string[] = []
  let writing = true
  const writer = (async () => {
    while (writing && written.length < 400) {
      const f = await b.features.create(`b ${written.length}`).save()
      written.push(f.lastEvents[0].event_id)
      await new Promise(resolve => setTimeout(resolve, 5))
    }
  })()
  await until(() => written.length >= 5, 10_000, 'B to be writing')
  const epochBefore = a.epoch
  const writtenBefore = written.length
  const started = Date.now()
  await a.reindex()
  t.comment(`reindex of ${countEvents(a)} events took ${Date.now() - started} ms; B wrote ${written.length - writtenBefore} events meanwhile`)
  await until(() => written.length >= 20 + 5, 20_000, 'B to keep writing after the reindex')
  writing = false
  await writer
  await until(() => written.every(id => a.getEvent(id) !== null), 30_000, 'A to hold every event B wrote')
  await until(() => written.every(id => fromB.has(id)), 10_000, 'A\'s subscriber to get every event B wrote during and after the reindex').catch(() => {})

  const missing = written.filter(id => !fromB.has(id))
  t.is(missing.length, 0, `every one of B's ${written.length} events was delivered (${missing.length} missing)`)
  t.ok([...fromB.values()].every(n => n === 1), 'each exactly once')
  t.not(a.epoch, epochBefore, 'the reindex started a new epoch')
  t.is(resets.length, 1, 'the live subscriber was told once')
  t.is(resets[0]?.epoch, a.epoch)
  t.is(log.lines.filter(l => /failed/.test(l.msg)).length, 0, 'no drain failed half-way')
  t.is(countEvents(a), BLOCKS * PER_BLOCK + 1 + written.length)
})

test('epoch over the gateway: subscribed frames and GET /api/events carry it; a stale epoch gets a reset frame and a replay; a reindex sends reset', async (t) => {
  const { url, cc } = await startGateway(t)
  await post(url, '/api/broadcast/features', { title: 'one' })
  await post(url, '/api/broadcast/features', { title: 'two' })
  const page = await get(url, '/api/events')
  t.is(page.body.epoch, cc.epoch, 'GET /api/events carries the epoch')

  const ws = await openWs(t, url)
  ws.send({ type: 'subscribe', since: 2, epoch: cc.epoch })
  const subscribed = await ws.waitFor(f => f.type === 'subscribed')
  t.is(subscribed.epoch, cc.epoch, 'subscribed frames carry the epoch')

  const stale = await openWs(t, url)
  stale.send({ type: 'subscribe', since: 2, epoch: 'aaaaaaaaaaaaaaaa' })
  const reset = await stale.waitFor(f => f.type === 'reset')
  t.alike(reset, { type: 'reset', epoch: cc.epoch, cursor: 0 }, 'a cursor from another epoch: reset frame')
  const replayed = await stale.waitForEvents(2)
  t.alike(replayed.map(e => e.payload.title), ['one', 'two'], 'then replay from the start of the new epoch')
  t.ok(stale.frames.indexOf(reset) < stale.frames.indexOf(replayed[0]), 'the reset comes before the replay')

  await cc.reindex()
  const live = await ws.waitFor(f => f.type === 'reset')
  t.is(live.epoch, cc.epoch, 'a reindex under a live subscription sends reset with the new epoch')
  await post(url, '/api/broadcast/features', { title: 'three' })
  const after = await ws.waitFor(f => f.type === 'broadcast_event' && f.payload.title === 'three')
  t.ok(after.cursor > live.cursor, 'and live events continue after the reset position')
})
