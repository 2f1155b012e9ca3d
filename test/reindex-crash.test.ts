// A reindex drops the readers' indexes, replays the logs in many transactions
// and builds the indexes at the end. A process killed in between must leave a
// database that the next open repairs: every index back, every event projected
// once, the same content as before the reindex.
import test from 'brittle'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import BetterSqlite3 from 'better-sqlite3'
import { Crosscast, contentHash, type EventDraft } from '../lib/index.ts'
import { INDEX_NAMES } from '../lib/projection/schema.ts'

const CHILD = fileURLToPath(new URL('./fixtures/reindex-then-die.ts', import.meta.url))
const OPTS = { agent: 'claude', swarm: false, lan: false } as const
const BLOCKS = 600
const PER_BLOCK = 5

function indexesOf (file: string): string[] {
  const db = new BetterSqlite3(file, { readonly: true })
  try {
    return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_%' ORDER BY name").pluck().all() as string[])
  } finally {
    db.close()
  }
}

test('reindex: a process killed in the middle leaves a database that the next open repairs to the same content', { timeout: 120_000 }, async (t) => {
  const storage = await t.tmp()
  const cc = await Crosscast.open({ storage, sessionId: 'sess-a', ...OPTS })
  // Two logs (the reindex replays one after the other), many blocks (one transaction per 128), every state table used.
  const other = await cc.session({ sessionId: 'sess-b', agent: 'bob' })
  const track = await cc.tracks.create('history').save()
  const feat = (n: number): string => `feat-${n.toString(16).padStart(8, '0')}`
  for (let i = 0; i < BLOCKS; i++) {
    const drafts: EventDraft[] = Array.from({ length: PER_BLOCK }, (_, j) => {
      return j === 0 && i > 0
        ? { event_type: 'comment_added', resource_id: feat((i - 1) * PER_BLOCK + 1), payload: { comment_text: `comment ${i}`, author: 'claude' } }
        : { event_type: 'feature_created', resource_id: feat(i * PER_BLOCK + j), payload: { title: `feature ${i}/${j}`, status: 'todo', track_id: track.id } }
    })
    await cc.append(drafts)
  }
  for (let i = 0; i < 50; i++) {
    await other.append([
      { event_type: 'status_changed', resource_id: feat(i * PER_BLOCK + 1), payload: { old_status: 'todo', new_status: 'done' } },
      { event_type: 'link_added', resource_id: feat(i * PER_BLOCK + 2), payload: { linked_feature_id: feat(i * PER_BLOCK + 3), link_type: 'blocks' } }
    ])
  }
  const total = cc.status().events.total
  const hash = contentHash(cc.db)
  const epoch = cc.epoch
  await cc.close()
  const file = join(storage, 'crosscast.db')
  t.alike(indexesOf(file), [...INDEX_NAMES].sort(), 'before: the database has every index')

  const child = spawnSync(process.execPath, ['--import', 'tsx', CHILD, storage, 'sess-a', '2'], { encoding: 'utf8', timeout: 90_000 })
  t.is(child.signal, 'SIGKILL', `the reindex was killed, not finished (stderr: ${child.stderr.trim().slice(0, 500)})`)
  const progress = child.stdout.trim().split('\n').map(line => line.split(' ').map(Number).slice(1))
  t.is(progress.length, 2, 'after two transactions')
  t.ok(progress[1][0] < progress[1][1], `in the middle: ${progress[1][0]} of ${progress[1][1]} blocks replayed`)
  t.ok(indexesOf(file).length < INDEX_NAMES.length, 'the crash left the readers\' indexes dropped (the state the next open must repair)')

  const reopened = await Crosscast.open({ storage, sessionId: 'sess-a', ...OPTS })
  t.teardown(() => reopened.close())
  t.alike(indexesOf(file), [...INDEX_NAMES].sort(), 'after reopening: every index is back')
  t.not(reopened.epoch, epoch, 'the interrupted rebuild already started a new epoch (cursors from before are reset)')
  t.is(reopened.status().events.total, total, `every event projected once (${total})`)
  t.is(contentHash(reopened.db), hash, 'the same content as before the reindex')
  const plan = (reopened.db.prepare('EXPLAIN QUERY PLAN SELECT * FROM features ORDER BY created_hlc, id LIMIT 10').all() as Array<{ detail: string }>).map(r => r.detail).join('; ')
  t.ok(plan.includes('idx_features_created'), `features are listed through their index again: ${plan}`)

  await reopened.reindex()
  t.alike(indexesOf(file), [...INDEX_NAMES].sort(), 'a reindex that finishes leaves every index')
  t.is(contentHash(reopened.db), hash, 'and the same content')
})
