// Issue 5's acceptance test, with full crosscast nodes (SDK, own log, SQLite
// projection), each in its own OS process on its own host: a network namespace
// wired to a private switch that this test builds and removes. The swarm is off,
// so mDNS on that switch is the only way the nodes can find each other.
// Needs root and iproute2: skips loudly elsewhere, fails in CI rather than skip.
import test from 'brittle'
import type { Assert } from 'brittle'
import { spawnPeer, type ChildPeer } from './helpers/child-peer.ts'
import { createLan, inNamespace, requireNetns, type LanHost } from './helpers/netns.ts'
import type { CrosscastOptions } from '../lib/index.ts'

const ROOM = 'lan-room'
const SECRET = 'lan-secret'
const MEMBERS = 3
const BEFORE_CUT = 20
const DURING_CUT = 300
const OUTSIDER_EVENTS = 5
// A cut cable never closes TCP: a short keep-alive and timeout get it noticed
// within seconds, and a node with no peer asks again every second.
const LAN_TIMING = { keepAlive: 1000, timeout: 5000, queryInterval: 1000 }
// Below brittle's timeout: brittle skips teardowns when a test times out, so
// every wait here runs out first and the failure goes through teardown.
const BUDGET_MS = 80_000
const CALL_MS = 10_000

interface Status {
  peers: Array<{ transport: string, authenticated: boolean }>
  rejected: { peers: number, writers: number, reasons: Array<{ reason: string }> }
}

interface Node {
  name: string
  host: LanHost
  peer: ChildPeer
}

test('lan: three full nodes with swarm off find each other by mDNS, keep writing through a cut link, and converge', { timeout: 90_000 }, async (t) => {
  if (!requireNetns(t, 'LAN convergence of full crosscast nodes')) return
  const deadline = Date.now() + BUDGET_MS
  const nodes: Node[] = []
  try {
    await scenario(t, deadline, nodes)
  } catch (err) {
    t.fail(err instanceof Error ? err.message : String(err))
    for (const line of await describe(nodes)) t.comment(line)
  }
})

async function scenario (t: Assert, deadline: number, nodes: Node[]): Promise<void> {
  const lan = createLan(t, { hosts: MEMBERS + 1, subnet: '10.232.0' })
  const names = ['a', 'b', 'c', 'outsider']
  const started = await Promise.all(lan.hosts.map(async (host, i) => {
    const options: CrosscastOptions = {
      storage: await t.tmp(),
      room: ROOM,
      // Same room, same switch, different secret: must never get a block.
      secret: i < MEMBERS ? SECRET : 'another-secret',
      agent: `agent-${names[i]}`,
      sessionId: `lan-${names[i]}`,
      swarm: false,
      lan: { interface: host.addr, ...LAN_TIMING }
    }
    const peer = await spawnPeer(t, options, remaining(deadline, 30_000), { prefix: inNamespace(host.ns) })
    return { name: names[i], host, peer }
  }))
  nodes.push(...started)
  const members = nodes.slice(0, MEMBERS)
  const [a, b, c] = members
  const outsider = nodes[MEMBERS]

  let since = Date.now()
  await Promise.all([
    ...members.map((n) => n.peer.call('write', { count: BEFORE_CUT, concurrency: 5 }, CALL_MS)),
    outsider.peer.call('write', { count: OUTSIDER_EVENTS }, CALL_MS)
  ])
  const beforeCut = MEMBERS * BEFORE_CUT
  await waitFor(deadline, 30_000, `every member to hold ${beforeCut} events`, async () =>
    (await counts(members)).every((n) => n === beforeCut))
  t.pass(`the three found each other by mDNS and replicated (${Date.now() - since} ms)`)
  for (const n of members) {
    const { peers } = await status(n)
    t.alike(peers.map((p) => [p.transport, p.authenticated]), [['lan', true], ['lan', true]], `${n.name}: two authenticated LAN peers`)
  }

  since = Date.now()
  lan.cut(c.host)
  await Promise.all(members.map((n) => n.peer.call('write', { count: DURING_CUT, concurrency: 20 }, 30_000)))
  t.comment(`each wrote ${DURING_CUT} after the cut (${Date.now() - since} ms)`)
  await waitFor(deadline, 20_000, 'the cut to be noticed on both sides', async () => {
    const [pa, pb, pc] = await Promise.all(members.map(async (n) => (await status(n)).peers.length))
    return pa === 1 && pb === 1 && pc === 0
  })
  t.pass(`a and b lost c, c lost both (${Date.now() - since} ms after the cut)`)
  const partitioned = beforeCut + 2 * DURING_CUT
  await waitFor(deadline, 20_000, 'a and b to hold each other\'s writes', async () => {
    const [na, nb] = await counts([a, b])
    return na >= partitioned && nb >= partitioned
  })
  t.alike(await counts(members), [partitioned, partitioned, beforeCut + DURING_CUT], 'during the cut a and b sync with each other, and nothing crosses to or from c')

  since = Date.now()
  lan.restore(c.host)
  const total = beforeCut + MEMBERS * DURING_CUT
  await waitFor(deadline, 40_000, `every member to hold ${total} events`, async () =>
    (await counts(members)).every((n) => n >= total))
  t.pass(`all three caught up after the link came back (${Date.now() - since} ms)`)
  t.alike(await counts(members), [total, total, total], `every member holds exactly ${total} events`)
  const hashes = await Promise.all(members.map((n) => n.peer.call<string>('hash', {}, CALL_MS)))
  t.is(new Set(hashes).size, 1, `one content hash on all three: ${hashes[0].slice(0, 16)}`)
  // Nothing but mDNS could have brought c back: there is no swarm.
  await waitFor(deadline, 20_000, 'the full LAN mesh again', async () =>
    (await Promise.all(members.map(status))).every((s) => s.peers.filter((p) => p.authenticated).length === MEMBERS - 1))
  for (const n of members) {
    const { peers } = await status(n)
    const members = peers.filter((p) => p.authenticated)
    t.is(members.length, MEMBERS - 1, `${n.name}: the other members are authenticated peers`)
    t.ok(members.every((p) => p.transport === 'lan'), `${n.name}: over the LAN`)
  }

  const [outsiderCount] = await counts([outsider])
  t.is(outsiderCount, OUTSIDER_EVENTS, 'the node with another secret holds only its own events')
  const outsiderStatus = await status(outsider)
  t.is(outsiderStatus.peers.filter((p) => p.authenticated).length, 0, 'the node with another secret has no peer')
  t.ok(outsiderStatus.rejected.reasons.some((r) => r.reason === 'wrong room secret'), 'and is told it holds the wrong secret')

  await Promise.all(nodes.map((n) => n.peer.call('close', {}, CALL_MS)))
}

function remaining (deadline: number, ms: number): number {
  return Math.max(1, Math.min(ms, deadline - Date.now()))
}

async function waitFor (deadline: number, ms: number, what: string, check: () => Promise<boolean>): Promise<void> {
  const until = Date.now() + remaining(deadline, ms)
  for (let i = 0; i < 10_000; i++) {
    if (await check()) return
    if (Date.now() > until) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`timed out waiting for ${what}`)
}

function counts (nodes: Node[]): Promise<number[]> {
  return Promise.all(nodes.map((n) => n.peer.call<number>('count', {}, CALL_MS)))
}

function status (node: Node): Promise<Status> {
  return node.peer.call<Status>('status', {}, CALL_MS)
}

async function describe (nodes: Node[]): Promise<string[]> {
  return await Promise.all(nodes.map(async (n) => {
    try {
      const count = await n.peer.call<number>('count', {}, 2000)
      const s = await n.peer.call<Status>('status', {}, 2000)
      return `${n.name} (${n.host.addr}): ${count} events, peers ${JSON.stringify(s.peers)}, rejected ${JSON.stringify(s.rejected)}`
    } catch (err) {
      return `${n.name} (${n.host.addr}): no answer (${err instanceof Error ? err.message : String(err)})`
    }
  }))
}
