// The session log's group commit: blocks queued behind a running append go to
// hypercore together, each still its own block, in the order the writes were made.
import test from 'brittle'
import { Crosscast } from '../lib/index.ts'
import { decodeBlock } from '../lib/events/codec.ts'
import { openNode } from './helpers/node.ts'

test('session log: writes queued behind a running append are appended together, each block capped, in call order, and all survive a reopen', async (t) => {
  const storage = await t.tmp()
  const cc = await openNode(t, { storage, maxBlockEvents: 2 })
  await cc.features.create('first').save()
  const titles = Array.from({ length: 21 }, (_, i) => `queued ${i}`)
  // One tick: 21 one-event writes make 11 blocks of at most two events, appended in one call.
  const saved = await Promise.all(titles.map(title => cc.features.create(title).save()))
  for (let i = 0; i < saved.length; i++) {
    t.is(saved[i].lastEvents.length, 1, `save ${i} resolved with its event`)
    t.is(saved[i].lastEvents[0].resource_id, saved[i].id, `save ${i} got its own event`)
  }
  const positions = saved.map(f => [f.lastEvents[0].seq, f.lastEvents[0].idx])
  t.alike(positions, titles.map((_, i) => [1 + Math.floor(i / 2), i % 2]), 'consecutive positions, two events per block, in call order')

  const writer = cc.status().writers.find(w => w.sessionId === 'sess-1')
  t.is(writer?.length, 12, 'the log holds 12 blocks')
  const core = (cc as unknown as { feeds: Map<string, { core: { get (i: number): Promise<Buffer> } }> }).feeds.get(writer!.key)!.core
  const inLog: string[] = []
  for (let seq = 1; seq < 12; seq++) {
    const events = decodeBlock(await core.get(seq)).events
    t.ok(events.length <= 2, `block ${seq} holds at most maxBlockEvents events`)
    for (const e of events) inLog.push(e.resource_id)
  }
  t.alike(inLog, saved.map(f => f.id), 'the log holds the events in call order')
  await cc.close()

  const again = await Crosscast.open({ storage, room: 'test-room', agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })
  t.teardown(() => again.close())
  for (let i = 0; i < saved.length; i++) t.is((await again.features.get(saved[i].id))?.title, titles[i], `feature ${i} after reopening`)
  const next = await again.features.create('after reopening').save()
  t.is(next.lastEvents[0].seq, 12, 'the log continues after its last block')
})
