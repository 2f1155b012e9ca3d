import test from 'brittle'
import type { Assert } from 'brittle'
import { EventEmitter, once } from 'node:events'
import net from 'node:net'
import Corestore from 'corestore'
import type Hypercore from 'hypercore'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import type { KeyPair } from '@hyperswarm/secret-stream'
import Protomux from 'protomux'
import c from 'compact-encoding'
import { deriveRoom } from '../lib/replication/room.ts'
import { RoomReplicator, ROOM_PROTOCOL, DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_SILENT_TIMEOUT_MS, type WriterDirectory, type WriterInfo, type RoomConnection } from '../lib/replication/replicator.ts'
import { connectionMac, encodeWriters, decodeWriters } from '../lib/replication/wire.ts'
import { CrosscastError } from '../lib/errors.ts'

// ---- scaffolding: a directory over real corestores, as the node will have ----

class TestDirectory implements WriterDirectory {
  readonly store: Corestore
  readonly cores = new Map<string, Hypercore>()
  readonly infos = new Map<string, WriterInfo>()
  addCalls = 0

  constructor (store: Corestore) {
    this.store = store
  }

  listWriters (): WriterInfo[] {
    return [...this.infos.values()]
  }

  addOwn (info: WriterInfo, core: Hypercore): void {
    this.infos.set(info.key.toString('hex'), info)
    this.cores.set(info.key.toString('hex'), core)
  }

  async addWriter (info: WriterInfo): Promise<boolean> {
    this.addCalls++
    const hex = info.key.toString('hex')
    if (this.infos.has(hex)) return false
    this.infos.set(hex, info)
    const core = this.store.get({ key: info.key, allowFork: false })
    await core.ready()
    this.cores.set(hex, core)
    core.download({ start: 0, end: -1 })
    return true
  }
}

interface Peer {
  name: string
  keyPair: KeyPair
  store: Corestore
  directory: TestDirectory
  writer: Hypercore
  info: WriterInfo
  replicator: RoomReplicator
  learnt: Array<{ info: WriterInfo, from: string }>
  rejected: Array<{ reason: string }>
}

async function makePeer (t: Assert, name: string, room: { authKey: Buffer }, opts: { handshakeTimeoutMs?: number } = {}): Promise<Peer> {
  const store = new Corestore(await t.tmp())
  const writer = store.get({ name: 'writer' })
  await writer.ready()
  const directory = new TestDirectory(store)
  const info = { key: writer.key, sessionId: `sess-${name}`, agentId: `agent-${name}` }
  directory.addOwn(info, writer)
  const replicator = new RoomReplicator({ directory, authKey: room.authKey, ...opts })
  const peer: Peer = { name, keyPair: NoiseSecretStream.keyPair(), store, directory, writer, info, replicator, learnt: [], rejected: [] }
  replicator.on('writer', (learntInfo, from) => { peer.learnt.push({ info: learntInfo, from }) })
  replicator.on('rejected', (_conn, reason) => { peer.rejected.push({ reason }) })
  t.teardown(async () => {
    await replicator.close()
    await store.close()
  }, { order: 1 })
  return peer
}

type Conn = RoomConnection & { stream: NoiseSecretStream }

/** Two real Noise streams piped together in-process; each side gets its node's key pair. */
function streamPair (t: Assert, initiatorKeys: KeyPair, responderKeys: KeyPair): [NoiseSecretStream, NoiseSecretStream] {
  const a = new NoiseSecretStream(true, null, { keyPair: initiatorKeys })
  const b = new NoiseSecretStream(false, null, { keyPair: responderKeys })
  a.rawStream.pipe(b.rawStream).pipe(a.rawStream)
  for (const s of [a, b, a.rawStream, b.rawStream]) s.on('error', () => {})
  t.teardown(() => { a.destroy(); b.destroy() })
  return [a, b]
}

function conn (stream: NoiseSecretStream, remote: KeyPair | null): Conn {
  return { stream, remotePublicKey: remote === null ? null : remote.publicKey }
}

/** Connects two peers the way discovery will: both sides attach as soon as the stream exists. */
function link (t: Assert, a: Peer, b: Peer): [Conn, Conn] {
  const [sa, sb] = streamPair(t, a.keyPair, b.keyPair)
  const ca = conn(sa, b.keyPair)
  const cb = conn(sb, a.keyPair)
  a.replicator.attach(ca)
  b.replicator.attach(cb)
  return [ca, cb]
}

async function within<T> (ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function until (ms: number, what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function closed (stream: NoiseSecretStream): Promise<unknown> {
  if (stream.destroyed) return Promise.resolve()
  // Not events.once: it rejects on the 'error' that a destroyed stream may emit first.
  return new Promise((resolve) => { stream.once('close', resolve) })
}

async function readAll (core: Hypercore, length: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < length; i++) {
    const block = await core.get(i, { timeout: 5000 })
    out.push(block === null ? '<null>' : block.toString())
  }
  return out
}

function hex (keyPair: KeyPair): string {
  return keyPair.publicKey.toString('hex')
}

// ---- room derivation ----

test('deriveRoom: topic and key depend on name and secret, inputs validated', async (t) => {
  const a = deriveRoom('crosscast', 's3cret')
  t.is(a.topic.byteLength, 32)
  t.is(a.authKey.byteLength, 32)
  t.ok(a.topic.equals(deriveRoom('crosscast', 's3cret').topic), 'deterministic')
  t.absent(a.topic.equals(a.authKey), 'the published topic is not the auth key')
  t.absent(a.topic.equals(deriveRoom('crosscast', 'other').topic), 'another secret: another topic')
  t.absent(a.topic.equals(deriveRoom('crosscast').topic), 'no secret: another topic')
  t.absent(a.authKey.equals(deriveRoom('crosscast').authKey), 'no secret: another auth key')
  t.absent(a.topic.equals(deriveRoom('crosscast2', 's3cret').topic), 'another name: another topic')
  t.absent(deriveRoom('ab', 'c').topic.equals(deriveRoom('a', 'bc').topic), 'no ambiguity at the name/secret boundary')
  t.absent(a.topic.toString('latin1').includes('crosscast'), 'name not in the topic')
  t.ok(a.probeTopic.equals(deriveRoom('crosscast', 'other').probeTopic) && a.probeTopic.equals(deriveRoom('crosscast').probeTopic), 'the probe topic depends on the name only, so wrong secrets meet there')
  t.absent(a.probeTopic.equals(deriveRoom('crosscast2', 's3cret').probeTopic), 'another name: another probe topic')
  t.absent(a.probeTopic.equals(a.topic) || deriveRoom('crosscast').probeTopic.equals(deriveRoom('crosscast').topic), 'never the room topic, even without a secret')

  for (const [name, secret, field] of [['', undefined, 'room'], ['x'.repeat(257), undefined, 'room'], [42, undefined, 'room'], ['ok', 7, 'secret'], ['ok', '', 'secret']] as const) {
    try {
      deriveRoom(name as string, secret as unknown as string)
      t.fail(`accepted ${String(name).slice(0, 10)} / ${String(secret)}`)
    } catch (err) {
      t.ok(err instanceof CrosscastError && err.code === 'INVALID_OPTION' && err.field === field, `rejects bad ${field}`)
    }
  }
  t.is(deriveRoom('x'.repeat(256)).topic.byteLength, 32, '256 characters is allowed')
})

// ---- replication ----

test('same secret: both authenticate, B learns A\'s writer and reads its blocks', async (t) => {
  const room = deriveRoom('project-x', 'hunter2')
  const a = await makePeer(t, 'a', room)
  const b = await makePeer(t, 'b', room)
  await a.writer.append([Buffer.from('a0'), Buffer.from('a1'), Buffer.from('a2')])

  const authA = once(a.replicator as unknown as EventEmitter, 'authenticated')
  const authB = once(b.replicator as unknown as EventEmitter, 'authenticated')
  link(t, a, b)
  await within(5000, 'both sides authenticated', Promise.all([authA, authB]))

  t.is(a.replicator.peers.get(hex(b.keyPair))?.authenticated, true, 'A lists B as authenticated')
  t.is(b.replicator.peers.get(hex(a.keyPair))?.authenticated, true, 'B lists A as authenticated')

  await until(5000, 'B learns A\'s writer', () => b.learnt.length > 0)
  t.alike(b.learnt[0].info, a.info, 'key, sessionId and agentId arrive intact')
  t.is(b.learnt[0].from, hex(a.keyPair), 'learnt from A')
  await until(5000, 'A learns B\'s writer', () => a.learnt.length > 0)
  t.alike(a.learnt[0].info, b.info)

  const onB = b.directory.cores.get(a.info.key.toString('hex'))
  t.ok(onB, 'B opened A\'s core')
  t.alike(await readAll(onB as Hypercore, 3), ['a0', 'a1', 'a2'], 'B reads A\'s blocks')

  await a.writer.append(Buffer.from('a3'))
  t.is((await (onB as Hypercore).get(3, { timeout: 5000 }))?.toString(), 'a3', 'a later block arrives live')
  t.is(a.rejected.length + b.rejected.length, 0, 'nobody rejected')
})

test('over a real TCP socket on 127.0.0.1: authenticate and replicate', async (t) => {
  const room = deriveRoom('project-x', 'hunter2')
  const a = await makePeer(t, 'a', room)
  const b = await makePeer(t, 'b', room)
  await a.writer.append([Buffer.from('t0'), Buffer.from('t1')])

  const streams: NoiseSecretStream[] = []
  const server = net.createServer((socket) => {
    const stream = new NoiseSecretStream(false, socket, { keyPair: b.keyPair })
    stream.on('error', () => {})
    streams.push(stream)
    b.replicator.attach(conn(stream, null)) // a responder learns the remote key from the handshake
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const s of streams) s.destroy()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const { port } = server.address() as net.AddressInfo
  const socket = net.connect(port, '127.0.0.1')
  const stream = new NoiseSecretStream(true, socket, { keyPair: a.keyPair })
  stream.on('error', () => {})
  streams.push(stream)
  a.replicator.attach(conn(stream, b.keyPair))

  await until(5000, 'B learns A\'s writer', () => b.learnt.length > 0)
  t.is(b.replicator.peers.get(hex(a.keyPair))?.authenticated, true, 'B keyed A by its Noise public key')
  const onB = b.directory.cores.get(a.info.key.toString('hex')) as Hypercore
  t.alike(await readAll(onB, 2), ['t0', 't1'], 'B reads A\'s blocks over TCP')
})

test('gossip: C learns A\'s writer through B and downloads A\'s blocks from B', async (t) => {
  const room = deriveRoom('project-x', 'hunter2')
  const a = await makePeer(t, 'a', room)
  const b = await makePeer(t, 'b', room)
  const c3 = await makePeer(t, 'c', room)
  await a.writer.append([Buffer.from('x0'), Buffer.from('x1')])

  link(t, a, b)
  link(t, b, c3)

  await until(8000, 'C learns A\'s writer', () => c3.learnt.some((l) => l.info.key.equals(a.info.key)))
  const viaB = c3.learnt.find((l) => l.info.key.equals(a.info.key))
  t.is(viaB?.from, hex(b.keyPair), 'the key came from B')
  t.absent(c3.replicator.peers.has(hex(a.keyPair)), 'C has no connection to A')

  const onC = c3.directory.cores.get(a.info.key.toString('hex')) as Hypercore
  t.alike(await readAll(onC, 2), ['x0', 'x1'], 'C reads A\'s blocks, served by B')

  await a.writer.append(Buffer.from('x2'))
  t.is((await onC.get(2, { timeout: 8000 }))?.toString(), 'x2', 'a new block of A reaches C through B')

  await until(8000, 'A learns C\'s writer through B', () => a.learnt.some((l) => l.info.key.equals(c3.info.key)))
  t.pass('gossip flows both ways')

  // A writer announced locally after the handshake reaches everyone.
  const extra = a.store.get({ name: 'second-writer' })
  await extra.ready()
  const extraInfo = { key: extra.key, sessionId: 'sess-a2', agentId: 'agent-a' }
  a.directory.addOwn(extraInfo, extra)
  a.replicator.announce(extraInfo)
  await until(8000, 'C learns the announced writer', () => c3.learnt.some((l) => l.info.key.equals(extra.key)))
  t.pass('announce gossips to every authenticated peer')
})

for (const intruderSecret of ['wrong-secret', undefined]) {
  test(`intruder with ${intruderSecret === undefined ? 'no' : 'a wrong'} secret: rejected, sees no block and no writer key`, async (t) => {
    const a = await makePeer(t, 'a', deriveRoom('project-x', 'hunter2'))
    await a.writer.append([Buffer.from('secret-0'), Buffer.from('secret-1')])

    // Worst case: the intruder knows the topic, somehow knows A's writer key,
    // speaks the room protocol and replicates eagerly without waiting for auth.
    const intruderStore = new Corestore(await t.tmp())
    t.teardown(() => intruderStore.close(), { order: 1 })
    const stolen = intruderStore.get({ key: a.info.key })
    await stolen.ready()
    stolen.download({ start: 0, end: -1 })

    const rejected = once(a.replicator as unknown as EventEmitter, 'rejected')
    const intruder = await rawRoomPeer(t, a, deriveRoom('project-x', intruderSecret).authKey, intruderStore)

    const [rejectedConn, reason] = await within(5000, 'A rejects the intruder', rejected)
    t.is(reason, 'wrong room secret')
    await within(5000, 'the stream closes', closed(intruder.stream))
    t.ok(intruder.stream.destroyed, 'the intruder\'s stream is destroyed')
    // A ends its side (so its own proof still reaches the peer) rather than cutting it.
    await within(5000, 'A\'s side closes', closed((rejectedConn as Conn).stream))
    t.ok((rejectedConn as Conn).stream.destroyed, 'A\'s side is destroyed too')
    t.is(a.replicator.peers.size, 0, 'A keeps no peer')

    t.ok(intruder.received.every((m) => m.byteLength === 32), 'the intruder got at most A\'s 32-byte MAC on the room channel')
    t.absent(intruder.received.some((m) => m.indexOf(a.info.key) !== -1), 'the intruder never received a writer key')
    t.is(stolen.contiguousLength, 0, 'the intruder never received a block')
    t.absent(await stolen.has(0), 'block 0 absent on the intruder')
    t.is(a.directory.addCalls, 0, 'A learnt nothing from the intruder')
  })
}

test('a peer that never authenticates is dropped after handshakeTimeoutMs', async (t) => {
  const a = await makePeer(t, 'a', deriveRoom('project-x', 'hunter2'), { handshakeTimeoutMs: 300 })
  const silentKeys = NoiseSecretStream.keyPair()
  const [sa, ss] = streamPair(t, a.keyPair, silentKeys)
  const rejected = once(a.replicator as unknown as EventEmitter, 'rejected')
  a.replicator.attach(conn(sa, silentKeys))
  // Completes the Noise handshake, then never answers.
  const [, reason] = await within(3000, 'timeout rejection', rejected)
  t.is(reason, 'no valid room auth within 300 ms')
  await within(3000, 'stream closes', closed(ss))
  t.pass('the silent peer was disconnected')
})

test('a stream that receives nothing after our proof is dropped as silent after ~1 s, long before the handshake timeout', async (t) => {
  // What a half-open stream looks like from the end that kept it (hyperdht#304):
  // the handshake completed, then not a byte. Hyperswarm would keep it and refuse redials.
  const a = await makePeer(t, 'a', deriveRoom('project-x', 'hunter2'))
  const deadKeys = NoiseSecretStream.keyPair()
  const [sa, sd] = streamPair(t, a.keyPair, deadKeys)
  const rejected: string[] = []
  a.replicator.on('rejected', (_conn, reason) => { rejected.push(reason) })
  const silent = once(a.replicator as unknown as EventEmitter, 'silent')
  const started = Date.now()
  a.replicator.attach(conn(sa, deadKeys))
  await within(DEFAULT_HANDSHAKE_TIMEOUT_MS - 1000, 'the silent drop', silent)
  const ms = Date.now() - started
  t.ok(ms >= DEFAULT_SILENT_TIMEOUT_MS - 50, `not before the silent timeout (${ms} ms)`)
  await within(3000, 'stream closes', closed(sd))
  t.ok(sa.destroyed, 'our end of the stream is destroyed, so Hyperswarm can dial again')
  t.alike(rejected, [], 'a silent stream is not reported as a failed room handshake')
  t.is(a.replicator.peers.size, 0, 'A keeps no peer')
})

test('a peer that opens the room channel but is slow to prove is not dropped as silent', async (t) => {
  const a = await makePeer(t, 'a', deriveRoom('project-x', 'hunter2'))
  const slowKeys = NoiseSecretStream.keyPair()
  const [sa, ss] = streamPair(t, a.keyPair, slowKeys)
  let silent = false
  a.replicator.on('silent', () => { silent = true })
  a.replicator.attach(conn(sa, slowKeys))
  const mux = Protomux.from(ss)
  const channel = mux.createChannel({ protocol: ROOM_PROTOCOL, messages: [{ encoding: c.raw }, { encoding: c.raw }] })
  channel!.open()
  await new Promise((resolve) => setTimeout(resolve, DEFAULT_SILENT_TIMEOUT_MS + 500))
  t.absent(silent, 'a peer that answered on the room channel is left to the handshake timeout')
  t.absent(sa.destroyed, 'its stream is still open')
})

test('a peer that refuses the room channel is dropped at once', async (t) => {
  const a = await makePeer(t, 'a', deriveRoom('project-x', 'hunter2'))
  const otherKeys = NoiseSecretStream.keyPair()
  const [sa, so] = streamPair(t, a.keyPair, otherKeys)
  const rejected = once(a.replicator as unknown as EventEmitter, 'rejected')
  a.replicator.attach(conn(sa, otherKeys))
  Protomux.from(so) // speaks protomux, knows no crosscast/room/v1: refuses our channel
  const [, reason] = await within(3000, 'refusal', rejected)
  t.ok(/refused the room channel/.test(String(reason)), String(reason))
  await within(3000, 'stream closes', closed(so))
})

test('replay: an auth relayed from another Noise session does not authenticate', async (t) => {
  const room = deriveRoom('project-x', 'hunter2')
  const a = await makePeer(t, 'a', room)
  const b = await makePeer(t, 'b', room)
  await a.writer.append(Buffer.from('private'))

  // M sits between A and B, terminating one Noise session with each and
  // forwarding the decrypted frames verbatim, including A's and B's auth.
  const mKeys = NoiseSecretStream.keyPair()
  const [sa, smA] = streamPair(t, a.keyPair, mKeys)
  const [smB, sb] = streamPair(t, mKeys, b.keyPair)
  const seenByM: Buffer[] = []
  smA.on('data', (data: Buffer) => { seenByM.push(data); smB.write(data) })
  smB.on('data', (data: Buffer) => { seenByM.push(data); smA.write(data) })

  const rejectedA = once(a.replicator as unknown as EventEmitter, 'rejected')
  const rejectedB = once(b.replicator as unknown as EventEmitter, 'rejected')
  a.replicator.attach(conn(sa, mKeys))
  b.replicator.attach(conn(sb, mKeys))

  const [[, reasonA], [, reasonB]] = await within(5000, 'both reject the relayed auth', Promise.all([rejectedA, rejectedB]))
  t.is(reasonA, 'wrong room secret')
  t.is(reasonB, 'wrong room secret')
  t.ok(seenByM.length >= 2, 'M did relay frames (opens and auth)')
  const everything = Buffer.concat(seenByM)
  t.is(everything.indexOf(a.info.key), -1, 'M never saw A\'s writer key')
  t.is(everything.indexOf(b.info.key), -1, 'M never saw B\'s writer key')
  t.is(a.directory.addCalls + b.directory.addCalls, 0, 'nobody learnt a writer')
})

test('reflection: a peer echoing our own auth back is rejected', async (t) => {
  const a = await makePeer(t, 'a', deriveRoom('project-x', 'hunter2'))
  const mirrorKeys = NoiseSecretStream.keyPair()
  const [sa, mirror] = streamPair(t, a.keyPair, mirrorKeys)
  mirror.on('data', (data: Buffer) => { mirror.write(data) })
  const rejected = once(a.replicator as unknown as EventEmitter, 'rejected')
  a.replicator.attach(conn(sa, mirrorKeys))
  const [, reason] = await within(5000, 'A rejects its own reflected auth', rejected)
  t.is(reason, 'wrong room secret')
})

/** A hand-rolled room peer that knows the secret, so it can authenticate and then misbehave. */
async function rawRoomPeer (t: Assert, a: Peer, authKey: Buffer, store?: Corestore): Promise<{ stream: NoiseSecretStream, send: (type: number, payload: Buffer) => void, received: Buffer[] }> {
  const keys = NoiseSecretStream.keyPair()
  const [sa, sg] = streamPair(t, a.keyPair, keys)
  a.replicator.attach(conn(sa, keys))
  if (store !== undefined) store.replicate(sg)
  await sg.opened
  const received: Buffer[] = []
  const channel = Protomux.from(sg).createChannel({
    protocol: ROOM_PROTOCOL,
    messages: [
      { encoding: c.raw, onmessage: (m: Buffer) => { received.push(m) } },
      { encoding: c.raw, onmessage: (m: Buffer) => { received.push(m) } }
    ]
  })
  if (channel === null) throw new Error('no channel')
  channel.open()
  channel.messages[0].send(connectionMac(authKey, sg.handshakeHash as Buffer, sg.isInitiator))
  return { stream: sg, send: (type, payload) => { channel.messages[type].send(payload) }, received }
}

test('garbage on the channel closes only that connection', async (t) => {
  const room = deriveRoom('project-x', 'hunter2')
  const a = await makePeer(t, 'a', room)
  const b = await makePeer(t, 'b', room)
  await a.writer.append(Buffer.from('g0'))
  link(t, a, b)
  await until(5000, 'B learns A', () => b.learnt.length > 0)

  const g = await rawRoomPeer(t, a, room.authKey)
  await until(5000, 'A authenticates G', () => [...a.replicator.peers.values()].filter((p) => p.authenticated).length === 2)

  // Oversized: ignored, the connection stays.
  const oversized = c.encode(c.uint, 20_000)
  g.send(1, Buffer.from(oversized))
  // Bad labels are skipped; a valid entry in the same message is still learnt.
  const fakeKey = Buffer.alloc(32, 7)
  const mixed = encodeWriters([{ key: Buffer.alloc(32, 9), sessionId: 'bad label!', agentId: 'x' }, { key: fakeKey, sessionId: 'sess-g', agentId: 'agent-g' }])
  g.send(1, mixed)
  await until(5000, 'A learns G\'s valid writer', () => a.learnt.some((l) => l.info.key.equals(fakeKey)))
  t.absent(a.learnt.some((l) => l.info.key.equals(Buffer.alloc(32, 9))), 'the entry with a bad label was skipped')
  t.absent(g.stream.destroyed, 'oversized and partly invalid messages do not close the connection')
  await until(5000, 'B hears of G\'s writer through A', () => b.learnt.some((l) => l.info.key.equals(fakeKey)))

  g.send(1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))
  await within(5000, 'G\'s stream closes', closed(g.stream))
  t.pass('garbage closed the garbage sender\'s connection')
  t.is([...a.replicator.peers.values()].filter((p) => p.authenticated).length, 1, 'A still has B')

  await a.writer.append(Buffer.from('g1'))
  const onB = b.directory.cores.get(a.info.key.toString('hex')) as Hypercore
  t.is((await onB.get(1, { timeout: 5000 }))?.toString(), 'g1', 'A and B keep replicating')
  const late = a.store.get({ name: 'late' })
  await late.ready()
  const lateInfo = { key: late.key, sessionId: 'sess-late', agentId: 'agent-a' }
  a.directory.addOwn(lateInfo, late)
  a.replicator.announce(lateInfo)
  await until(5000, 'B learns a writer announced after the garbage', () => b.learnt.some((l) => l.info.key.equals(late.key)))
  t.pass('gossip between A and B still works')
})

test('writers before auth is a protocol violation', async (t) => {
  const room = deriveRoom('project-x', 'hunter2')
  const a = await makePeer(t, 'a', room)
  const keys = NoiseSecretStream.keyPair()
  const [sa, sg] = streamPair(t, a.keyPair, keys)
  const rejected = once(a.replicator as unknown as EventEmitter, 'rejected')
  a.replicator.attach(conn(sa, keys))
  await sg.opened
  const channel = Protomux.from(sg).createChannel({ protocol: ROOM_PROTOCOL, messages: [{ encoding: c.raw }, { encoding: c.raw }] })
  channel?.open()
  channel?.messages[1].send(encodeWriters([{ key: Buffer.alloc(32, 1), sessionId: 's', agentId: 'a' }]))
  const [, reason] = await within(5000, 'rejection', rejected)
  t.ok(/writers before auth/.test(String(reason)), String(reason))
  t.is(a.directory.addCalls, 0, 'nothing learnt')
})

test('close is idempotent, leaves no timer, and refuses later connections', async (t) => {
  const a = await makePeer(t, 'a', deriveRoom('project-x', 'hunter2'), { handshakeTimeoutMs: 200 })
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const timersBefore = timers()
  const keys = NoiseSecretStream.keyPair()
  const [sa] = streamPair(t, a.keyPair, keys)
  a.replicator.attach(conn(sa, keys))
  await sa.opened
  const first = a.replicator.close()
  t.is(a.replicator.close(), first, 'the same promise')
  await first
  t.is(a.replicator.peers.size, 0)
  t.is(timers(), timersBefore, 'the handshake timer is gone')

  // A handshake timer surviving close() would fire here and destroy the stream.
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.is(a.rejected.length, 0, 'no rejection after close')
  t.absent(sa.destroyed, 'the stream (owned by discovery) was left alone')

  const [sLate] = streamPair(t, a.keyPair, NoiseSecretStream.keyPair())
  a.replicator.attach(conn(sLate, keys))
  await within(3000, 'late stream closed', closed(sLate))
  t.pass('a connection attached after close is destroyed')
})

test('wire compatibility: a peer on the older format (no features in its open message) gets bare keys; a current peer gets lengths', async (t) => {
  const room = deriveRoom('project-x', 'hunter2')
  const a = await makePeer(t, 'a', room)
  await a.writer.append(Buffer.from('w0'))
  a.directory.infos.set(a.info.key.toString('hex'), { ...a.info, length: 1, fork: 0, ended: false })

  // The older format: two messages, no handshake; it must decode what it receives with the old decoder.
  const old = await rawRoomPeer(t, a, room.authKey)
  await until(5000, 'the older peer to receive A\'s writers', () => old.received.length >= 2)
  const listed = decodeWriters(old.received[1])
  t.ok(listed.ok && listed.writers.length === 1 && listed.writers[0].key.equals(a.info.key), 'message 1, bare keys, as before')
  t.is(listed.ok ? listed.writers[0].length : 'x', undefined, 'no length where an older peer could misread it')
  old.send(1, encodeWriters([{ key: Buffer.alloc(32, 5), sessionId: 'sess-old', agentId: 'agent-old' }]))
  await until(5000, 'A learns the older peer\'s writer', () => a.learnt.some((l) => l.info.key.equals(Buffer.alloc(32, 5))))
  t.is(a.learnt.find((l) => l.info.key.equals(Buffer.alloc(32, 5)))?.info.length, undefined, 'learnt without a length (its log is opened and kept open, as before)')

  const b = await makePeer(t, 'b', room)
  link(t, a, b)
  await until(5000, 'B learns A', () => b.learnt.some((l) => l.info.key.equals(a.info.key)))
  t.alike(b.learnt.find((l) => l.info.key.equals(a.info.key))?.info, { ...a.info, length: 1, fork: 0, ended: false }, 'a current peer gets the writer with its length and fork')
})
