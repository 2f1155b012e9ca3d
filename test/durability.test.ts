// Issue 9 §2: a save is reported done once its block is durable AND projected,
// and is never reported failed after its append succeeded. The projection
// fault is real: a SQLite trigger on the node's own connection makes every
// insert into broadcast_events abort, as a full disk or a corrupt page would.
import test from 'brittle'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Crosscast, type BroadcastEvent } from '../lib/index.ts'
import { openNode, countEvents, until } from './helpers/node.ts'
import { capturingLogger } from './helpers/logger.ts'

const BREAK = "CREATE TEMP TRIGGER injected_fault BEFORE INSERT ON broadcast_events BEGIN SELECT RAISE(ABORT, 'injected disk fault'); END"
const HEAL = 'DROP TRIGGER injected_fault'

function settled<T> (promise: Promise<T>): { done: () => boolean, failed: () => unknown } {
  let done = false
  let failed: unknown = null
  promise.then(() => { done = true }, (err) => { failed = err })
  return { done: () => done, failed: () => failed }
}

test('durability: a failed projection heals from the log; the waiting saves resolve, never reject, and later saves keep working', async (t) => {
  const log = capturingLogger()
  const cc = await openNode(t, { logger: log.logger })
  const delivered: BroadcastEvent[] = []
  cc.subscribe({}, e => delivered.push(e))
  await cc.features.create('before the fault').save()

  cc.db.exec(BREAK)
  const first = cc.features.create('during the fault').save()
  const second = cc.features.create('also during the fault').save()
  const a = settled(first)
  const b = settled(second)
  await until(() => (cc.status().writers[0].lastError ?? '').includes('injected disk fault'), 5000, 'status() to report the failing projection')
  await new Promise(resolve => setTimeout(resolve, 300))
  t.is(a.failed(), null, 'the first save did not reject')
  t.is(b.failed(), null, 'the second save did not reject')
  t.not(a.done(), true, 'nor did it resolve: its block is durable but not projected yet')
  t.is(cc.status().writers[0].length, 2, 'their block (one, by group commit) is in the log')
  t.ok(log.lines.some(l => l.level === 'warn' && l.msg === 'projecting the log failed'), 'the failure is logged')

  cc.db.exec(HEAL)
  const [f1, f2] = await Promise.all([first, second])
  t.ok(f1.lastEvents[0].cursor > 0 && f2.lastEvents[0].cursor > 0, 'both saves resolve with projected events once the fault is gone')
  t.is((await cc.features.get(f1.id))?.title, 'during the fault')
  t.is(cc.status().writers[0].lastError, null, 'the error is cleared once projection succeeds')
  const f3 = await cc.features.create('after the fault').save()
  t.is(f3.lastEvents[0].seq, 2, 'a later save continues the log')
  t.is(countEvents(cc), 4, 'every event once')
  t.alike(delivered.map(e => (e.payload as { title: string }).title), ['before the fault', 'during the fault', 'also during the fault', 'after the fault'], 'subscribers got every event once, in order')
})

test('durability: a save waiting on a failing projection resolves on close (it is durable), and the next open projects it', async (t) => {
  const storage = await t.tmp()
  const cc = await Crosscast.open({ storage, sessionId: 'sess-1', agent: 'claude', swarm: false, lan: false })
  cc.db.exec(BREAK)
  const pending = cc.features.create('durable, not projected').save()
  await until(() => cc.status().writers[0].lastError !== null, 5000, 'the projection to fail')
  const closing = cc.close()
  const feature = await pending
  await closing
  t.is(feature.lastEvents.length, 1, 'the save resolved with its event')
  t.is(feature.lastEvents[0].cursor, 0, 'cursor 0: written, not projected before the node closed')

  const again = await Crosscast.open({ storage, sessionId: 'sess-1', agent: 'claude', swarm: false, lan: false })
  t.teardown(() => again.close())
  t.is((await again.features.get(feature.id))?.title, 'durable, not projected', 'the next open projected it')
  t.is(again.getEvent(feature.lastEvents[0].event_id)?.event_id, feature.lastEvents[0].event_id, 'under the id the save returned')
})

test('durability: a local block stamped too far ahead is held like a peer\'s (the wall clock stepped back), then projected', async (t) => {
  const cc = await openNode(t)
  await cc.features.create('stamped now').save()
  const realNow = Date.now
  // The machine's clock steps back 10 minutes: the node's clock stays ahead of it (it never runs backwards).
  Date.now = () => realNow() - 10 * 60_000
  let pending: Promise<unknown>
  try {
    pending = cc.features.create('stamped ahead of the stepped-back clock').save()
    const held = settled(pending)
    await until(() => cc.status().writers[0].held !== null, 5000, 'the local block to be held')
    t.is(cc.status().writers[0].held?.until, 'clock', 'held for its clock, exactly as a peer\'s block would be')
    t.not(held.done(), true, 'the save waits while its block is held')
  } finally {
    Date.now = realNow
  }
  await pending
  t.is(cc.status().writers[0].held, null, 'projected once the wall clock is back')
  t.is(countEvents(cc), 2)
})

test('durability: a save that resolved survives a SIGKILL at that very moment (the process dies before its next turn)', async (t) => {
  const storage = await t.tmp()
  const fixture = fileURLToPath(new URL('./fixtures/save-then-die.ts', import.meta.url))
  const rounds = 3
  for (let round = 0; round < rounds; round++) {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, storage, `saved before the kill ${round}`], { stdio: ['ignore', 'pipe', 'inherit'] })
    t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    await new Promise(resolve => child.once('exit', resolve))
    t.is(child.signalCode, 'SIGKILL', `round ${round}: the writer killed itself`)
    const [, featureId, eventId] = out.trim().split(' ')
    t.ok(featureId?.startsWith('feat-'), `round ${round}: the save resolved before the kill`)
    const cc = await Crosscast.open({ storage, agent: 'claude', sessionId: 'sess-die', swarm: false, lan: false })
    try {
      t.is((await cc.features.get(featureId))?.title, `saved before the kill ${round}`, `round ${round}: the reopened node has the feature`)
      t.is(cc.getEvent(eventId)?.event_id, eventId, `round ${round}: under the event id the save returned`)
    } finally {
      await cc.close()
    }
  }
})

// A fault at COMMIT, after the state rows were written inside the transaction: a deferred foreign key
// that a temp trigger violates on every update of a feature row is checked only when the transaction commits.
const BREAK_COMMIT = [
  'PRAGMA foreign_keys = ON',
  'CREATE TEMP TABLE fault_parent (id INTEGER PRIMARY KEY)',
  'CREATE TEMP TABLE fault_child (parent INTEGER REFERENCES fault_parent(id) DEFERRABLE INITIALLY DEFERRED)',
  'CREATE TEMP TRIGGER commit_fault AFTER UPDATE ON features BEGIN INSERT INTO fault_child VALUES (1); END'
]
const HEAL_COMMIT = ['DROP TRIGGER commit_fault', 'DROP TABLE fault_child', 'DROP TABLE fault_parent', 'PRAGMA foreign_keys = OFF']

test('durability: a commit that fails after the state rows were written leaves no stale state behind; the retry stores the update', async (t) => {
  const cc = await openNode(t)
  const moved = await cc.features.create('moves track').setTrack('trk-aaaaaaaa').save()
  for (const sql of BREAK_COMMIT) cc.db.exec(sql)
  moved.trackId = 'trk-bbbbbbbb'
  moved.status = 'in_progress'
  const pending = moved.save()
  await until(() => (cc.status().writers[0].lastError ?? '').includes('FOREIGN KEY'), 5000, 'the commit to fail')
  t.alike((await cc.features.list({ track: 'trk-bbbbbbbb' })).map(f => f.id), [], 'nothing of the failed transaction is visible')
  for (const sql of HEAL_COMMIT) cc.db.exec(sql)
  await pending
  const stored = cc.db.prepare('SELECT track_id, status FROM features WHERE id = ?').get(moved.id)
  t.alike(stored, { track_id: 'trk-bbbbbbbb', status: 'in_progress' }, 'the retried projection stored the new track and status')
  t.alike((await cc.features.list({ track: 'trk-bbbbbbbb' })).map(f => [f.id, f.status]), [[moved.id, 'in_progress']], 'reads by the new track find it')
  t.alike((await cc.features.list({ track: 'trk-aaaaaaaa' })).map(f => f.id), [], 'and not under the old one')
})
