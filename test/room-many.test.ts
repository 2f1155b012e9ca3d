// Issue 12 §5: a room bigger than the connections each node may dial still
// converges, because logs are relayed by the nodes in between. 12 nodes in 3 OS
// processes (4 nodes each, every node its own storage, DHT node and swarm) on a
// loopback DHT, lan: false, maxPeers 2 so no node can dial its way to a full mesh.
// All write; then 3 close while 3 new ones join and everyone writes again: every
// node up must hold every event (the leavers' too, served by nodes that are not
// their writers) with one content hash. bench/room.ts measures the same at 32 nodes.
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import test from 'brittle'
import { Crosscast, type CrosscastError } from '../lib/index.ts'
import { createTestnet } from './helpers/testnet.ts'
import { runRoom, relayedOnly } from '../bench/lib/room-run.ts'

const NODES = 12
const EVENTS = 10
// Measured 1-5 s per convergence on this machine while shared; the bound only has to catch a stall.
const BOUND_MS = 25_000

test(`room of ${NODES} nodes with maxPeers 2: every node converges through relays, and again after 3 leave and 3 join`, { timeout: 90_000 }, async (t) => {
  const net = await createTestnet(t)
  const r = await runRoom({
    bootstrap: net.bootstrap,
    nodes: NODES,
    processes: 3,
    eventsPerNode: EVENTS,
    maxPeers: 2,
    leave: 3,
    join: 3,
    timeoutMs: BOUND_MS,
    log: (line) => t.comment(line)
  })
  t.ok(r.convergeMs < BOUND_MS, `every node held all ${NODES * EVENTS} events ${r.convergeMs.toFixed(0)} ms after the first open`)
  const notDirect = relayedOnly(r.converged)
  t.comment(`connections per node ${r.converged.map(s => s.peers).join(' ')} (dialled ${r.converged.map(s => s.clients).join(' ')}, accepted ${r.converged.map(s => s.servers).join(' ')}); other nodes not directly connected: ${notDirect.join(' ')}`)
  t.alike(r.converged.filter(s => s.clients > 2).map(s => s.name), [], 'no node holds more than maxPeers connections it dialled')
  t.alike(r.converged.filter(s => s.servers > 2).map(s => s.name), [], 'nor more than maxPeers it accepted: no node becomes a hub')
  t.ok(notDirect.filter(n => n > 0).length >= NODES / 2, 'most nodes got some logs only through relays (no full mesh)')

  t.is(r.final.length, NODES, 'as many nodes up after the churn')
  t.ok(r.final.every(s => s.events === r.expected), `every node up holds all ${r.expected} events, the leavers' included`)
  t.is(new Set(r.hashes.values()).size, 1, 'with one content hash')
  t.ok(r.churnConvergeMs < BOUND_MS, `${r.churnConvergeMs.toFixed(0)} ms after the churn began`)
})

test('maxPeers is refused below 2 or when not an integer, naming the option, before anything is stored', async (t) => {
  const storage = join(await mkdtemp(join(tmpdir(), 'crosscast-maxpeers-')), 'node')
  t.teardown(() => rm(dirname(storage), { recursive: true, force: true }))
  for (const maxPeers of [1, 0, 2.5, '8', 2000]) {
    try {
      await Crosscast.open({ storage, swarm: false, lan: false, maxPeers: maxPeers as number })
      t.fail(`maxPeers ${JSON.stringify(maxPeers)} was accepted`)
    } catch (err) {
      t.alike([(err as CrosscastError).code, (err as CrosscastError).field], ['INVALID_OPTION', 'maxPeers'], `maxPeers ${JSON.stringify(maxPeers)}: ${(err as Error).message}`)
    }
  }
  t.absent(existsSync(storage), 'no storage was created')
})
