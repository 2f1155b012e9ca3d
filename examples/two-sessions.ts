// Two agent sessions that see each other's work live, with no server.
// Runs entirely on this machine: a private DHT on 127.0.0.1 stands in for the
// public one, and LAN discovery is off. In real use, drop `bootstrap` and `lan`.
//
//   npx tsx examples/two-sessions.ts
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import createTestnet from 'hyperdht/testnet'
import { Crosscast } from '../lib/index.ts'

const testnet = await createTestnet(3, { host: '127.0.0.1' })
const dirs = [mkdtempSync(join(tmpdir(), 'crosscast-claude-')), mkdtempSync(join(tmpdir(), 'crosscast-copilot-'))]
const common = { room: 'my-project', bootstrap: testnet.bootstrap, lan: false }

const claude = await Crosscast.open({ ...common, storage: dirs[0], agent: 'claude', sessionId: 'sess-1' })
const copilot = await Crosscast.open({ ...common, storage: dirs[1], agent: 'copilot', sessionId: 'sess-2' })

// Copilot watches everything the other sessions do.
const seen = new Promise<void>(resolve => {
  let count = 0
  copilot.subscribe({ excludeOwn: true }, (event) => {
    console.log(`copilot saw ${event.event_type} on ${event.resource_id} from ${event.agent_id}:`, event.payload)
    if (++count === 4) resolve()
  })
})

const feature = await claude.features.create('User Authentication').setStatus('in_progress').setTrack('trk-00000123').save()
feature.status = 'done'
await feature.save() // feature_updated + status_changed
await feature.blocks('feat-00000456').save() // link_added
await seen

// Copilot's database now holds Claude's work: plain SQL works.
console.log(copilot.db.prepare('SELECT event_type, agent_id, resource_id FROM broadcast_events ORDER BY cursor').all())
console.log('copilot reads the feature:', (await copilot.features.get(feature.id))?.toJSON())

await Promise.all([claude.close(), copilot.close()])
await testnet.destroy()
for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
