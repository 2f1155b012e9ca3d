// `crosscast bootstrap`: runs a DHT bootstrap node until SIGINT/SIGTERM, for
// networks that cannot reach (or should not use) the public bootstrap.
import { Option, type Command } from 'commander'
import { join } from 'node:path'
import { CrosscastError } from '../errors.ts'

const DEFAULT_PORT = 49737

export function registerBootstrap (program: Command): Command {
  return program
    .command('bootstrap')
    .description('run a DHT bootstrap node; peers pass its address as --bootstrap')
    .requiredOption('--host <host>', 'IPv4 address peers will reach this node at (not 0.0.0.0)')
    .option('--port <port>', 'UDP port', String(DEFAULT_PORT))
    .option('--relay', 'also relay for peers that cannot punch through their NATs (end-to-end encrypted; the relay sees who talks to whom)')
    .addOption(new Option('--storage <dir>', 'with --relay: where the seed of the relay key is kept (relay-seed), so the key is the same on every start').default('.crosscast'))
    .action(async (opts: { host: string, port: string, relay?: boolean, storage: string }) => {
      const port = Number(opts.port)
      if (!/^\d+$/.test(opts.port)) {
        throw new CrosscastError('INVALID_OPTION', '--port must be an integer from 1 to 65535', { field: 'port' })
      }
      const { startBootstrapper } = await import('../net/bootstrap.ts')
      const relaySeedFile = join(opts.storage, 'relay-seed')
      const node = await startBootstrapper({ host: opts.host, port, relay: opts.relay === true, relaySeedFile })
      process.stdout.write(`bootstrap node listening on ${node.bootstrap}\n`)
      if (node.relayPublicKey === null) {
        process.stdout.write(`peers use: --bootstrap ${node.bootstrap}\n`)
      } else {
        const key = node.relayPublicKey.toString('hex')
        process.stdout.write(`relay listening, key ${key} (from ${relaySeedFile}: the same on every start)\n`)
        process.stdout.write(`peers use: --bootstrap ${node.bootstrap} --relay-through ${key}\n`)
      }
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.removeListener('SIGINT', stop)
          process.removeListener('SIGTERM', stop)
          resolve()
        }
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
      })
      await node.close()
      process.stdout.write('bootstrap node stopped\n')
    })
}
