// Issue 9 §5: known writers live in their own small SQLite file beside the
// logs (upserted once per gossip batch, learnt in parallel), survive deleting
// the database, and an older writers.json is imported on open.
import test from 'brittle'
import { randomBytes } from 'node:crypto'
import { existsSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import { Crosscast } from '../lib/index.ts'
import type { KnownWriter } from '../lib/sdk/writers.ts'

const OPTS = { sessionId: 'sess-1', agent: 'claude', swarm: false, lan: false } as const

function remoteWriters (n: number): KnownWriter[] {
  return Array.from({ length: n }, (_, i) => ({ key: randomBytes(32).toString('hex'), sessionId: `remote-${i}`, agentId: 'peer', local: false }))
}

test('writer store: a gossiped batch of 500 writers is persisted in one write, learnt in parallel, and survives deleting crosscast.db', { timeout: 60_000 }, async (t) => {
  const storage = await t.tmp()
  const cc = await Crosscast.open({ storage, ...OPTS })
  const batch = remoteWriters(500)
  const started = Date.now()
  const fresh = await cc._addRemoteWriters([...batch, ...batch.slice(0, 10)])
  t.comment(`learnt ${fresh.length} writers in ${Date.now() - started} ms`)
  t.is(fresh.length, 500, 'each new writer once, duplicates in the batch ignored')
  t.alike(await cc._addRemoteWriters(batch.slice(0, 50)), [], 'known writers are not new again')
  const walBytes = existsSync(join(storage, 'writers.db-wal')) ? statSync(join(storage, 'writers.db-wal')).size : 0
  t.ok(walBytes < 1024 * 1024, `the writer list costs ${walBytes} bytes of log for 500 writers, not a rewrite per writer`)
  await cc.close()

  for (const suffix of ['', '-wal', '-shm']) rmSync(join(storage, `crosscast.db${suffix}`), { force: true })
  const again = await Crosscast.open({ storage, ...OPTS })
  t.teardown(() => again.close())
  const known = new Set(again.listWriters().map(w => w.key))
  t.ok(batch.every(w => known.has(w.key)), 'every learnt writer is known after a restart without the database')
  t.is(again.listWriters().filter(w => w.local).length, 1, 'and the node\'s own log')
})

test('writer store: writers.json from an older crosscast is imported once on open', async (t) => {
  const storage = await t.tmp()
  const first = await Crosscast.open({ storage, ...OPTS })
  const own = first.writerKey
  await first.features.create('kept').save()
  await first.close()
  // What an older crosscast left: the list as JSON, no writers.db.
  rmSync(join(storage, 'writers.db'), { force: true })
  rmSync(join(storage, 'writers.db-wal'), { force: true })
  rmSync(join(storage, 'writers.db-shm'), { force: true })
  const [remote] = remoteWriters(1)
  writeFileSync(join(storage, 'writers.json'), JSON.stringify([{ key: own, sessionId: 'sess-1', agentId: 'claude', local: true }, remote], null, 2))

  const cc = await Crosscast.open({ storage, ...OPTS })
  t.teardown(() => cc.close())
  const keys = cc.listWriters().map(w => w.key)
  t.ok(keys.includes(remote.key), 'the remote writer from writers.json is known')
  t.is(cc.writerKey, own, 'the own log is the same')
  t.absent(existsSync(join(storage, 'writers.json')), 'writers.json is moved aside after the import')
  t.ok(existsSync(join(storage, 'writers.json.imported')))
  const db = new BetterSqlite3(join(storage, 'writers.db'), { readonly: true })
  t.teardown(() => db.close())
  t.is((db.prepare('SELECT count(*) AS n FROM writers').get() as { n: number }).n, 2, 'both are rows of writers.db')
})
