// The one acceptance suite every discovery transport must pass. A transport is
// described by a factory; the suite only uses the public Discovery API plus
// the factory's way to make two nodes find each other.
import test from 'brittle'
import type { Assert } from 'brittle'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import type { Discovery, TransportName } from '../../lib/net/index.ts'

export type Teardown = (fn: () => unknown, opts?: { order?: number }) => void

export interface TransportHarness {
  // A fresh node; the suite closes it.
  createNode (): Discovery
  // Make a and b look for each other (join a shared topic, open a link...).
  link (a: Discovery, b: Discovery, topic: Buffer): void
  // Force extra connection attempts in both directions, on top of discovery's own.
  duplicate (a: Discovery, b: Discovery): void | Promise<void>
}

export interface TransportFactory {
  transport: TransportName
  // Generous bounds: the machine is shared, these are not performance goals.
  connectWithinMs: number
  reconnectWithinMs: number
  setup (teardown: Teardown): Promise<TransportHarness>
}

const POLL_MS = 50

export async function waitFor (what: string, predicate: () => boolean, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs
  for (let i = 0; i < Math.ceil(withinMs / POLL_MS) + 1; i++) {
    if (predicate()) return
    if (Date.now() > deadline) break
    await sleep(POLL_MS)
  }
  if (!predicate()) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`)
}

export function sleep (ms: number, unref = false): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    if (unref) timer.unref()
  })
}

export function keyOf (node: Discovery): string {
  return node.publicKey.toString('hex')
}

// Both ends hold exactly one connection to each other, and it is the same one.
export function agree (a: Discovery, b: Discovery): boolean {
  const ab = a.connections.get(keyOf(b))
  const ba = b.connections.get(keyOf(a))
  if (ab === undefined || ba === undefined) return false
  const hash = ab.stream.handshakeHash
  return hash !== null && ba.stream.handshakeHash !== null && hash.equals(ba.stream.handshakeHash)
}

export function streamBetween (from: Discovery, to: Discovery): NoiseSecretStream {
  const conn = from.connections.get(keyOf(to))
  if (conn === undefined) throw new Error('not connected')
  return conn.stream
}

export function nextData (stream: NoiseSecretStream, withinMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { cleanup(); reject(new Error('no data arrived')) }, withinMs)
    const ondata = (data: Buffer): void => { cleanup(); resolve(data) }
    const onclose = (): void => { cleanup(); reject(new Error('stream closed before data arrived')) }
    const cleanup = (): void => {
      clearTimeout(timer)
      stream.removeListener('data', ondata)
      stream.removeListener('close', onclose)
    }
    stream.on('data', ondata)
    stream.once('close', onclose)
  })
}

export async function exchange (t: Assert, a: Discovery, b: Discovery, label: string): Promise<void> {
  const toB = Buffer.from(`${label}: hello from a ${randomBytes(4).toString('hex')}`)
  const arriving = nextData(streamBetween(b, a), 5000)
  streamBetween(a, b).write(toB)
  t.alike(await arriving, toB, `${label}: bytes written by a arrive at b`)
  const toA = Buffer.from(`${label}: hello from b`)
  const back = nextData(streamBetween(a, b), 5000)
  streamBetween(b, a).write(toA)
  t.alike(await back, toA, `${label}: bytes written by b arrive at a`)
}

// Waits until nothing has connected or disconnected for `quietMs`, so a test
// judges the settled state rather than a moment in a race.
async function settle (nodes: Discovery[], quietMs: number, withinMs: number): Promise<void> {
  let last = Date.now()
  const bump = (): void => { last = Date.now() }
  for (const node of nodes) {
    node.on('connection', bump)
    node.on('disconnection', bump)
  }
  try {
    await waitFor('connections to settle', () => Date.now() - last >= quietMs, withinMs)
  } finally {
    for (const node of nodes) {
      node.removeListener('connection', bump)
      node.removeListener('disconnection', bump)
    }
  }
}

export function runTransportSuite (factory: TransportFactory, opts: { exitCheckScript: string }): void {
  const name = factory.transport

  async function pair (t: Assert): Promise<{ a: Discovery, b: Discovery, harness: TransportHarness }> {
    const harness = await factory.setup((fn, o) => t.teardown(fn, o))
    const a = harness.createNode()
    const b = harness.createNode()
    t.teardown(() => a.close())
    t.teardown(() => b.close())
    return { a, b, harness }
  }

  test(`${name}: two nodes connect and bytes flow over the secret stream`, { timeout: 60000 }, async (t) => {
    const { a, b, harness } = await pair(t)
    harness.link(a, b, randomBytes(32))
    await waitFor('a and b to connect', () => agree(a, b), factory.connectWithinMs)
    const ab = a.connections.get(keyOf(b))
    const ba = b.connections.get(keyOf(a))
    t.ok(ab !== undefined && ab.remotePublicKey.equals(b.publicKey), 'a sees b under b\'s public key')
    t.ok(ba !== undefined && ba.remotePublicKey.equals(a.publicKey), 'b sees a under a\'s public key')
    t.is(ab?.transport, name, 'a reports the transport')
    t.is(ba?.transport, name, 'b reports the transport')
    t.not(ab?.isInitiator, ba?.isInitiator, 'exactly one end initiated')
    t.ok(typeof ab?.since === 'number' && ab.since <= Date.now(), 'since is a timestamp')
    await exchange(t, a, b, 'first connection')
  })

  test(`${name}: a dropped connection comes back by itself`, { timeout: 90000 }, async (t) => {
    const { a, b, harness } = await pair(t)
    harness.link(a, b, randomBytes(32))
    await waitFor('a and b to connect', () => agree(a, b), factory.connectWithinMs)
    const dropped = streamBetween(a, b)
    const droppedHash = dropped.handshakeHash
    const lost: string[] = []
    a.on('disconnection', () => lost.push('a'))
    b.on('disconnection', () => lost.push('b'))
    const started = Date.now()
    dropped.destroy()
    await waitFor('both ends to notice the drop', () => lost.includes('a') && lost.includes('b'), 15000)
    t.pass('both ends emitted disconnection')
    await waitFor('a and b to reconnect', () => agree(a, b) && !streamBetween(a, b).handshakeHash?.equals(droppedHash ?? Buffer.alloc(0)), factory.reconnectWithinMs)
    t.comment(`${name}: reconnected ${Date.now() - started} ms after the drop`)
    t.pass(`reconnected within ${factory.reconnectWithinMs} ms`)
    await exchange(t, a, b, 'after reconnect')
  })

  test(`${name}: racing connection attempts end in one connection on each side`, { timeout: 90000 }, async (t) => {
    const { a, b, harness } = await pair(t)
    let events = 0
    a.on('connection', () => events++)
    b.on('connection', () => events++)
    harness.link(a, b, randomBytes(32))
    await harness.duplicate(a, b)
    await waitFor('a and b to connect', () => agree(a, b), factory.connectWithinMs)
    // And once more after they settled: an extra attempt must not displace a
    // healthy connection on one side only.
    await settle([a, b], 1500, 30000)
    await harness.duplicate(a, b)
    await settle([a, b], 2000, 30000)
    t.is(a.connections.size, 1, 'a holds one connection')
    t.is(b.connections.size, 1, 'b holds one connection')
    t.ok(agree(a, b), 'both hold the same connection (same handshake hash)')
    t.comment(`${name}: ${events} connection events for the race`)
    await exchange(t, a, b, 'after dedupe')
  })

  test(`${name}: closing both nodes leaves nothing that keeps the process alive`, { timeout: 60000 }, async (t) => {
    const child = spawn(process.execPath, ['--import', 'tsx', opts.exitCheckScript], {
      env: { ...process.env, CROSSCAST_EXIT_CHECK: name },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let output = ''
    child.stdout.on('data', (data: Buffer) => { output += data.toString() })
    child.stderr.on('data', (data: Buffer) => { output += data.toString() })
    t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    const limit = sleep(45000, true).then(() => 'hung' as const)
    const result = await Promise.race([exited, limit])
    // tsx's esbuild helper inherits these pipes and may outlive the child; do
    // not let it hold this process open.
    child.stdout.destroy()
    child.stderr.destroy()
    if (result === 'hung') t.comment(output)
    t.is(result, 0, 'a script that opens, connects and closes two nodes exits by itself')
    t.ok(output.includes('exit-check: closed'), 'the script got as far as closing')
  })
}

// The child side of the exit check: connect two nodes, close everything, and
// return without calling process.exit, so any leftover handle keeps it alive.
export async function runExitCheck (factory: TransportFactory): Promise<void> {
  const teardowns: Array<{ fn: () => unknown, order: number }> = []
  const harness = await factory.setup((fn, o) => teardowns.push({ fn, order: o?.order ?? 0 }))
  const a = harness.createNode()
  const b = harness.createNode()
  harness.link(a, b, randomBytes(32))
  await waitFor('a and b to connect', () => agree(a, b), factory.connectWithinMs)
  const arriving = nextData(streamBetween(b, a), 5000)
  streamBetween(a, b).write(Buffer.from('bye'))
  await arriving
  await Promise.all([a.close(), b.close()])
  teardowns.sort((x, y) => x.order - y.order)
  for (const { fn } of teardowns) await fn()
  process.stdout.write('exit-check: closed\n')
}
