// Issue 9 §6: a block this node cannot understand (a newer version's event
// type, a payload over this node's cap) holds its writer at that block and is
// reported; it is retried when the node is opened again (after an upgrade or a
// reconfiguration), never skipped for good. A forked writer's distrust is
// persisted beside the logs and survives losing the database.
import test, { type Assert } from 'brittle'
import { randomBytes } from 'node:crypto'
import { rmSync } from 'node:fs'
import { Crosscast, type CrosscastOptions } from '../lib/index.ts'
import { until } from './helpers/node.ts'
import { createTestnet } from './helpers/testnet.ts'
import { startHostileWriter, validBlock, badBlocks, encodeEvents, resourceId } from './fixtures/hostile-writer.ts'

const ROOM = 'upgrade-room'
const SECRET = 'upgrade-secret'

async function open (t: Assert, storage: string, opts: Partial<CrosscastOptions> = {}): Promise<Crosscast> {
  const cc = await Crosscast.open({ storage, room: ROOM, secret: SECRET, agent: 'alice', sessionId: 'sess-a', lan: false, ...opts })
  t.teardown(() => cc.close())
  return cc
}

function titles (cc: Crosscast, writer: string): string[] {
  return (cc.db.prepare('SELECT payload FROM broadcast_events WHERE writer = ? ORDER BY seq, idx').all(writer) as Array<{ payload: string }>)
    .map(r => (JSON.parse(r.payload) as { title: string }).title)
}

function writer (cc: Crosscast, key: string) {
  return cc.status().writers.find(w => w.key === key)
}

function contiguous (cc: Crosscast, key: string): number {
  return cc.feeds.get(key)?.core.contiguousLength ?? 0
}

test('upgrade hold: a payload over this node\'s cap holds the writer; reopened with a larger cap, it and everything after it are projected', { timeout: 60_000 }, async (t) => {
  const net = await createTestnet(t)
  const h = await startHostileWriter(t, { room: ROOM, secret: SECRET, bootstrap: net.bootstrap })
  const storage = await t.tmp()
  const a = await open(t, storage, { bootstrap: net.bootstrap })
  // 100 KB of random text: over the default 64 KiB cap, and does not compress under it.
  const big = encodeEvents(h.sessionId, [{ event_type: 'feature_created', resource_id: resourceId(), payload: { title: 'big', status: 'todo', description: randomBytes(75_000).toString('base64') } }])
  await h.append([validBlock(h.sessionId, 'h0'), big, validBlock(h.sessionId, 'h1')])
  await until(() => writer(a, h.key)?.held !== null && writer(a, h.key)?.held !== undefined && contiguous(a, h.key) === 3, 30_000, 'A to hold the writer with every block downloaded')
  const w = writer(a, h.key)!
  t.is(w.held?.until, 'upgrade', 'held until the node is upgraded or reconfigured')
  t.is(w.held?.seq, 1, 'at the block it does not understand')
  t.ok(/maxPayloadBytes/.test(w.held?.reason ?? ''), `the reason names the setting: ${w.held?.reason}`)
  t.is(w.indexed, 1, 'the checkpoint stays at that block')
  t.is(w.skipped, 0, 'nothing was skipped')
  t.alike(titles(a, h.key), ['h0'], 'nothing after the held block is projected')
  await a.close()

  const bigger = await open(t, storage, { swarm: false, maxPayloadBytes: 256 * 1024 })
  await until(() => writer(bigger, h.key)?.indexed === 3, 10_000, 'the reconfigured node to project the held block')
  t.alike(titles(bigger, h.key), ['h0', 'big', 'h1'], 'the held block and the blocks after it are projected, in order')
  t.is(writer(bigger, h.key)?.held, null)
})

test('upgrade hold: an event type from a newer version holds the writer, reported in status(); other writers keep flowing', { timeout: 60_000 }, async (t) => {
  const net = await createTestnet(t)
  const h = await startHostileWriter(t, { room: ROOM, secret: SECRET, bootstrap: net.bootstrap })
  const a = await open(t, await t.tmp(), { bootstrap: net.bootstrap })
  const c = await open(t, await t.tmp(), { bootstrap: net.bootstrap, sessionId: 'sess-c', agent: 'carol' })
  const newerType = badBlocks(h.sessionId).find(b => b.name === 'unknown event type')!.block
  await h.append([validBlock(h.sessionId, 'h0'), newerType, validBlock(h.sessionId, 'h1')])
  await until(() => writer(a, h.key)?.held?.until === 'upgrade', 30_000, 'A to hold the writer')
  t.ok(/unknown to this version; upgrade/.test(writer(a, h.key)!.held!.reason), `reason: ${writer(a, h.key)!.held!.reason}`)
  t.alike(titles(a, h.key), ['h0'])
  const f = await c.features.create('from carol').save()
  await until(async () => (await a.features.get(f.id)) !== null, 20_000, 'an honest writer to keep flowing')
  t.pass('the held writer does not stop the others')
})

test('distrust: a forked writer stays distrusted after a restart, even with the database deleted', { timeout: 60_000 }, async (t) => {
  const net = await createTestnet(t)
  const h = await startHostileWriter(t, { room: ROOM, secret: SECRET, bootstrap: net.bootstrap })
  const storage = await t.tmp()
  const a = await open(t, storage, { bootstrap: net.bootstrap })
  await h.append(['h0', 'h1', 'h2', 'h3', 'h4'].map(title => validBlock(h.sessionId, title)))
  await until(() => writer(a, h.key)?.indexed === 5, 30_000, 'A to project the first 5 blocks')
  await h.fork(3, ['x3', 'x4', 'x5'].map(title => validBlock(h.sessionId, title)))
  await until(() => writer(a, h.key)?.distrusted !== null, 15_000, 'A to notice the fork')
  await a.close()
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${storage}/crosscast.db${suffix}`, { force: true })

  const again = await open(t, storage, { swarm: false })
  await until(() => writer(again, h.key)?.indexed === 5, 10_000, 'the rebuild to replay the trusted blocks')
  const w = writer(again, h.key)!
  t.ok(/fork/.test(w.distrusted?.reason ?? ''), `still distrusted: ${w.distrusted?.reason}`)
  t.is(w.distrusted?.length, 5, 'trusted up to the length it had when it forked')
  t.ok(/fork/.test(w.lastError ?? ''), 'reported as its last error')
  t.alike(titles(again, h.key), ['h0', 'h1', 'h2', 'h3', 'h4'], 'what was projected before the fork is rebuilt, nothing after')
})
