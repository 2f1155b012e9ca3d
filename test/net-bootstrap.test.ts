// `crosscast bootstrap` and startBootstrapper: a private DHT entry point that
// peers reach with --bootstrap host:port, on 127.0.0.1 only.
import test from 'brittle'
import { spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import HyperDHT from 'hyperdht'
import { Discovery } from '../lib/net/index.ts'
import { startBootstrapper } from '../lib/net/bootstrap.ts'
import { isCrosscastError } from '../lib/errors.ts'
import { waitFor, agree } from './helpers/transport-suite.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

async function freeUdpPort (): Promise<number> {
  const socket = createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()))
  const { port } = socket.address()
  await new Promise<void>((resolve) => socket.close(() => resolve()))
  return port
}

test('crosscast bootstrap runs a node that two peers find each other through, and stops on SIGINT', { timeout: 60000 }, async (t) => {
  const port = await freeUdpPort()
  const program = [
    "import { Command } from 'commander'",
    "import { registerBootstrap } from './lib/cli/bootstrap.ts'",
    "const program = new Command('crosscast')",
    'registerBootstrap(program)',
    'await program.parseAsync(process.argv.slice(1), { from: "user" })'
  ].join('\n')
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program, '--', 'bootstrap', '--host', '127.0.0.1', '--port', String(port)], {
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

  await waitFor('the bootstrap node to print its address', () => output.includes('--bootstrap'), 20000)
  const address = /--bootstrap (\S+)/.exec(output)?.[1]
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

  child.kill('SIGINT')
  t.is(await exited, 0, 'exits cleanly on SIGINT')
  t.ok(output.includes('bootstrap node stopped'), 'says it stopped')
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
