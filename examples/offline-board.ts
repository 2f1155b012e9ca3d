// One session with no network at all: the log and the SQLite projection work
// offline; peers catch up whenever the session next joins its room.
//
//   npx tsx examples/offline-board.ts
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Crosscast } from '../lib/index.ts'

const storage = mkdtempSync(join(tmpdir(), 'crosscast-offline-'))
const cc = await Crosscast.open({ storage, room: 'my-project', agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })

const track = await cc.tracks.create('Auth').setDescription('Everything about logging in').save()
const login = await cc.features.create('Login form').setTrack(track.id).setPriority('high').save()
const oauth = await cc.features.create('OAuth').setTrack(track.id).save()
await oauth.blockedBy(login.id).save()
await login.comment('Design is in the wiki')
login.status = 'in_progress'
await login.save()
await cc.spikes.create('Try passkeys').setFindings('Works in every browser we target').save()

// Replay the audit trail from the start (the iterator would then go on live; stop at the end).
const last = cc.lastCursor
for await (const event of cc.events({ since: 0 })) {
  console.log(event.cursor, event.event_type, event.resource_id, JSON.stringify(event.payload))
  if (event.cursor === last) break
}
for (const status of ['todo', 'in_progress', 'blocked', 'done'] as const) {
  console.log(status.padEnd(12), (await cc.features.list({ status, track: track.id })).map(f => f.title))
}
await cc.close()
rmSync(storage, { recursive: true, force: true })
