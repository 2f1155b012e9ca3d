// Hyperswarm over the DHT. Every connection it opens is handed to the Discovery,
// which owns dedupe and lifecycle; this module only finds peers.
import Hyperswarm from 'hyperswarm'
import type { PeerDiscoverySession } from 'hyperswarm'
import HyperDHT from 'hyperdht'
import type NoiseSecretStream from '@hyperswarm/secret-stream'
import type { Logger } from '../logger.ts'
import type { KeyPair } from './types.ts'
import { isLoopbackHost, type BootstrapAddress } from './options.ts'
import { relayKeyPair, startRelay, type Relay } from './relay.ts'

// Two peers announcing a fresh topic at the same instant can each look up before
// the other's announce lands; these early refreshes close that window.
const EARLY_REFRESHES_MS = [1000, 3000]
const LONELY_REFRESH_MS = 5000
// With peers, a slow refresh still finds peers that joined at the same instant
// as someone else and were missed, and heals partitions that reconnected.
const CONNECTED_REFRESH_MS = 60_000
// Leaving politely unannounces our topics, which waits on the network; with an
// unreachable DHT that could stall close(), so past this we just drop everything.
const GRACEFUL_CLOSE_MS = 3000

interface Joined {
  session: PeerDiscoverySession
  timers: NodeJS.Timeout[]
}

export interface SwarmTransportOptions {
  keyPair: KeyPair
  bootstrap: BootstrapAddress[] | undefined
  logger: Logger
  onstream: (stream: NoiseSecretStream) => void
  hasPeers: () => boolean
  /** Run a blind relay for others (see relay.ts). */
  relay: boolean
  /** Relays to pair through when hole punching fails or this node's NAT is randomized. */
  relayThrough: Buffer[]
}

export class SwarmTransport {
  readonly swarm: Hyperswarm
  private readonly logger: Logger
  private readonly hasPeers: () => boolean
  private readonly joined = new Map<string, Joined>()
  private relay: Promise<Relay | null> = Promise.resolve(null)
  readonly relayPublicKey: Buffer | null

  constructor (opts: SwarmTransportOptions) {
    this.logger = opts.logger
    this.hasPeers = opts.hasPeers
    const loopbackOnly = opts.bootstrap !== undefined && opts.bootstrap.every((node) => isLoopbackHost(node.host))
    // A DHT on 0.0.0.0 was seen not to deliver server-side connections when the
    // whole network is loopback; binding 127.0.0.1 fixes it.
    const dht = new HyperDHT({
      keyPair: opts.keyPair,
      ...(opts.bootstrap !== undefined ? { bootstrap: opts.bootstrap } : {}),
      ...(loopbackOnly ? { host: '127.0.0.1', port: 0 } : {})
    })
    dht.on('error', (err: Error) => this.logger.warn({ err }, 'dht error'))
    // Hyperswarm goes through a relay only once a punch failed (HOLEPUNCH_ABORTED and
    // the like) or when its own NAT is randomized, so a punchable pair stays direct.
    this.swarm = new Hyperswarm({ keyPair: opts.keyPair, dht, ...(opts.relayThrough.length > 0 ? { relayThrough: opts.relayThrough } : {}) })
    this.swarm.on('error', (err: Error) => this.logger.warn({ err }, 'swarm error'))
    this.swarm.on('connection', (stream) => opts.onstream(stream))
    this.relayPublicKey = null
    if (opts.relay) {
      const keyPair = relayKeyPair(opts.keyPair)
      this.relayPublicKey = keyPair.publicKey
      this.relay = startRelay(dht, keyPair, this.logger).catch((err: unknown) => {
        this.logger.warn({ err }, 'could not start the relay')
        return null
      })
    }
  }

  join (topic: Buffer): void {
    const id = topic.toString('hex')
    if (this.joined.has(id)) return
    const session = this.swarm.join(topic, { client: true, server: true })
    let lastRefresh = Date.now()
    const refresh = (): void => {
      lastRefresh = Date.now()
      if (this.swarm.destroyed) return
      session.refresh().catch((err: unknown) => this.logger.debug({ err, topic: id }, 'swarm refresh failed'))
    }
    const timers = EARLY_REFRESHES_MS.map((ms) => setTimeout(refresh, ms))
    timers.push(setInterval(() => {
      if (!this.hasPeers() || Date.now() - lastRefresh >= CONNECTED_REFRESH_MS) refresh()
    }, LONELY_REFRESH_MS))
    for (const timer of timers) timer.unref()
    this.joined.set(id, { session, timers })
  }

  async leave (topic: Buffer): Promise<void> {
    const id = topic.toString('hex')
    const joined = this.joined.get(id)
    if (joined === undefined) return
    this.joined.delete(id)
    for (const timer of joined.timers) clearTimeout(timer)
    await this.swarm.leave(topic).catch((err: unknown) => this.logger.debug({ err, topic: id }, 'swarm leave failed'))
  }

  async close (): Promise<void> {
    for (const joined of this.joined.values()) {
      for (const timer of joined.timers) clearTimeout(timer)
    }
    this.joined.clear()
    await (await this.relay)?.close().catch((err: unknown) => this.logger.debug({ err }, 'relay close failed'))
    const graceful = this.swarm.destroy().then(() => true, (err: unknown) => {
      this.logger.debug({ err }, 'swarm destroy failed')
      return true
    })
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), GRACEFUL_CLOSE_MS) })
    const done = await Promise.race([graceful, late])
    clearTimeout(timer)
    if (!done) {
      this.logger.debug('swarm did not leave in time; forcing it closed')
      await this.swarm.destroy({ force: true }).catch((err: unknown) => this.logger.debug({ err }, 'forced swarm destroy failed'))
      await graceful
    }
  }
}
