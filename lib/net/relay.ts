// Relaying for peers whose NATs cannot be punched through (both randomized, or
// a carrier-grade NAT): a reachable node runs a blind relay on a DHT server
// key, and such peers pair their UDX streams through it. The relay forwards
// packets of a Noise stream it holds no key for, so encryption stays end to end
// between the two peers; it learns only who talks to whom, and how much.
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import HyperDHT, { type HyperDHTServer, type KeyPair } from 'hyperdht'
import { Server as BlindRelayServer } from 'blind-relay'
import { CrosscastError } from '../errors.ts'
import type { Logger } from '../logger.ts'

// Relayed links are idle between bursts; this keeps the UDX session (and every
// NAT mapping on the way) open.
const RELAY_KEEP_ALIVE_MS = 5000

export interface Relay {
  /** What peers pass as `relayThrough`. */
  readonly publicKey: Buffer
  close (): Promise<void>
}

/** The relay's key for a node: stable across restarts of that node, never its own Noise key. */
export function relayKeyPair (nodeKeyPair: KeyPair): KeyPair {
  return relayKeyFromSeed(nodeKeyPair.secretKey)
}

function relayKeyFromSeed (seed: Buffer): KeyPair {
  return HyperDHT.keyPair(createHash('sha256').update('crosscast/relay').update(seed).digest())
}

const SEED_FILE = /^([0-9a-f]{64})\n?$/

/**
 * The relay key of a node that has no storage of its own (`crosscast bootstrap
 * --relay`): derived from a secret seed kept in `file`, made on first use (32
 * random bytes, hex, readable by the owner only), so the key peers were given as
 * relayThrough survives restarts. Whoever holds the file can run the relay.
 */
export async function relayKeyPairFromFile (file: string): Promise<KeyPair> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw seedError(file, err)
    await mkdir(dirname(file), { recursive: true })
    try {
      await writeFile(file, randomBytes(32).toString('hex') + '\n', { flag: 'wx', mode: 0o600 })
    } catch (created) {
      // Another process made it first: use that one.
      if ((created as NodeJS.ErrnoException).code !== 'EEXIST') throw seedError(file, created)
    }
    text = await readFile(file, 'utf8')
  }
  const seed = SEED_FILE.exec(text)?.[1]
  if (seed === undefined) throw new CrosscastError('INVALID_OPTION', `${file} is not a relay seed (64 hex digits); remove it to make a new relay key`, { field: 'relaySeedFile' })
  return relayKeyFromSeed(Buffer.from(seed, 'hex'))
}

function seedError (file: string, err: unknown): CrosscastError {
  return new CrosscastError('INVALID_OPTION', `could not read or create the relay seed ${file}: ${(err as Error).message}`, { field: 'relaySeedFile', cause: err })
}

export async function startRelay (dht: HyperDHT, keyPair: KeyPair, logger: Logger): Promise<Relay> {
  const relay = new BlindRelayServer({ createStream: (opts) => dht.createRawStream({ ...opts, framed: true }) })
  const server: HyperDHTServer = dht.createServer({ shareLocalAddress: false }, (socket) => {
    socket.setKeepAlive(RELAY_KEEP_ALIVE_MS)
    socket.on('error', (err: Error) => logger.debug({ err }, 'relay connection error'))
    const session = relay.accept(socket, { id: socket.remotePublicKey as Buffer })
    session.on('error', (err: Error) => logger.debug({ err }, 'relay session error'))
  })
  await server.listen(keyPair)
  logger.info({ relay: keyPair.publicKey.toString('hex') }, 'relaying for peers that cannot punch through')
  let closing: Promise<void> | null = null
  return {
    publicKey: keyPair.publicKey,
    close: () => {
      closing ??= (async () => {
        await relay.close()
        await server.close()
      })()
      return closing
    }
  }
}

/** `relayThrough` as users give it (64-hex-digit keys) to what hyperswarm takes. */
export function parseRelayThrough (entries: unknown, option = 'relayThrough'): Buffer[] {
  if (!Array.isArray(entries)) {
    throw new CrosscastError('INVALID_OPTION', `${option} must be an array of relay public keys (64 hex digits each)`, { field: option })
  }
  return entries.map((entry, i) => {
    if (Buffer.isBuffer(entry) && entry.length === 32) return entry
    if (typeof entry === 'string' && /^[0-9a-f]{64}$/i.test(entry)) return Buffer.from(entry, 'hex')
    throw new CrosscastError('INVALID_OPTION', `${option}[${i}] must be a relay public key (64 hex digits), got ${JSON.stringify(entry)}`, { field: `${option}[${i}]` })
  })
}
