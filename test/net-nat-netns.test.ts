// Issue 12 §6: sessions in two homes, each behind its own NAT router, meet
// through a small DHT on a simulated public internet, all in network
// namespaces this test builds and removes (no packet leaves them). `lan: false`:
// the DHT is the only way to meet. Two paths:
//   direct   home routers (MASQUERADE + the usual drop of unsolicited inbound):
//            the two homes hole-punch to each other;
//   relayed  symmetric NATs (a random port per destination) on both homes, which
//            no punch gets through: `crosscast bootstrap --relay` relays, or a
//            node on a public address started with `relay: true`; the stream
//            stays end-to-end encrypted.
// A relay node in the room is announced with its presence, and the homes use it
// without being told its key.
// Prints time to the first event across the NATs and time to converge for each.
// Needs root, iproute2 and iptables: skips loudly elsewhere, fails in CI.
import test from 'brittle'
import type { Assert } from 'brittle'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { spawnPeer, type ChildPeer } from './helpers/child-peer.ts'
import { createInternet, inNamespace, natUnavailable, requireNetns, type Internet, type NatKind } from './helpers/netns.ts'

const CLI = fileURLToPath(new URL('../lib/cli/main.ts', import.meta.url))
const PUBLIC_DHT = fileURLToPath(new URL('./fixtures/public-dht.ts', import.meta.url))
const BOOTSTRAP_PORT = 49737
const EVENTS_PER_SESSION = 10
const POLL_MS = 100
// Below brittle's timeout, so a failure still goes through teardown.
const BUDGET_MS = 40_000
// How long the homes may take to connect through a relay after the room converged.
const RELAY_WAIT_MS = 15_000
const CALL_MS = 10_000

interface Session { name: string, home: number, peer: ChildPeer }
interface RelayStats { attempts: number, successes: number, aborts: number }
interface DhtStats { randomized: boolean, firewalled: boolean, relaying: RelayStats }

test('across NATs, direct: two homes behind home routers hole-punch and converge', { timeout: 60_000 }, async (t) => {
  if (!available(t, 'sessions meeting across home-router NATs')) return
  const { sessions, firstCrossMs, convergeMs, startupMs } = await scenario(t, 'home', 'none')
  const stats = await Promise.all(sessions.map((s) => s.peer.call<DhtStats>('dhtStats', {}, CALL_MS)))
  t.ok(stats.every((s) => s.firewalled && !s.randomized), 'every session is behind a NAT with a consistent mapping')
  t.ok(stats.every((s) => s.relaying.attempts === 0), 'no connection went through a relay')
  t.comment(`direct path: first event across the NATs ${firstCrossMs} ms, converged ${convergeMs} ms (after every session was open; opening took ${startupMs} ms)`)
})

test('across NATs, relayed: two homes behind symmetric NATs meet through crosscast bootstrap --relay', { timeout: 60_000 }, async (t) => {
  if (!available(t, 'sessions meeting through a relay across symmetric NATs')) return
  await relayed(t, 'bootstrap')
})

test('across NATs, relayed: two homes behind symmetric NATs meet through a public node started with relay: true', { timeout: 60_000 }, async (t) => {
  if (!available(t, 'sessions meeting through a relay node across symmetric NATs')) return
  await relayed(t, 'node')
})

test('across NATs, relayed: a public room peer with relay: true is announced, so homes told of no relay still meet through it', { timeout: 60_000 }, async (t) => {
  if (!available(t, 'sessions meeting through an announced relay across symmetric NATs')) return
  await relayed(t, 'announced')
})

async function relayed (t: Assert, relay: RelaySource): Promise<void> {
  const { sessions, firstCrossMs, convergeMs, startupMs } = await scenario(t, 'symmetric', relay)
  const dhtStats = async (): Promise<DhtStats[]> => await Promise.all(sessions.map((s) => s.peer.call<DhtStats>('dhtStats', {}, CALL_MS)))
  let stats = await dhtStats()
  // A relay peer in the room also carries the events itself, so the room can converge before the homes
  // connect to each other; that connection (a failed punch, then the relay learnt from presence) follows.
  const relayDeadline = Date.now() + RELAY_WAIT_MS
  while (!stats.some((s) => s.relaying.successes > 0) && Date.now() < relayDeadline) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
    stats = await dhtStats()
  }
  t.ok(stats.every((s) => s.randomized), 'every session sees its NAT as randomized (no punch can predict the port)')
  t.ok(stats.some((s) => s.relaying.successes > 0), `connections were relayed (${JSON.stringify(stats.map((s) => s.relaying))})`)
  t.comment(`relayed path (${relay}): first event across the NATs ${firstCrossMs} ms, converged ${convergeMs} ms (after every session was open; opening took ${startupMs} ms)`)
}

function available (t: Assert, what: string): boolean {
  if (!requireNetns(t, what)) return false
  const reason = natUnavailable()
  if (reason === null) return true
  if (process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false') t.fail(`${what} must run in CI but cannot: ${reason}`)
  else {
    t.comment(`SKIP: ${reason}; ${what} was NOT tested`)
    t.pass('skipped')
  }
  return false
}

/**
 * Who relays: nobody, `crosscast bootstrap --relay`, a crosscast node with `relay: true` in another room (so it
 * cannot carry the events itself), or one in the room whose relay the homes learn from its presence alone.
 */
type RelaySource = 'none' | 'bootstrap' | 'node' | 'announced'

interface Outcome { sessions: Session[], firstCrossMs: number, convergeMs: number, startupMs: number }

/**
 * Times run from the moment every session is open and starts writing (each has
 * been discovering since it opened, which `startupMs` covers: process start,
 * storage, DHT bootstrap begun).
 */
async function scenario (t: Assert, nat: NatKind, relay: RelaySource): Promise<Outcome> {
  const deadline = Date.now() + BUDGET_MS
  const internet = createInternet(t, { publicAddrs: 4, homes: 2, hostsPerHome: 2, nat })
  const dht = await startPublicDht(t, internet, relay === 'bootstrap')
  const bootstrap = dht.bootstrap
  let relayKey = dht.relayKey
  if (relay === 'node') {
    const node = await spawnPeer(t, { storage: await t.tmp(), room: 'relay-only', agent: 'relay', sessionId: 'relay', bootstrap: [bootstrap], lan: false, relay: true }, 30_000, { prefix: inNamespace(internet.publicNs) })
    relayKey = await node.call<string>('relayKey', {}, CALL_MS)
  }
  if (relay === 'announced') {
    await spawnPeer(t, { storage: await t.tmp(), room: 'nat-room', secret: 'nat-secret', agent: 'relay', sessionId: 'relay', bootstrap: [bootstrap], lan: false, relay: true }, 30_000, { prefix: inNamespace(internet.publicNs) })
  }

  const spawned = Date.now()
  const sessions = await Promise.all(internet.homes.flatMap((home, h) => home.hosts.map(async (host, i): Promise<Session> => {
    const name = `h${h}${i}`
    const peer = await spawnPeer(t, {
      storage: await t.tmp(),
      room: 'nat-room',
      secret: 'nat-secret',
      agent: `agent-${name}`,
      sessionId: `s-${name}`,
      bootstrap: [bootstrap],
      lan: false,
      ...(relayKey !== null ? { relayThrough: [relayKey] } : {})
    }, 30_000, { prefix: inNamespace(host.ns) })
    return { name, home: h, peer }
  })))

  const started = Date.now()
  const startupMs = started - spawned
  await Promise.all(sessions.map((s) => s.peer.call('write', { count: EVENTS_PER_SESSION, concurrency: 1 }, CALL_MS)))
  const total = sessions.length * EVENTS_PER_SESSION
  let firstCrossMs = -1
  for (;;) {
    const counts = await Promise.all(sessions.map((s) => s.peer.call<Record<string, number>>('countBySession', {}, CALL_MS)))
    const crossed = sessions.some((s, i) => sessions.some((other) => other.home !== s.home && (counts[i][`s-${other.name}`] ?? 0) > 0))
    if (crossed && firstCrossMs < 0) firstCrossMs = Date.now() - started
    if (counts.every((c) => sessions.every((s) => c[`s-${s.name}`] === EVENTS_PER_SESSION))) break
    if (Date.now() > deadline) {
      t.fail(`did not converge within the budget (${nat} NAT, relay: ${relay}): events per node ${JSON.stringify(counts)}`)
      return { sessions, firstCrossMs, convergeMs: -1, startupMs }
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS))
  }
  const convergeMs = Date.now() - started
  t.pass(`all ${sessions.length} sessions hold all ${total} events (${nat} NAT, relay: ${relay})`)
  return { sessions, firstCrossMs, convergeMs, startupMs }
}

/** `crosscast bootstrap` on the first public address, persistent DHT nodes on the others. */
async function startPublicDht (t: Assert, internet: Internet, relay: boolean): Promise<{ bootstrap: string, relayKey: string | null }> {
  const [bootstrapHost, ...nodeHosts] = internet.publicAddrs
  const args = ['bootstrap', '--host', bootstrapHost, '--port', String(BOOTSTRAP_PORT), ...(relay ? ['--relay', '--storage', await t.tmp()] : [])]
  const line = await startChild(t, internet.publicNs, [CLI, ...args], (l) => l.startsWith('peers use:'))
  const relayKey = /--relay-through ([0-9a-f]{64})/.exec(line)?.[1] ?? null
  if (relay && relayKey === null) throw new Error(`bootstrap printed no relay key: ${line}`)
  const bootstrap = `${bootstrapHost}:${BOOTSTRAP_PORT}`
  const nodes = JSON.stringify({ bootstrap: [{ host: bootstrapHost, port: BOOTSTRAP_PORT }], hosts: nodeHosts })
  await startChild(t, internet.publicNs, [PUBLIC_DHT, nodes], (l) => l.includes('"ready"'))
  return { bootstrap, relayKey }
}

/** Starts a node script in `ns`, resolves with the first stdout line `ready` accepts; killed by pid at teardown. */
async function startChild (t: Assert, ns: string, argv: string[], ready: (line: string) => boolean): Promise<string> {
  const [cmd, ...rest] = [...inNamespace(ns), process.execPath, '--import', 'tsx', ...argv]
  const child = spawn(cmd, rest, { stdio: ['pipe', 'pipe', 'inherit'] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGKILL')
    await exited
  })
  const lines = createInterface({ input: child.stdout })
  return await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')} was not ready within 20 s`)), 20_000)
    lines.on('line', (line) => {
      if (!ready(line)) return
      clearTimeout(timer)
      resolve(line)
    })
    exited.then(() => { clearTimeout(timer); reject(new Error(`${argv.join(' ')} exited before it was ready`)) })
  })
}

test('relayThrough: anything but 64-hex-digit relay keys is refused, naming the option', async (t) => {
  const { Crosscast } = await import('../lib/index.ts')
  for (const relayThrough of [['not-a-key'], 'a'.repeat(64), [42]]) {
    await t.exception(Crosscast.open({ storage: await t.tmp(), swarm: false, lan: false, relayThrough: relayThrough as string[] }), /relayThrough must be an array of relay public keys/)
  }
  const { Discovery } = await import('../lib/net/index.ts')
  const HyperDHT = (await import('hyperdht')).default
  t.exception(() => new Discovery({ keyPair: HyperDHT.keyPair(), lan: false, bootstrap: ['127.0.0.1:1'], relayThrough: ['ab'] }), /relayThrough\[0\] must be a relay public key/)
})
