// Issue 11 §3: close() is bounded (it took 12 s unannouncing to a DHT nobody
// could reach), and a peer with the wrong room secret is reported (status, the
// `crosscast status` command, one log line per peer) instead of looking exactly
// like an empty room.
import test from 'brittle'
import dgram from 'node:dgram'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import type { NodeStatus } from '../lib/index.ts'
import { createTestnet } from './helpers/testnet.ts'
import { capturingLogger } from './helpers/logger.ts'
import { openNode, until } from './helpers/node.ts'
import { spawnPeer } from './helpers/child-peer.ts'

const run = promisify(execFile)
const CLI = fileURLToPath(new URL('../lib/cli/main.ts', import.meta.url))

/** A UDP port on 127.0.0.1 that nothing listens on: a DHT bootstrap that never answers. */
async function closedUdpPort (): Promise<number> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>(resolve => socket.bind(0, '127.0.0.1', resolve))
  const { port } = socket.address()
  await new Promise<void>(resolve => socket.close(() => resolve()))
  return port
}

async function timedClose (close: () => Promise<void>): Promise<number> {
  const started = Date.now()
  await close()
  return Date.now() - started
}

test('close() returns within 1 s when the DHT cannot be reached', { timeout: 60_000 }, async (t) => {
  const bootstrap = [`127.0.0.1:${await closedUdpPort()}`]
  for (const openForMs of [0, 1500]) {
    const cc = await openNode(t, { swarm: true, bootstrap })
    await new Promise(resolve => setTimeout(resolve, openForMs))
    const ms = await timedClose(() => cc.close())
    t.ok(ms < 1000, `closed ${openForMs} ms after open, while the DHT is unreachable, in ${ms} ms`)
  }
})

test('close() returns within 2 s with a peer connected over a DHT', { timeout: 60_000 }, async (t) => {
  const net = await createTestnet(t)
  const a = await openNode(t, { swarm: true, bootstrap: net.bootstrap, sessionId: 'sess-a' })
  const b = await spawnPeer(t, { storage: await t.tmp(), room: 'test-room', sessionId: 'sess-b', bootstrap: net.bootstrap, lan: false })
  await until(() => a.status().peers.some(p => p.authenticated), 30_000, 'A to meet B')
  const ms = await timedClose(() => a.close())
  t.ok(ms < 2000, `closed in ${ms} ms`)
  await b.kill()
})

test('a peer with the wrong room secret, joining a room that works, is reported in status, in crosscast status and once per peer in the log', { timeout: 120_000 }, async (t) => {
  const net = await createTestnet(t)
  const log = capturingLogger()
  const a = await openNode(t, { swarm: true, bootstrap: net.bootstrap, room: 'shared-name', secret: 'right', sessionId: 'sess-a', logger: log.logger })
  await spawnPeer(t, { storage: await t.tmp(), room: 'shared-name', secret: 'right', sessionId: 'sess-r', bootstrap: net.bootstrap, lan: false })
  await until(() => a.status().peers.some(p => p.authenticated), 30_000, 'A to meet the peer with the right secret')
  t.alike(a.status().rejected, { peers: 0, writers: 0, reasons: [] }, 'nothing rejected yet')

  const storageB = await t.tmp()
  const b = await spawnPeer(t, { storage: storageB, room: 'shared-name', secret: 'wrong', sessionId: 'sess-b', bootstrap: net.bootstrap, lan: false })
  // Hyperswarm dials a rejected peer again after a backoff: wait for a second rejection.
  await until(() => a.status().rejected.reasons.some(r => r.count >= 2), 30_000, 'A to reject B twice')

  const status = a.status()
  // B keeps redialling, so a connection of B's may be in its handshake right now: count authenticated peers.
  const authenticated = status.peers.filter(p => p.authenticated)
  t.is(authenticated.length, 1, 'A keeps its one good peer, and B is not one')
  t.is(status.rejected.peers, 1, 'one distinct peer rejected, however often it redialled')
  t.is(status.rejected.reasons.length, 1, 'one reason listed')
  const [entry] = status.rejected.reasons
  t.is(entry.reason, 'wrong room secret', 'the reason names the wrong secret')
  t.ok(/^[0-9a-f]{64}$/.test(entry.remoteKey), 'with the remote key')
  t.absent(authenticated.some(p => p.remoteKey === entry.remoteKey), 'the rejected peer is not the authenticated one')
  t.ok(!Number.isNaN(Date.parse(entry.at)), 'and when')

  const warned = log.lines.filter(l => l.level === 'warn' && l.obj.remote === entry.remoteKey)
  t.is(warned.length, 1, `logged once for the peer, not per attempt or per layer: ${JSON.stringify(warned.map(l => l.msg))}`)
  t.is(warned[0]?.msg, 'a peer failed the room handshake', 'the log line says what happened')
  t.is(warned[0]?.obj.reason, 'wrong room secret', 'and why')

  // The joining side sees it too, and so does `crosscast status` beside the running node.
  const bStatus = await b.call<NodeStatus>('status')
  t.is(bStatus.peers.length, 0, 'B has no peer')
  t.ok(bStatus.rejected.reasons.some(r => r.reason === 'wrong room secret'), 'B is told why: the wrong secret, not an empty room')
  await new Promise(resolve => setTimeout(resolve, 500))
  const json = JSON.parse((await run(process.execPath, ['--import', 'tsx', CLI, 'status', '--storage', storageB, '--json'], { timeout: 60_000 })).stdout)
  t.is(json.live, true, 'crosscast status reads beside the running node')
  t.ok(json.rejected.reasons.some((r: { reason: string }) => r.reason === 'wrong room secret'), 'crosscast status --json lists the reason')
  const text = (await run(process.execPath, ['--import', 'tsx', CLI, 'status', '--storage', storageB], { timeout: 60_000 })).stdout
  t.ok(/rejected peer [0-9a-f]{16}: wrong room secret/.test(text), `crosscast status prints it: ${text.trim().split('\n').pop()}`)
})
