// Issue 9 §4: the database is checked against the logs on open. A log behind
// its checkpoint (truncated, replaced, restored from an older backup) or on
// another fork triggers a rebuild, with a clear log line, never silent
// divergence or the reuse of an event id for different content.
import test from 'brittle'
import { join } from 'node:path'
import Corestore from 'corestore'
import { Crosscast } from '../lib/index.ts'
import { countEvents } from './helpers/node.ts'
import { capturingLogger } from './helpers/logger.ts'

const OPTS = { sessionId: 'sess-1', agent: 'claude', swarm: false, lan: false } as const

test('checkpoints: a log truncated behind the database triggers a rebuild; the next save gets its own content under its id', async (t) => {
  const storage = await t.tmp()
  const first = await Crosscast.open({ storage, ...OPTS })
  for (let i = 0; i < 5; i++) await first.features.create(`feature ${i}`).save()
  const epochBefore = first.epoch
  await first.close()

  // The log loses its last three blocks (a restored backup, say); the database still has them.
  const store = new Corestore(join(storage, 'cores'))
  const core = store.get({ name: 'crosscast/session/sess-1' })
  await core.ready()
  await core.truncate(2)
  await store.close()

  const log = capturingLogger()
  const cc = await Crosscast.open({ storage, ...OPTS, logger: log.logger })
  t.teardown(() => cc.close())
  const line = log.lines.find(l => l.level === 'warn' && /rebuilding it from the logs/.test(l.msg))
  t.ok(line !== undefined, `a clear log line: ${line?.msg} (${String(line?.obj.reason)})`)
  t.ok(/has 2 blocks but the database projected 5/.test(String(line?.obj.reason)), 'naming the log and both lengths')
  t.is(countEvents(cc), 2, 'the database now matches the log')
  t.not(cc.epoch, epochBefore, 'a new cursor epoch')

  const f = await cc.features.create('written after the rebuild').save()
  t.is(f.lastEvents[0].seq, 2, 'the log continues at its real length')
  t.is((cc.getEvent(f.lastEvents[0].event_id)?.payload as { title: string }).title, 'written after the rebuild', 'the stored event under that id is the new one, not the old block 2')
  t.is((await cc.features.list()).length, 3)
})

test('checkpoints: a log on another fork than the one projected triggers a rebuild', async (t) => {
  const storage = await t.tmp()
  const first = await Crosscast.open({ storage, ...OPTS })
  for (let i = 0; i < 3; i++) await first.features.create(`feature ${i}`).save()
  await first.close()

  // Same length, different history: truncate and write other blocks.
  const store = new Corestore(join(storage, 'cores'))
  const core = store.get({ name: 'crosscast/session/sess-1' })
  await core.ready()
  const keep = (await core.get(0))!
  await core.truncate(1)
  await core.append([keep, keep])
  await store.close()

  const log = capturingLogger()
  const cc = await Crosscast.open({ storage, ...OPTS, logger: log.logger })
  t.teardown(() => cc.close())
  const line = log.lines.find(l => l.level === 'warn' && /rebuilding it from the logs/.test(l.msg))
  t.ok(/fork 1 but the database projected fork 0/.test(String(line?.obj.reason)), `the fork is named: ${String(line?.obj.reason)}`)
  t.is((await cc.features.list()).length, 1, 'only what the current fork holds is projected (its blocks 1 and 2 repeat block 0\'s feature)')
  t.is(countEvents(cc), 3, 'one event per block of the current fork')
})
