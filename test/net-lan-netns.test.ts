// LAN discovery (mDNS + TCP + Noise, no DHT at all) between three hosts, each a
// network namespace on a private switch this test builds and removes. Needs
// root and iproute2; skips loudly otherwise. Every link lives inside a
// namespace made here, so no packet (multicast included) leaves the test.
//
// The same file is also what runs inside the namespaces:
//   CROSSCAST_LAN_NODE=1   one host: a Discovery with swarm off, reporting
//                          connections as JSON lines on stdout;
//   CROSSCAST_LAN_SUITE=1  the shared transport suite for LAN, two nodes in
//                          one namespace talking over its loopback;
//   CROSSCAST_EXIT_CHECK=lan  that suite's exit check.
import test from 'brittle'
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import HyperDHT from 'hyperdht'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import { Discovery, lanServiceName } from '../lib/net/index.ts'
import { runTransportSuite, runExitCheck, waitFor, agree, keyOf, sleep, type TransportFactory } from './helpers/transport-suite.ts'
import { createTestnet } from './helpers/testnet.ts'
import { requireNetns, createLoopbackNamespace, createLan, inNamespace, type LanHost } from './helpers/netns.ts'

const HOSTS = 3

// Fast keep-alive and timeout so a cut link is noticed within seconds.
const LAN_TEST_TIMING = { keepAlive: 1000, timeout: 4000, queryInterval: 1000 }

const lanFactory: TransportFactory = {
  transport: 'lan',
  connectWithinMs: 15000,
  reconnectWithinMs: 15000,
  async setup () {
    return {
      createNode: () => new Discovery({
        keyPair: HyperDHT.keyPair(),
        swarm: false,
        lan: { interface: '127.0.0.1', host: '127.0.0.1', ...LAN_TEST_TIMING }
      }),
      link (a, b, topic) {
        a.join(topic)
        b.join(topic)
      },
      async duplicate (a, b) {
        await waitFor('both nodes to listen', () => a.lanPort !== null && b.lanPort !== null, 5000)
        // Extra TCP dials beside the ones mDNS triggers, in both directions.
        for (const [from, to] of [[a, b], [b, a]] as const) {
          const port = to.lanPort
          if (port === null) throw new Error('peer is not listening')
          const socket = net.connect({ host: '127.0.0.1', port })
          socket.on('error', () => {})
          from.attach(new NoiseSecretStream(true, socket, { keyPair: from.keyPair, keepAlive: LAN_TEST_TIMING.keepAlive }), 'lan')
        }
      }
    }
  }
}

if (process.env.CROSSCAST_LAN_NODE === '1') {
  await runNode()
} else if (process.env.CROSSCAST_EXIT_CHECK === 'lan') {
  await runExitCheck(lanFactory)
} else if (process.env.CROSSCAST_LAN_SUITE === '1') {
  runTransportSuite(lanFactory, { exitCheckScript: fileURLToPath(import.meta.url) })
  registerCrossTransportTest()
} else {
  registerTests()
}

async function runNode (): Promise<void> {
  const say = (msg: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(msg) + '\n') }
  const node = new Discovery({
    keyPair: HyperDHT.keyPair(),
    swarm: false,
    lan: { interface: process.env.CROSSCAST_LAN_ADDR, ...LAN_TEST_TIMING }
  })
  node.on('connection', (conn) => say({ event: 'connection', remote: conn.remotePublicKey.toString('hex'), transport: conn.transport }))
  node.on('disconnection', (conn) => say({ event: 'disconnection', remote: conn.remotePublicKey.toString('hex') }))
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    node.close().then(() => process.exit(0), () => process.exit(1))
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  // The parent holds our stdin: if it dies, so do we.
  process.stdin.on('end', stop)
  process.stdin.resume()
  node.join(Buffer.from(process.env.CROSSCAST_LAN_TOPIC ?? '', 'hex'))
  say({ event: 'ready', key: node.publicKey.toString('hex') })
}

// Runs inside the namespace: both transports find the same peer; each side
// must end with the one swarm connection, whatever order the two arrived in.
function registerCrossTransportTest (): void {
  test('lan + swarm: a peer reached both ways ends as one connection, the same on both sides', { timeout: 60000 }, async (t) => {
    const { bootstrap } = await createTestnet(t, 3)
    const make = (): Discovery => new Discovery({
      keyPair: HyperDHT.keyPair(),
      bootstrap,
      lan: { interface: '127.0.0.1', host: '127.0.0.1', ...LAN_TEST_TIMING }
    })
    const a = make()
    const b = make()
    t.teardown(() => a.close())
    t.teardown(() => b.close())
    const seen: string[] = []
    a.on('connection', (conn) => seen.push(conn.transport))
    const topic = randomBytes(32)
    a.join(topic)
    b.join(topic)
    await waitFor('a swarm connection both sides agree on', () => agree(a, b) && a.connections.get(keyOf(b))?.transport === 'swarm', 30000)
    await sleep(1500)
    t.ok(seen.includes('lan'), `LAN found the peer too (transports seen by a: ${seen.join(', ')})`)
    t.is(a.connections.size, 1, 'a holds one connection')
    t.is(b.connections.size, 1, 'b holds one connection')
    t.is(a.connections.get(keyOf(b))?.transport, 'swarm', 'the swarm connection is the one kept')
    t.ok(agree(a, b), 'both ends kept the same connection')
  })
}

interface Host {
  index: number
  ns: string
  addr: string
  key: string
  peers: Set<string>
  log: string[]
  child: ChildProcessWithoutNullStreams
}

function registerTests (): void {
  test('lan: the shared transport suite (and lan + swarm dedupe) passes inside a namespace', { timeout: 120000 }, async (t) => {
    if (!requireNetns(t, 'the LAN transport suite')) return
    let child: ChildProcessWithoutNullStreams | null = null
    t.teardown(async () => { if (child !== null) await stopChild(child) })
    const ns = createLoopbackNamespace(t)
    const script = fileURLToPath(import.meta.url)
    const [wrapper, ...wrapperArgs] = inNamespace(ns)
    const running = spawn(wrapper, [...wrapperArgs, process.execPath, '--import', 'tsx', script], {
      env: { ...process.env, CROSSCAST_LAN_SUITE: '1' },
      stdio: ['pipe', 'pipe', 'pipe']
    })
    child = running
    let output = ''
    running.stdout.on('data', (data: Buffer) => { output += data.toString() })
    running.stderr.on('data', (data: Buffer) => { output += data.toString() })
    const code = await new Promise<number | null>((resolve) => running.once('exit', (c) => resolve(c)))
    running.stdout.destroy()
    running.stderr.destroy()
    const lines = output.split('\n')
    for (const line of lines.filter((l) => /^(ok|not ok) \d|^# (tests|asserts) =|^\s+# lan:/.test(l))) t.comment(line.trim())
    if (code !== 0) t.comment(output)
    t.is(code, 0, 'every test of the shared suite passed for lan')
    t.ok(/# tests = (\d+)\/\1 pass/.test(output), 'the suite ran to its summary')
  })

  test('lan: three hosts in network namespaces find each other, notice a cut link, and reconnect', { timeout: 90000 }, async (t) => {
    if (!requireNetns(t, 'LAN discovery between three hosts')) return
    const hosts: Host[] = []
    t.teardown(() => Promise.all(hosts.map((host) => stopChild(host.child))))
    const lan = createLan(t, { hosts: HOSTS })

    const topic = randomBytes(32)
    t.ok(!lanServiceName(topic).includes(topic.toString('hex').slice(0, 16)), 'the advertised name does not reveal the topic')

    const script = fileURLToPath(import.meta.url)
    for (const lanHost of lan.hosts) hosts.push(startHost(lanHost, script, topic))
    await waitUntil('every host to start', () => hosts.every((h) => h.key !== ''), 30000, hosts)

    const fullMesh = (): boolean => hosts.every((h) => hosts.every((o) => o === h || h.peers.has(o.key)))
    let started = Date.now()
    await waitUntil('each host to see the other two', fullMesh, 30000, hosts)
    t.pass(`each host sees the other two (${Date.now() - started} ms)`)
    t.ok(hosts.every((h) => h.peers.size === HOSTS - 1), 'one connection per peer on every host')

    const [a, b, c] = hosts as [Host, Host, Host]
    started = Date.now()
    lan.cut(lan.hosts[2])
    await waitUntil('a and b to notice c is gone', () => !a.peers.has(c.key) && !b.peers.has(c.key), 20000, hosts)
    t.pass(`a and b noticed the cut link (${Date.now() - started} ms)`)
    await waitUntil('c to notice it is alone', () => c.peers.size === 0, 20000, hosts)
    t.pass('c noticed it lost both peers')
    t.ok(a.peers.has(b.key) && b.peers.has(a.key), 'a and b stayed connected')

    started = Date.now()
    lan.restore(lan.hosts[2])
    await waitUntil('c to reconnect to a and b', fullMesh, 30000, hosts)
    t.pass(`c reconnected to both after the link came back (${Date.now() - started} ms)`)
  })
}

function startHost (lanHost: LanHost, script: string, topic: Buffer): Host {
  const { index, ns, addr } = lanHost
  const [wrapper, ...wrapperArgs] = inNamespace(ns)
  const child = spawn(wrapper, [...wrapperArgs, process.execPath, '--import', 'tsx', script], {
    env: { ...process.env, CROSSCAST_LAN_NODE: '1', CROSSCAST_LAN_ADDR: addr, CROSSCAST_LAN_TOPIC: topic.toString('hex') },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  const host: Host = { index, ns, addr, key: '', peers: new Set(), log: [], child }
  let buffered = ''
  child.stdout.on('data', (data: Buffer) => {
    buffered += data.toString()
    let newline
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, newline)
      buffered = buffered.slice(newline + 1)
      host.log.push(line)
      let msg: { event?: string, key?: string, remote?: string }
      try { msg = JSON.parse(line) } catch { continue }
      if (msg.event === 'ready' && msg.key !== undefined) host.key = msg.key
      if (msg.event === 'connection' && msg.remote !== undefined) host.peers.add(msg.remote)
      if (msg.event === 'disconnection' && msg.remote !== undefined) host.peers.delete(msg.remote)
    }
  })
  child.stderr.on('data', (data: Buffer) => { host.log.push(`stderr: ${data.toString().trimEnd()}`) })
  child.on('exit', (code, signal) => { host.log.push(`exited code=${code} signal=${signal}`) })
  child.stdin.on('error', () => {})
  return host
}

async function stopChild (child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await exited
  clearTimeout(timer)
  child.stdout.destroy()
  child.stderr.destroy()
  child.stdin.destroy()
}

async function waitUntil (what: string, predicate: () => boolean, withinMs: number, hosts: Host[]): Promise<void> {
  const deadline = Date.now() + withinMs
  for (let i = 0; i < withinMs / 50 + 1 && Date.now() <= deadline; i++) {
    if (predicate()) return
    if (hosts.some((h) => h.child.exitCode !== null)) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  if (predicate()) return
  const state = hosts.map((h) => `host ${h.index} (${h.addr}) key ${h.key.slice(0, 8)} peers [${[...h.peers].map((k) => k.slice(0, 8)).join(', ')}]\n  ${h.log.slice(-15).join('\n  ')}`)
  throw new Error(`timed out waiting for ${what}\n${state.join('\n')}`)
}
