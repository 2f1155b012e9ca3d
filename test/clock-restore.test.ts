// Issue 9 §3: the clock resumes from the largest hlc stored, under the one
// clock window. The machine's clock stepping back between two runs is
// simulated by making the first run's writes with Date.now shifted ahead
// (only around the writes: the storage layer checks its files' times on open).
import test from 'brittle'
import { Crosscast } from '../lib/index.ts'
import { MAX_CLOCK_SKEW_MS, HybridLogicalClock, isTooFarAhead } from '../lib/events/hlc.ts'

const OPTS = { sessionId: 'sess-1', agent: 'claude', swarm: false, lan: false } as const

async function withClockAhead<T> (ms: number, run: () => Promise<T>): Promise<T> {
  const realNow = Date.now
  Date.now = () => realNow() + ms
  try {
    return await run()
  } finally {
    Date.now = realNow
  }
}

test('clock restore: after the machine\'s clock stepped back 10 s across a restart, a new update still wins', async (t) => {
  const storage = await t.tmp()
  const first = await Crosscast.open({ storage, ...OPTS })
  const id = await withClockAhead(10_000, async () => {
    const f = await first.features.create('written before the step').save()
    f.title = 'old value'
    await f.save()
    return f.id
  })
  await first.close()

  const cc = await Crosscast.open({ storage, ...OPTS })
  t.teardown(() => cc.close())
  const f = (await cc.features.get(id))!
  const before = cc.getEvent(cc.listEvents({ resourceId: id }).events.at(-1)!.event_id)!.hlc
  f.title = 'new value'
  await f.save()
  t.ok(f.lastEvents[0].hlc > before, 'the new event\'s clock is past every stored one')
  t.is((await cc.features.get(id))?.title, 'new value', 'the update made after the restart wins')
})

test('clock restore: with the database deleted, the clock resumes from the log', async (t) => {
  const storage = await t.tmp()
  const first = await Crosscast.open({ storage, ...OPTS })
  await withClockAhead(10_000, async () => { await first.features.create('projected').save() })
  await first.close()
  // Remove the database: only the log holds the clock now.
  const { rmSync } = await import('node:fs')
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${storage}/crosscast.db${suffix}`, { force: true })
  const cc = await Crosscast.open({ storage, ...OPTS })
  t.teardown(() => cc.close())
  const stored = Math.max(...cc.listEvents().events.map(e => e.hlc))
  const g = await cc.features.create('after').save()
  t.ok(g.lastEvents[0].hlc > stored, 'the first new event follows the stored clock')
})

test('clock window: one bound for adopting a clock and for holding a block', (t) => {
  let wall = 1_000_000_000_000
  const clock = new HybridLogicalClock(() => wall)
  const justInside = (wall + MAX_CLOCK_SKEW_MS) * 1000
  const justOutside = justInside + 1
  t.is(isTooFarAhead(justInside, wall), false, 'a clock at the window\'s edge is accepted')
  t.is(isTooFarAhead(justOutside, wall), true, 'one tick past it is held')
  clock.observe(justOutside)
  t.ok(clock.now() < justInside, 'a held clock is not adopted')
  clock.observe(justInside)
  t.ok(clock.now() > justInside, 'an accepted clock is adopted: the next local write follows it')
  wall += 1
  t.ok(clock.now() > justInside, 'and stays ahead as the wall clock moves')
})
