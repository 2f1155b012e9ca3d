// An item's version is the id of the last event applied to it on this node
// (comments and claims leave it), read from its state row. These tests hold
// the stored value to that definition, computed here straight from the audit
// trail: after concurrent updates from two peers (each sees them in the other
// order), after a reindex, and after opening a schema-3 database.

import test, { type Assert } from 'brittle'
import BetterSqlite3 from 'better-sqlite3'
import { Crosscast, contentHash } from '../lib/index.ts'
import { openNode, countEvents, until, link } from './helpers/node.ts'

const STATE_TABLES = ['features', 'tracks', 'spikes']

/** The definition: each item's last event in this node's cursor order that is not a comment or a claim. */
function definedVersions (cc: Crosscast): Record<string, string> {
  const out: Record<string, string> = {}
  for (const table of STATE_TABLES) {
    for (const row of cc.db.prepare(`SELECT id, (SELECT event_id FROM broadcast_events WHERE resource_id = ${table}.id
      AND event_type NOT IN ('comment_added', 'claim_added', 'claim_released') ORDER BY cursor DESC LIMIT 1) AS v FROM ${table}`).all() as Array<{ id: string, v: string }>) out[row.id] = row.v
  }
  return out
}

/** What every read hands out: state.version, get(), and the item in a list. */
async function readVersions (cc: Crosscast): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {}
  for (const f of await cc.features.list({ limit: 1000 })) {
    out[f.id] = f.version
    const one = await cc.features.get(f.id)
    if (one?.version !== f.version || cc.state.version(f.id) !== f.version) out[f.id] = `listed ${f.version}, get ${String(one?.version)}, state ${String(cc.state.version(f.id))}`
  }
  for (const item of [...await cc.tracks.list(), ...await cc.spikes.list()]) {
    out[item.id] = item.version === cc.state.version(item.id) ? item.version : `listed ${item.version}, state ${String(cc.state.version(item.id))}`
  }
  return out
}

/** Only the visible items (the ones reads return) of the definition. */
function visible (defined: Record<string, string>, read: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(defined).filter(([id]) => id in read))
}

async function checkVersions (t: Assert, cc: Crosscast, what: string): Promise<Record<string, string | null>> {
  const read = await readVersions(cc)
  t.ok(Object.keys(read).length > 0, `${what}: items to check`)
  t.alike(read, visible(definedVersions(cc), read), `${what}: every read names the item's last event here (comments and claims aside)`)
  return read
}

test('version: two peers update one feature apart, each names the update it applied last, the content stays identical; comments and claims leave it', async (t) => {
  const a = await openNode(t, { sessionId: 'sess-a' })
  const b = await openNode(t, { sessionId: 'sess-b', agent: 'copilot' })
  const f = await a.features.create('shared').save()
  const first = await link(t, a, b)
  await until(async () => (await b.features.get(f.id)) !== null, 10_000, 'B to see the feature')
  await first.cut()

  const onA = (await a.features.get(f.id))!
  onA.title = 'from A'
  await onA.save()
  const onB = (await b.features.get(f.id))!
  onB.status = 'in_progress'
  await onB.save()
  const fromA = onA.lastEvents[0].event_id
  const fromB = onB.lastEvents[onB.lastEvents.length - 1].event_id

  await link(t, a, b)
  await until(() => countEvents(a) === countEvents(b) && countEvents(a) === 4, 10_000, 'both to hold both updates')
  t.is(a.state.version(f.id), fromB, 'A applied B\'s update last')
  t.is(b.state.version(f.id), fromA, 'B applied A\'s update last')
  t.is(contentHash(a.db), contentHash(b.db), 'versions are local: the content hashes agree')
  await checkVersions(t, a, 'A')
  await checkVersions(t, b, 'B')

  await (await a.features.get(f.id))!.comment('a note')
  await a.claim(f.id, { ttlS: 60, renew: false })
  await a.release(f.id)
  t.is(a.state.version(f.id), fromB, 'a comment, a claim and a release do not move it')

  const current = (await a.features.get(f.id))!
  current.title = 'on the version read'
  await current.save({ ifVersion: fromB })
  t.is(a.state.version(f.id), current.lastEvents[0].event_id, 'a conditional save on the version read lands and moves it')
  await until(() => b.state.version(f.id) === current.lastEvents[0].event_id, 10_000, 'B to apply it')
  await checkVersions(t, b, 'B after the conditional save')
})

/** Items of every kind and every event that moves a version or not, from two sessions. */
async function writeHistory (cc: Crosscast): Promise<void> {
  const other = await cc.session({ sessionId: 'sess-2', agent: 'copilot' })
  for (let i = 0; i < 12; i++) {
    const writer = i % 2 === 0 ? cc : other
    const f = await writer.features.create(`f${i}`).save()
    f.status = 'blocked'
    await f.save()
    if (i % 3 === 0) await (i % 2 === 0 ? other : cc).features.get(f.id).then(g => { g!.title = `f${i} renamed`; return g!.save() })
    if (i % 4 === 0) await f.blocks('feat-00000abc').save()
    if (i % 5 === 0) await f.comment('note')
    if (i % 6 === 0) await cc.claim(f.id, { ttlS: 60, renew: false })
    if (i === 7) await cc.features.delete(f.id)
  }
  const track = await cc.tracks.create('T').save()
  await other.tracks.get(track.id).then(tr => { tr!.description = 'by the other session'; return tr!.save() })
  await cc.spikes.create('S').setFindings('none yet').save()
}

test('version: a reindex writes every item\'s version as the rebuilt order defines it', async (t) => {
  const cc = await openNode(t)
  await writeHistory(cc)
  const before = await checkVersions(t, cc, 'before the reindex')
  const hash = contentHash(cc.db)
  await cc.reindex()
  const after = await checkVersions(t, cc, 'after the reindex')
  t.is(contentHash(cc.db), hash, 'identical content')
  t.alike(Object.keys(after).sort(), Object.keys(before).sort(), 'the same items')
})

test('version: a schema-3 database (no version column, no claim index) migrates in place with the versions it would have had', async (t) => {
  const storage = await t.tmp()
  let cc = await Crosscast.open({ storage, room: 'test-room', agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })
  await writeHistory(cc)
  const before = await readVersions(cc)
  const hash = contentHash(cc.db)
  const holder = cc.claimOf((await cc.features.list())[0].id)
  t.ok(holder !== null, 'a live claim to read back')
  await cc.close()

  // Schema 3 as it was: the state tables without `version`, no per-item claim index.
  const db = new BetterSqlite3(`${storage}/crosscast.db`)
  db.exec('DROP INDEX idx_broadcast_claim_events')
  for (const table of STATE_TABLES) db.exec(`ALTER TABLE ${table} DROP COLUMN version`)
  db.pragma('user_version = 3')
  db.close()

  cc = await Crosscast.open({ storage, room: 'test-room', agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })
  t.teardown(() => cc.close())
  t.is(cc.db.pragma('user_version', { simple: true }), 4, 'migrated to schema 4')
  t.alike(await readVersions(cc), before, 'every item reads the version it had')
  await checkVersions(t, cc, 'after the migration')
  t.is(contentHash(cc.db), hash, 'identical content')
  t.alike(cc.claimOf((await cc.features.list())[0].id), holder, 'claims read through the new index')

  const f = (await cc.features.list())[1]
  f.title = 'after the migration'
  await f.save({ ifVersion: before[f.id]! })
  t.is(cc.state.version(f.id), f.lastEvents[0].event_id, 'writes keep moving it')
})
