// A DHT bootstrap node, for a LAN or lab where the public bootstrap is out of
// reach: peers pass its address as `bootstrap` and find each other through it.
import { isIP } from 'node:net'
import HyperDHT from 'hyperdht'
import { CrosscastError } from '../errors.ts'
import { silentLogger, type Logger } from '../logger.ts'
import { formatAddress, type BootstrapAddress } from './options.ts'
import { relayKeyPairFromFile, startRelay, type Relay } from './relay.ts'

export interface Bootstrapper {
  // What peers pass as `bootstrap` ('host:port').
  readonly address: BootstrapAddress
  readonly bootstrap: string
  /** With `relay`: what peers pass as relayThrough. */
  readonly relayPublicKey: Buffer | null
  close (): Promise<void>
}

/**
 * With `relay`, a second DHT node on the same host runs a blind relay (see
 * relay.ts): the bootstrapper is reachable by definition, so it is where peers
 * behind NATs that cannot be punched through meet. Its key comes from
 * `relaySeedFile` (made on first start), so it stays the same across restarts;
 * without one it is new on every start.
 */
export async function startBootstrapper (opts: { host: string, port: number, relay?: boolean, relaySeedFile?: string, logger?: Logger }): Promise<Bootstrapper> {
  const { host, port } = opts
  const logger = opts.logger ?? silentLogger
  // The node announces this address to others, so it must be a concrete IPv4 one.
  if (typeof host !== 'string' || isIP(host) !== 4 || host === '0.0.0.0') {
    throw new CrosscastError('INVALID_OPTION', 'host must be the IPv4 address peers will reach (not 0.0.0.0)', { field: 'host' })
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new CrosscastError('INVALID_OPTION', 'port must be an integer from 1 to 65535', { field: 'port' })
  }
  const relayKeyPair = opts.relay === true ? (opts.relaySeedFile === undefined ? HyperDHT.keyPair() : await relayKeyPairFromFile(opts.relaySeedFile)) : null
  const node = HyperDHT.bootstrapper(port, host, { host })
  node.on('error', (err: Error) => logger.warn({ err }, 'bootstrap node error'))
  try {
    await node.ready()
  } catch (err) {
    await node.destroy().catch(() => {})
    throw new CrosscastError('INVALID_OPTION', `could not bind the bootstrap node to ${host}:${port}: ${(err as Error).message}`, { field: 'port', cause: err })
  }
  const bound = node.address()
  const address = { host, port: bound.port }
  logger.info({ address }, 'bootstrap node listening')
  let relayNode: HyperDHT | null = null
  let relay: Relay | null = null
  if (relayKeyPair !== null) {
    relayNode = new HyperDHT({ bootstrap: [address], host, ephemeral: false, firewalled: false })
    try {
      relay = await startRelay(relayNode, relayKeyPair, logger)
    } catch (err) {
      await relayNode.destroy().catch(() => {})
      await node.destroy().catch(() => {})
      throw new CrosscastError('INVALID_OPTION', `could not start the relay on ${host}: ${(err as Error).message}`, { field: 'relay', cause: err })
    }
  }
  let closing: Promise<void> | null = null
  return {
    address,
    bootstrap: formatAddress(address),
    relayPublicKey: relay?.publicKey ?? null,
    close: () => {
      closing ??= (async () => {
        await relay?.close().catch(() => {})
        await relayNode?.destroy()
        await node.destroy()
      })()
      return closing
    }
  }
}
