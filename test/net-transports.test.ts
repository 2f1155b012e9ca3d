// Runs the shared transport acceptance suite for the swarm (a private DHT on
// 127.0.0.1, LAN off) and the in-memory link, plus dedupe and option checks.
import test from 'brittle'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import HyperDHT from 'hyperdht'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import { Discovery, connectInMemory, parseBootstrap, prefers, type PeerConnection } from '../lib/net/index.ts'
import { isCrosscastError } from '../lib/errors.ts'
import { createTestnet } from './helpers/testnet.ts'
import { runTransportSuite, runExitCheck, waitFor, agree, sleep, exchange, type TransportFactory } from './helpers/transport-suite.ts'

const swarmFactory: TransportFactory = {
  transport: 'swarm',
  connectWithinMs: 30000,
  reconnectWithinMs: 30000,
  async setup (teardown) {
    const { bootstrap } = await createTestnet({ teardown }, 3)
    return {
      createNode: () => new Discovery({ keyPair: HyperDHT.keyPair(), bootstrap, lan: false }),
      link (a, b, topic) {
        a.join(topic)
        b.join(topic)
      },
      duplicate (a, b) {
        // Raw DHT dials beside the ones Hyperswarm makes, in both directions.
        for (const [from, to] of [[a, b], [b, a]] as const) {
          const dht = from.swarm?.dht
          if (dht === undefined) throw new Error('swarm is off')
          from.attach(dht.connect(to.publicKey, { keyPair: from.keyPair }), 'swarm')
        }
      }
    }
  }
}

const memoryFactory: TransportFactory = {
  transport: 'memory',
  connectWithinMs: 5000,
  reconnectWithinMs: 5000,
  async setup () {
    return {
      createNode: () => new Discovery({ keyPair: HyperDHT.keyPair(), swarm: false, lan: false }),
      link (a, b) {
        // The link stops by itself once either node closes.
        connectInMemory(a, b)
      },
      duplicate (a, b) {
        const extra = connectInMemory(a, b, { reconnect: false })
        extra.dial('b')
        extra.close()
      }
    }
  }
}

const factories: Record<string, TransportFactory> = { swarm: swarmFactory, memory: memoryFactory }
const exitCheck = process.env.CROSSCAST_EXIT_CHECK

if (exitCheck !== undefined) {
  const factory = factories[exitCheck]
  if (factory === undefined) throw new Error(`unknown transport ${exitCheck}`)
  await runExitCheck(factory)
} else {
  const self = fileURLToPath(import.meta.url)
  runTransportSuite(swarmFactory, { exitCheckScript: self })
  runTransportSuite(memoryFactory, { exitCheckScript: self })

  test('dedupe rule: both ends pick the same connection whatever order they see them in', (t) => {
    const low = Buffer.alloc(32, 1)
    const high = Buffer.alloc(32, 2)
    const h1 = Buffer.alloc(32, 7)
    const h2 = Buffer.alloc(32, 9)
    const cases = [
      [{ transport: 'lan', initiatorKey: high, handshakeHash: h1 }, { transport: 'swarm', initiatorKey: low, handshakeHash: h2 }],
      [{ transport: 'swarm', initiatorKey: low, handshakeHash: h1 }, { transport: 'swarm', initiatorKey: high, handshakeHash: h2 }],
      [{ transport: 'lan', initiatorKey: low, handshakeHash: h2 }, { transport: 'lan', initiatorKey: low, handshakeHash: h1 }]
    ] as const
    for (const [x, y] of cases) {
      t.is(prefers(x, y), !prefers(y, x), `${x.transport}/${y.transport}: exactly one of the two wins`)
    }
    t.ok(prefers(cases[0][1], cases[0][0]), 'swarm beats lan')
    t.ok(prefers(cases[1][1], cases[1][0]), 'the higher initiator key wins within a transport')
    t.ok(prefers(cases[2][1], cases[2][0]), 'the lower handshake hash breaks a tie')
  })

  test('a connection to our own key is refused', async (t) => {
    const a = new Discovery({ keyPair: HyperDHT.keyPair(), swarm: false, lan: false })
    t.teardown(() => a.close())
    let connected = 0
    a.on('connection', () => connected++)
    const link = connectInMemory(a, a, { reconnect: false })
    link.close()
    await sleep(300)
    t.is(connected, 0, 'no connection event')
    t.is(a.connections.size, 0, 'no connection kept')
  })

  test('memory: many racing dials in both directions settle on one shared connection', async (t) => {
    const a = new Discovery({ keyPair: HyperDHT.keyPair(), swarm: false, lan: false })
    const b = new Discovery({ keyPair: HyperDHT.keyPair(), swarm: false, lan: false })
    t.teardown(() => a.close())
    t.teardown(() => b.close())
    const link = connectInMemory(a, b, { reconnect: false })
    for (let i = 0; i < 10; i++) link.dial(i % 2 === 0 ? 'a' : 'b')
    link.close()
    await waitFor('agreement', () => agree(a, b), 5000)
    await sleep(300)
    t.is(a.connections.size, 1)
    t.is(b.connections.size, 1)
    t.ok(agree(a, b), 'same handshake hash on both ends')
  })

  test('memory: a connection that has not proven the room never displaces one that has; both ends still agree', async (t) => {
    const nodes = [0, 1].map(() => new Discovery({ keyPair: HyperDHT.keyPair(), swarm: false, lan: false }))
    for (const node of nodes) t.teardown(() => node.close())
    // The first dial comes from the lower key, so every later dial from the higher
    // key is the one the plain rule prefers.
    const [lo, hi] = nodes.sort((x, y) => Buffer.compare(x.publicKey, y.publicKey))
    const between = (from: Discovery, to: Discovery): NoiseSecretStream => from.connections.get(to.publicKey.toString('hex'))!.stream
    const offered = (node: Discovery): NoiseSecretStream[] => {
      const streams: NoiseSecretStream[] = []
      node.on('connection', (conn: PeerConnection) => streams.push(conn.stream))
      return streams
    }
    const link = connectInMemory(lo, hi, { reconnect: false })
    t.teardown(() => link.close())
    await waitFor('the first connection', () => agree(lo, hi), 5000)
    const first = between(lo, hi).handshakeHash
    lo.authenticate(between(lo, hi))
    hi.authenticate(between(hi, lo))

    // A preferred duplicate that dies before it proves anything changes nothing.
    const atLo = offered(lo)
    link.dial('b')
    await waitFor('the duplicate to reach lo', () => atLo.length === 1, 5000)
    t.ok(between(lo, hi).handshakeHash?.equals(first!), 'lo keeps the authenticated connection while the duplicate waits')
    atLo[0].destroy()
    await sleep(300)
    t.ok(agree(lo, hi) && between(lo, hi).handshakeHash?.equals(first!), 'both still hold the authenticated connection')
    t.ok(lo.connections.get(hi.publicKey.toString('hex'))?.authenticated, 'and it is still marked authenticated')

    // A preferred duplicate that proves itself, at one end first, takes over at both.
    const later = offered(lo)
    link.dial('b')
    await waitFor('the second duplicate to reach lo', () => later.length === 1, 5000)
    await sleep(100)
    t.ok(between(lo, hi).handshakeHash?.equals(first!), 'still the first connection before the duplicate proves the room')
    lo.authenticate(later[0])
    await waitFor('both ends to move to the duplicate', () => agree(lo, hi) && !between(lo, hi).handshakeHash!.equals(first!), 5000)
    await sleep(300)
    t.ok(agree(lo, hi), 'both ends hold the same (new) connection')
    t.is(lo.connections.size, 1)
    t.is(hi.connections.size, 1)
    await exchange(t, lo, hi, 'after the takeover')
  })

  test('parseBootstrap accepts host:port and objects, and names the option it rejects', (t) => {
    t.alike(parseBootstrap(['127.0.0.1:49737', { host: 'localhost', port: 1 }, '[::1]:5']), [
      { host: '127.0.0.1', port: 49737 }, { host: 'localhost', port: 1 }, { host: '::1', port: 5 }
    ])
    for (const bad of [['127.0.0.1'], ['host:0'], ['host:70000'], [{ host: '', port: 1 }], [42], 'a:1']) {
      try {
        parseBootstrap(bad)
        t.fail(`accepted ${JSON.stringify(bad)}`)
      } catch (err) {
        t.ok(isCrosscastError(err) && err.code === 'INVALID_OPTION' && /bootstrap/.test(err.message), `rejects ${JSON.stringify(bad)}: ${(err as Error).message}`)
      }
    }
    t.exception(() => new Discovery({ keyPair: HyperDHT.keyPair(), bootstrap: ['nope'], lan: false }), /bootstrap\[0\]/)
    t.exception(() => new Discovery({ keyPair: { publicKey: Buffer.alloc(3), secretKey: Buffer.alloc(64) }, lan: false }), /keyPair/)
  })

  test('join rejects a topic that is not 32 bytes, and close is idempotent', async (t) => {
    const a = new Discovery({ keyPair: HyperDHT.keyPair(), swarm: false, lan: false })
    t.exception(() => a.join(Buffer.from('room')), /32-byte/)
    a.join(randomBytes(32))
    await Promise.all([a.close(), a.close()])
    await a.close()
    t.pass('closed three times')
  })
}
