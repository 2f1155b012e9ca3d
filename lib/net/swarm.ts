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
// The same window, closed sooner: a lookup just after our first announce finished
// finds a peer whose announce finished at about the same time (on a LAN DHT or a
// loopback one, that is ~100 ms after open rather than the 1 s refresh).
const AFTER_FIRST_ANNOUNCE_MS = 200
const LONELY_REFRESH_MS = 5000
// With peers, a slow refresh still finds peers that joined at the same instant
// as someone else and were missed, and heals partitions that reconnected.
const CONNECTED_REFRESH_MS = 60_000
// Leaving politely unannounces our topics, which waits on the network (12 s with
// an unreachable DHT). Past this window we destroy the DHT's sockets, which fails
// every pending request and lets Hyperswarm finish at once; a DHT that never
// answered us gets no window at all. Our announcements expire on their own anyway.
const GRACEFUL_CLOSE_MS = 1000
const FORCED_CLOSE_MS = 500
// Relays learnt from room peers, at most: a peer could announce any number.
const MAX_LEARNT_RELAYS = 8

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
  /** Hyperswarm's own default (64) when undefined. */
  maxPeers: number | undefined
}

export class SwarmTransport {
  readonly swarm: Hyperswarm
  private readonly dht: HyperDHT
  private readonly logger: Logger
  private readonly hasPeers: () => boolean
  private readonly joined = new Map<string, Joined>()
  private relay: Promise<Relay | null> = Promise.resolve(null)
  readonly relayPublicKey: Buffer | null
  /** Given as relayThrough, then those learnt from room peers. */
  private readonly relays: Buffer[]
  private learntRelays = 0

  constructor (opts: SwarmTransportOptions) {
    this.logger = opts.logger
    this.hasPeers = opts.hasPeers
    const loopbackOnly = opts.bootstrap !== undefined && opts.bootstrap.every((node) => isLoopbackHost(node.host))
    // A DHT on 0.0.0.0 was seen not to deliver server-side connections when the
    // whole network is loopback; binding 127.0.0.1 fixes it. Every node of such a DHT
    // is on this host and reachable directly, so it is not firewalled: clients dial
    // straight in, with no hole punching and so none of the hyperdht 6.33-6.34
    // same-host race (hyperdht#304), whichever hyperdht a user's tree resolves.
    const dht = new HyperDHT({
      keyPair: opts.keyPair,
      ...(opts.bootstrap !== undefined ? { bootstrap: opts.bootstrap } : {}),
      ...(loopbackOnly ? { host: '127.0.0.1', port: 0, firewalled: false } : {})
    })
    dht.on('error', (err: Error) => this.logger.warn({ err }, 'dht error'))
    this.dht = dht
    // Hyperswarm goes through a relay only once a punch failed (HOLEPUNCH_ABORTED and
    // the like) or when its own NAT is randomized, so a punchable pair stays direct.
    this.swarm = new Hyperswarm({
      keyPair: opts.keyPair,
      dht,
      ...(opts.maxPeers !== undefined ? { maxPeers: opts.maxPeers } : {})
    })
    this.relays = [...opts.relayThrough]
    this.useRelays()
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

  /**
   * A relay a room peer runs (announced with its presence): used like one given
   * as relayThrough, so peers behind NATs that cannot be punched need not be
   * told its key. Hyperswarm only goes through a relay once a punch failed or
   * when its own NAT is randomized, so a direct path is still preferred.
   */
  addRelay (key: Buffer): boolean {
    if (this.relayPublicKey?.equals(key) === true || this.relays.some(k => k.equals(key)) || this.learntRelays >= MAX_LEARNT_RELAYS) return false
    this.learntRelays++
    this.relays.push(key)
    this.useRelays()
    this.logger.info({ relay: key.toString('hex') }, 'a room peer relays: using it when a connection cannot be punched')
    return true
  }

  // Left unset without relays: Hyperswarm then does not mark failed punches for relaying.
  private useRelays (): void {
    const relays = this.relays
    this.swarm.relayThrough = relays.length === 0 ? null : (force, swarm) => (force || swarm.dht.randomized ? relays : null)
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
    const joined = { session, timers }
    this.joined.set(id, joined)
    session.flushed().then(() => {
      if (this.joined.get(id) !== joined || this.hasPeers()) return
      const timer = setTimeout(() => { if (!this.hasPeers()) refresh() }, AFTER_FIRST_ANNOUNCE_MS)
      timer.unref()
      timers.push(timer)
    }, () => {})
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
    const reachable = this.dht.table.size > 0
    const graceful = this.swarm.destroy().catch((err: unknown) => this.logger.debug({ err }, 'swarm destroy failed'))
    if (await settlesWithin(graceful, reachable ? GRACEFUL_CLOSE_MS : 0)) return
    this.logger.debug({ reachable }, 'swarm did not leave in time; closing the DHT under it')
    const forced = this.dht.destroy({ force: true }).catch((err: unknown) => this.logger.debug({ err }, 'forced DHT destroy failed'))
    await settlesWithin(Promise.all([forced, graceful]), FORCED_CLOSE_MS)
  }
}

async function settlesWithin (promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms) })
  const done = await Promise.race([promise.then(() => true), late])
  clearTimeout(timer)
  return done
}
