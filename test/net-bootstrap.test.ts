// `crosscast bootstrap` and startBootstrapper: a private DHT entry point that
// peers reach with --bootstrap host:port, on 127.0.0.1 only.
import test, { type Assert } from 'brittle'
import { spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import HyperDHT from 'hyperdht'
import { Discovery } from '../lib/net/index.ts'
import { startBootstrapper } from '../lib/net/bootstrap.ts'
import { isCrosscastError } from '../lib/errors.ts'
import { Crosscast } from '../lib/index.ts'
import { createTestnet } from './helpers/testnet.ts'
import { until } from './helpers/node.ts'
import { waitFor, agree } from './helpers/transport-suite.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

async function freeUdpPort (): Promise<number> {
  const socket = createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()))
  const { port } = socket.address()
  await new Promise<void>((resolve) => socket.close(() => resolve()))
  return port
}

/** `crosscast bootstrap ...` as a child process; stop() sends SIGINT and resolves with its exit code. */
function startCli (t: Assert, args: string[]): { output: () => string, stop: () => Promise<number | null> } {
  const program = [
    "import { Command } from 'commander'",
    "import { registerBootstrap } from './lib/cli/bootstrap.ts'",
    "const program = new Command('crosscast')",
    'registerBootstrap(program)',
    'await program.parseAsync(process.argv.slice(1), { from: "user" })'
  ].join('\n')
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program, '--', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', (data: Buffer) => { output += data.toString() })
  child.stderr.on('data', (data: Buffer) => { output += data.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    child.stdout.destroy()
    child.stderr.destroy()
  })
  return {
    output: () => output,
    stop: async () => {
      child.kill('SIGINT')
      return await exited
    }
  }
}

test('crosscast bootstrap runs a node that two peers find each other through, and stops on SIGINT', { timeout: 60000 }, async (t) => {
  const port = await freeUdpPort()
  const { output, stop } = startCli(t, ['bootstrap', '--host', '127.0.0.1', '--port', String(port)])
  await waitFor('the bootstrap node to print its address', () => output().includes('--bootstrap'), 20000)
  const address = /--bootstrap (\S+)/.exec(output())?.[1]
  t.is(address, `127.0.0.1:${port}`, 'prints the address to pass as --bootstrap')

  const a = new Discovery({ keyPair: HyperDHT.keyPair(), bootstrap: [address ?? ''], lan: false })
  const b = new Discovery({ keyPair: HyperDHT.keyPair(), bootstrap: [address ?? ''], lan: false })
  t.teardown(() => a.close())
  t.teardown(() => b.close())
  const topic = randomBytes(32)
  a.join(topic)
  b.join(topic)
  await waitFor('two peers to connect through the bootstrap node', () => agree(a, b), 30000)
  t.pass('two peers connected using only that bootstrap node')
  await Promise.all([a.close(), b.close()])

  t.is(await stop(), 0, 'exits cleanly on SIGINT')
  t.ok(output().includes('bootstrap node stopped'), 'says it stopped')
})

test('startBootstrapper rejects an address peers could not use', async (t) => {
  for (const [host, port] of [['0.0.0.0', 49737], ['localhost', 49737], ['127.0.0.1', 0], ['127.0.0.1', 70000]] as const) {
    try {
      const node = await startBootstrapper({ host, port })
      await node.close()
      t.fail(`accepted ${host}:${port}`)
    } catch (err) {
      t.ok(isCrosscastError(err) && err.code === 'INVALID_OPTION', `rejects ${host}:${port}: ${(err as Error).message}`)
    }
  }
})

test('startBootstrapper serves on the given port and closes', async (t) => {
  const port = await freeUdpPort()
  const node = await startBootstrapper({ host: '127.0.0.1', port })
  t.is(node.bootstrap, `127.0.0.1:${port}`)
  await Promise.all([node.close(), node.close()])
  t.pass('closed twice without error')
})

// Peers are given the relay's key once (relayThrough); a key that changed on every
// restart of `crosscast bootstrap --relay` left them pointing at nothing.
test('a bootstrap relay keeps its key in its seed file: the same after a restart, another with another file', async (t) => {
  const dir = await t.tmp()
  const seedFile = join(dir, 'state', 'relay-seed')
  const keyOf = async (file: string): Promise<string> => {
    const node = await startBootstrapper({ host: '127.0.0.1', port: await freeUdpPort(), relay: true, relaySeedFile: file })
    try {
      return node.relayPublicKey?.toString('hex') ?? 'none'
    } finally {
      await node.close()
    }
  }
  const first = await keyOf(seedFile)
  t.ok(/^[0-9a-f]{64}$/.test(first), 'a relay key')
  t.is((await stat(seedFile)).mode & 0o777, 0o600, 'the seed file is readable by its owner only')
  t.is(await keyOf(seedFile), first, 'the same key after a restart')
  t.not(await keyOf(join(dir, 'other-seed')), first, 'another seed file, another key')
  t.not(first, (await readFile(seedFile, 'utf8')).trim(), 'the key is derived from the seed, not the seed itself')

  await writeFile(join(dir, 'bad-seed'), 'not a seed\n')
  const port = await freeUdpPort()
  try {
    const node = await startBootstrapper({ host: '127.0.0.1', port, relay: true, relaySeedFile: join(dir, 'bad-seed') })
    await node.close()
    t.fail('started with a seed file that holds no seed')
  } catch (err) {
    t.alike([isCrosscastError(err) && err.code, isCrosscastError(err) && err.field], ['INVALID_OPTION', 'relaySeedFile'], (err as Error).message)
  }
  const after = await startBootstrapper({ host: '127.0.0.1', port })
  await after.close()
  t.pass('and left nothing bound to its port')
})

test('crosscast bootstrap --relay prints the same relay key on every start with the same --storage', { timeout: 60000 }, async (t) => {
  const storage = await t.tmp()
  const keys: string[] = []
  for (let i = 0; i < 2; i++) {
    const { output, stop } = startCli(t, ['bootstrap', '--host', '127.0.0.1', '--port', String(await freeUdpPort()), '--relay', '--storage', storage])
    await waitFor('the relay key to be printed', () => output().includes('--relay-through'), 20000)
    keys.push(/--relay-through ([0-9a-f]{64})/.exec(output())?.[1] ?? '')
    t.is(await stop(), 0, `start ${i + 1} exits cleanly on SIGINT`)
  }
  t.ok(keys[0].length === 64 && keys[0] === keys[1], `the same key twice: ${keys.join(' ')}`)
  t.ok(existsSync(join(storage, 'relay-seed')), 'kept in <storage>/relay-seed')
})

test('a node with relay: true has the same relay key after it is reopened on its storage', { timeout: 60000 }, async (t) => {
  const net = await createTestnet(t)
  const storage = join(await t.tmp(), 'node')
  const relayKeyOf = async (): Promise<string | null> => {
    const cc = await Crosscast.open({ storage, room: 'relay-key', bootstrap: net.bootstrap, lan: false, relay: true })
    try {
      return (cc as unknown as { network: { _discovery: { relayPublicKey: Buffer | null } } | null }).network?._discovery.relayPublicKey?.toString('hex') ?? null
    } finally {
      await cc.close()
    }
  }
  const first = await relayKeyOf()
  t.ok(first !== null && /^[0-9a-f]{64}$/.test(first), 'a relay key')
  t.is(await relayKeyOf(), first, 'the same after reopening')
})

// Peers behind NATs that cannot be punched need a relay; one that a room peer runs
// is announced with its presence, so nobody has to pass its key as relayThrough.
test('a room peer that relays is announced: the others use its relay when a punch fails, never for a punchable pair', { timeout: 60000 }, async (t) => {
  const net = await createTestnet(t)
  const open = async (name: string, relay: boolean): Promise<Crosscast> => {
    const cc = await Crosscast.open({ storage: join(await t.tmp(), name), room: 'relay-announce', agent: name, sessionId: name, bootstrap: net.bootstrap, lan: false, relay })
    t.teardown(() => cc.close())
    return cc
  }
  type RelayChoice = (force: boolean, swarm: unknown) => Buffer | Buffer[] | null
  const swarmOf = (cc: Crosscast): { relayThrough: RelayChoice | null } => (cc as unknown as { network: { _discovery: { swarm: { relayThrough: RelayChoice | null } } } }).network._discovery.swarm
  const relayKeyOf = (cc: Crosscast): string => (cc as unknown as { network: { _discovery: { relayPublicKey: Buffer } } }).network._discovery.relayPublicKey.toString('hex')
  const relays = (cc: Crosscast, force: boolean): string[] | null => {
    const swarm = swarmOf(cc)
    const chosen = swarm.relayThrough?.(force, { dht: { randomized: false } }) ?? null
    return chosen === null ? null : [chosen].flat().map(k => k.toString('hex'))
  }
  const a = await open('plain', false)
  t.is(swarmOf(a).relayThrough, null, 'a node that knows no relay marks no failed punch for relaying')
  const r = await open('relay', true)
  await until(() => a.presence().some(e => e.session_id === 'relay'), 30_000, 'the plain node to see the relay node')
  await until(() => relays(a, true) !== null, 10_000, 'the plain node to take up the announced relay')
  t.alike(relays(a, true), [relayKeyOf(r)], 'after a failed punch, it pairs through the relay its room peer announced')
  t.is(relays(a, false), null, 'a punchable pair (not forced, NAT not randomized) stays direct')
  t.is(swarmOf(r).relayThrough, null, 'the relay node does not relay through itself')
})
