// Issue 5: hostile writers. A peer that holds the room secret serves a log built
// directly with corestore, full of bad blocks, or rewrites its history; the
// honest node must skip and report, never crash, and keep every other writer flowing.
import test, { type Assert } from 'brittle'
import { Crosscast, contentHash, type CrosscastOptions } from '../lib/index.ts'
import { MAX_CLOCK_SKEW_MS } from '../lib/events/hlc.ts'
import { until } from './helpers/node.ts'
import { createTestnet } from './helpers/testnet.ts'
import { startHostileWriter, validBlock, badBlocks, encodeEvents, type HostileWriter } from './fixtures/hostile-writer.ts'
import { capturingLogger, type LogLine } from './helpers/logger.ts'

type Net = { bootstrap: Array<{ host: string, port: number }> }
const ROOM = 'hostile-room'
const SECRET = 'only-members-know'


async function online (t: Assert, net: Net, opts: Partial<CrosscastOptions> & { sessionId: string }): Promise<Crosscast> {
  const cc = await Crosscast.open({ storage: await t.tmp(), room: ROOM, secret: SECRET, agent: opts.sessionId, swarm: true, lan: false, bootstrap: net.bootstrap, ...opts })
  t.teardown(() => cc.close())
  return cc
}

function eventsOf (cc: Crosscast, writer: string): Array<{ seq: number, title: string | undefined, event_type: string }> {
  return (cc.db.prepare('SELECT seq, event_type, payload FROM broadcast_events WHERE writer = ? ORDER BY seq, idx').all(writer) as Array<{ seq: number, event_type: string, payload: string }>)
    .map(r => ({ seq: r.seq, event_type: r.event_type, title: (JSON.parse(r.payload) as { title?: string }).title }))
}

function writerStatus (cc: Crosscast, key: string) {
  return cc.status().writers.find(w => w.key === key)
}

/** An honest writer that keeps saving features until stopped: it must flow whatever the hostile one does. */
function keepWriting (cc: Crosscast, everyMs = 100, max = 300): { stop: () => Promise<number> } {
  let stopped = false
  let written = 0
  const loop = (async () => {
    while (!stopped && written < max) {
      await cc.features.create(`honest ${written}`).save()
      written++
      await new Promise(resolve => setTimeout(resolve, everyMs))
    }
  })()
  return { stop: async () => { stopped = true; await loop; return written } }
}

async function room (t: Assert): Promise<{ a: Crosscast, c: Crosscast, h: HostileWriter, logA: LogLine[] }> {
  const net = await createTestnet(t)
  const log = capturingLogger()
  const h = await startHostileWriter(t, { room: ROOM, secret: SECRET, bootstrap: net.bootstrap })
  const a = await online(t, net, { sessionId: 'sess-a', logger: log.logger })
  const c = await online(t, net, { sessionId: 'sess-c' })
  return { a, c, h, logA: log.lines }
}

test('bad blocks: each is skipped, counted and logged; valid blocks after them are projected; the honest writer keeps flowing', { timeout: 60_000 }, async (t) => {
  const { a, c, h, logA } = await room(t)
  // Blocks a newer version may understand hold their writer instead (test/upgrade-hold.test.ts).
  const bad = badBlocks(h.sessionId).filter(b => b.held !== true)
  const honest = keepWriting(c)
  await until(() => eventsOf(a, c.writerKey).length >= 2, 20_000, 'honest events to flow before the attack')
  await h.append([validBlock(h.sessionId, 'h0'), ...bad.map(b => b.block), validBlock(h.sessionId, 'h1')])
  const firstRound = bad.length + 2
  await until(() => writerStatus(a, h.key)?.indexed === firstRound, 30_000, 'A to index every block of the hostile log')

  let w = writerStatus(a, h.key)!
  t.is(w.skipped, bad.length, `all ${bad.length} bad blocks skipped and counted`)
  t.ok(w.lastError !== null && w.lastError.startsWith(`block ${bad.length}:`), `lastError names the last bad block: ${w.lastError}`)
  t.alike(eventsOf(a, h.key).map(e => e.title), ['h0', 'h1'], 'the valid blocks before and after the bad ones are projected')
  const warned = logA.filter(l => l.level === 'warn' && l.obj.writer === h.key && l.msg === 'skipped an invalid block from a writer')
  t.alike(warned.map(l => l.obj.seq), bad.map((_, i) => i + 1), 'one warning per bad block, naming its seq')
  for (const [i, b] of bad.entries()) t.comment(`${b.name}: ${String(warned[i]?.obj.err)}`)

  // Live: bad blocks arriving while A is already following that writer.
  await h.append([bad[0].block, validBlock(h.sessionId, 'h2'), bad[10].block, validBlock(h.sessionId, 'h3')])
  await until(() => writerStatus(a, h.key)?.indexed === firstRound + 4, 20_000, 'A to index the live blocks')
  w = writerStatus(a, h.key)!
  t.is(w.skipped, bad.length + 2, 'live bad blocks are counted too')
  t.alike(eventsOf(a, h.key).map(e => e.title), ['h0', 'h1', 'h2', 'h3'], 'live valid blocks are projected')

  const honestSoFar = eventsOf(a, c.writerKey).length
  await until(() => eventsOf(a, c.writerKey).length >= honestSoFar + 3, 20_000, 'honest events to keep flowing after the bad blocks')
  const written = await honest.stop()
  await until(() => eventsOf(a, c.writerKey).length === written, 20_000, 'A to hold every honest event')
  t.pass(`the honest writer wrote ${written} events before, during and after the bad blocks, all projected by A`)
  await until(() => writerStatus(c, h.key)?.indexed === firstRound + 4, 20_000, 'C to index the hostile log too')
  t.is(contentHash(a.db), contentHash(c.db), 'A and C end identical: both skipped exactly the same blocks')
  const after = await a.features.create('A still writes').save()
  await until(async () => (await c.features.get(after.id)) !== null, 10_000, 'C to see A\'s new feature')
  t.pass('A never crashed and still syncs')
})

test('fork: a writer that truncates and rewrites its log is distrusted; what was projected stays; others keep flowing', { timeout: 60_000 }, async (t) => {
  const { a, c, h, logA } = await room(t)
  const honest = keepWriting(c)
  await h.append(['h0', 'h1', 'h2', 'h3', 'h4'].map(title => validBlock(h.sessionId, title)))
  await until(() => writerStatus(a, h.key)?.indexed === 5, 30_000, 'A to project the first 5 blocks')

  await h.fork(3, ['x3', 'x4', 'x5'].map(title => validBlock(h.sessionId, title)))
  t.is(h.core.fork, 1, 'the hostile log is on a new fork')
  await until(() => /fork/.test(writerStatus(a, h.key)?.lastError ?? ''), 15_000, 'A to notice the fork')
  const w = writerStatus(a, h.key)!
  t.comment(`lastError: ${w.lastError}`)
  const warned = logA.filter(l => l.level === 'warn' && l.obj.writer === h.key && /no longer trusted/.test(l.msg))
  t.is(warned.length, 1, 'one warning that the writer is no longer trusted')

  // Give the forked blocks every chance to arrive, while the honest writer goes on.
  const before = eventsOf(a, c.writerKey).length
  await until(() => eventsOf(a, c.writerKey).length >= before + 10, 20_000, 'honest events to keep arriving after the fork')
  t.alike(eventsOf(a, h.key).map(e => e.title), ['h0', 'h1', 'h2', 'h3', 'h4'], 'everything projected before the fork stays, nothing from the fork is projected')
  t.is(writerStatus(a, h.key)!.indexed, 5, 'the distrusted writer\'s checkpoint did not move')

  const written = await honest.stop()
  await until(() => eventsOf(a, c.writerKey).length === written, 20_000, 'A to hold every honest event')
  t.pass(`all ${written} honest events projected`)
})

test('far-future clock: a block stamped years ahead is held, not projected, and cannot win last-writer-wins', { timeout: 60_000 }, async (t) => {
  const { a, c, h } = await room(t)
  const f = await c.features.create('Target').save()
  await until(async () => (await a.features.get(f.id)) !== null, 20_000, 'A to see the feature')

  const tenYears = 10 * 365 * 24 * 3600 * 1000
  const futureHlc = (Date.now() + tenYears) * 1000
  await h.append([encodeEvents(h.sessionId, [{ event_type: 'feature_updated', resource_id: f.id, payload: { title: 'mallory forever' }, hlc: futureHlc }])])
  await until(() => (writerStatus(a, h.key)?.lastError ?? '').includes('clock'), 20_000, 'A to report the held block')
  t.is(writerStatus(a, h.key)?.indexed, 0, 'the future-stamped block is not projected (checkpoint stays)')
  t.is((a.db.prepare('SELECT count(*) AS n FROM broadcast_events WHERE writer = ?').get(h.key) as { n: number }).n, 0, 'no event of it is stored')

  // An honest update made afterwards, by a peer whose clock is right, wins everywhere.
  const own = (await a.features.get(f.id))!
  own.title = 'honest, later'
  await own.save()
  t.ok(own.lastEvents[0].hlc <= (Date.now() + MAX_CLOCK_SKEW_MS) * 1000, 'A\'s own next event is stamped near now: the future clock was not adopted')
  const ownEventId = own.lastEvents[0].event_id
  await until(() => c.getEvent(ownEventId) !== null && (writerStatus(c, h.key)?.lastError ?? '').includes('clock'), 20_000, 'C to apply the honest update and hold the hostile block')
  t.is((await a.features.get(f.id))!.title, 'honest, later')
  t.is((await c.features.get(f.id))!.title, 'honest, later', 'A and C agree, and the far-future write did not win')
})
