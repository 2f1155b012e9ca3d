// LAN discovery without any DHT: mDNS finds peers of a topic, TCP carries the
// connection, Noise (the same secret stream Hyperswarm uses) encrypts it, so the
// layers above cannot tell a LAN peer from a swarm peer.
import { createHash } from 'node:crypto'
import net from 'node:net'
import multicastDns from 'multicast-dns'
import type { MulticastDNS, Packet, RemoteInfo } from 'multicast-dns'
import NoiseSecretStream from '@hyperswarm/secret-stream'
import type { Logger } from '../logger.ts'
import type { KeyPair, LanOptions } from './types.ts'

const TXT_VERSION = 'crosscast=1'
const RECORD_TTL_S = 120
const AFTER_DISCONNECT_QUERY_MS = 300

// The advertised name is a hash of the topic, so listeners on the LAN learn
// neither the room name nor anything that would let them join the DHT topic.
export function lanServiceName (topic: Buffer): string {
  const digest = createHash('sha256').update('crosscast/lan/v1\n').update(topic).digest('hex')
  return `${digest.slice(0, 32)}._crosscast._tcp.local`
}

export interface LanTransportOptions {
  keyPair: KeyPair
  options: LanOptions
  logger: Logger
  onstream: (stream: NoiseSecretStream) => void
  /** true for a peer not to dial now (connected already, or held off). */
  skipDial: (remoteKeyHex: string) => boolean
  hasPeers: () => boolean
}

export class LanTransport {
  private readonly keyPair: KeyPair
  private readonly keyHex: string
  private readonly opts: Required<Pick<LanOptions, 'queryInterval' | 'idleQueryInterval' | 'keepAlive' | 'timeout'>> & LanOptions
  private readonly logger: Logger
  private readonly onstream: (stream: NoiseSecretStream) => void
  private readonly skipDial: (remoteKeyHex: string) => boolean
  private readonly hasPeers: () => boolean
  private readonly names = new Set<string>()
  private readonly dialing = new Set<string>()
  private readonly sockets = new Set<net.Socket>()
  private server: net.Server | null = null
  private mdns: MulticastDNS | null = null
  private started: Promise<number> | null = null
  private ticker: NodeJS.Timeout | null = null
  private soon: NodeJS.Timeout | null = null
  private lastQuery = 0
  private closed = false

  constructor (opts: LanTransportOptions) {
    this.keyPair = opts.keyPair
    this.keyHex = opts.keyPair.publicKey.toString('hex')
    this.opts = { queryInterval: 2000, idleQueryInterval: 30000, keepAlive: 5000, timeout: 15000, ...opts.options }
    this.logger = opts.logger
    this.onstream = opts.onstream
    this.skipDial = opts.skipDial
    this.hasPeers = opts.hasPeers
  }

  // The TCP port peers dial, once listening (after the first join).
  get port (): number | null {
    const address = this.server?.address()
    return typeof address === 'object' && address !== null ? address.port : null
  }

  join (topic: Buffer): void {
    if (this.closed) return
    const name = lanServiceName(topic)
    if (this.names.has(name)) return
    this.names.add(name)
    this.start().then(() => {
      if (!this.names.has(name)) return
      // Announce first so peers already there dial us at once, then ask.
      this.announce([name])
      this.query()
    }, (err: unknown) => this.logger.error({ err }, 'lan discovery could not start'))
  }

  async leave (topic: Buffer): Promise<void> {
    this.names.delete(lanServiceName(topic))
  }

  // A peer went away: look for it again soon rather than at the next tick.
  onDisconnect (): void {
    if (this.closed || this.names.size === 0 || this.soon !== null) return
    this.soon = setTimeout(() => { this.soon = null; this.query() }, AFTER_DISCONNECT_QUERY_MS + Math.floor(Math.random() * 200))
    this.soon.unref()
  }

  private start (): Promise<number> {
    if (this.started === null) this.started = this.listen()
    return this.started
  }

  private async listen (): Promise<number> {
    const server = net.createServer((socket) => this.accept(socket))
    this.server = server
    server.on('error', (err) => this.logger.warn({ err }, 'lan tcp server error'))
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.opts.port ?? 0, this.opts.host ?? '0.0.0.0', () => {
        server.removeListener('error', reject)
        resolve()
      })
    })
    if (this.closed) throw new Error('closed')

    const mdns = multicastDns({
      ...(this.opts.interface !== undefined ? { interface: this.opts.interface } : {}),
      bind: this.opts.bind ?? '0.0.0.0',
      port: this.opts.mdnsPort ?? 5353,
      ...(this.opts.mdnsGroup !== undefined ? { ip: this.opts.mdnsGroup } : {}),
      reuseAddr: true,
      loopback: true
    })
    this.mdns = mdns
    mdns.on('error', (err) => this.logger.warn({ err }, 'mdns error'))
    mdns.on('warning', (err) => this.logger.debug({ err }, 'mdns warning'))
    mdns.on('query', (packet) => this.onquery(packet))
    mdns.on('response', (packet, rinfo) => this.onresponse(packet, rinfo))

    this.ticker = setInterval(() => this.tick(), this.opts.queryInterval)
    this.ticker.unref()
    const address = server.address()
    return typeof address === 'object' && address !== null ? address.port : 0
  }

  private tick (): void {
    if (this.names.size === 0) return
    const quiet = Date.now() - this.lastQuery
    if (!this.hasPeers() || quiet >= this.opts.idleQueryInterval) this.query()
  }

  private query (): void {
    if (this.mdns === null || this.closed || this.names.size === 0) return
    this.lastQuery = Date.now()
    const questions = [...this.names].map((name) => ({ name, type: 'TXT' }))
    this.mdns.query({ type: 'query', questions }, (err) => {
      if (err) this.logger.debug({ err }, 'mdns query failed')
    })
  }

  private announce (names: string[]): void {
    const server = this.server
    if (this.mdns === null || server === null || this.closed || names.length === 0) return
    const address = server.address()
    if (typeof address !== 'object' || address === null) return
    const data = [TXT_VERSION, `key=${this.keyHex}`, `port=${address.port}`]
    const answers = names.map((name) => ({ name, type: 'TXT' as const, ttl: RECORD_TTL_S, data }))
    this.mdns.respond({ type: 'response', answers }, (err) => {
      if (err) this.logger.debug({ err }, 'mdns announce failed')
    })
  }

  private onquery (packet: Packet): void {
    const asked = (packet.questions ?? []).map((q) => q.name).filter((name) => this.names.has(name))
    if (asked.length > 0) this.announce([...new Set(asked)])
  }

  private onresponse (packet: Packet, rinfo: RemoteInfo): void {
    for (const answer of [...(packet.answers ?? []), ...(packet.additionals ?? [])]) {
      if (answer.type !== 'TXT' || !this.names.has(answer.name)) continue
      const record = parseTxt(answer.data)
      if (record === null || record.key === this.keyHex) continue
      if (this.skipDial(record.key) || this.dialing.has(record.key)) continue
      this.dial(rinfo.address, record.port, record.key)
    }
  }

  private dial (host: string, port: number, remoteKeyHex: string): void {
    if (this.closed) return
    this.logger.debug({ host, port, remote: remoteKeyHex }, 'lan dial')
    this.dialing.add(remoteKeyHex)
    const socket = net.connect({ host, port })
    const stream = this.wrap(true, socket)
    const done = (): void => { this.dialing.delete(remoteKeyHex) }
    stream.opened.then(done, done)
    stream.once('close', done)
  }

  private accept (socket: net.Socket): void {
    if (this.closed) {
      socket.destroy()
      return
    }
    this.wrap(false, socket)
  }

  private wrap (isInitiator: boolean, socket: net.Socket): NoiseSecretStream {
    this.sockets.add(socket)
    socket.once('close', () => this.sockets.delete(socket))
    socket.on('error', (err) => this.logger.debug({ err }, 'lan socket error'))
    socket.setNoDelay(true)
    const stream = new NoiseSecretStream(isInitiator, socket, { keyPair: this.keyPair, keepAlive: this.opts.keepAlive })
    // Also bounds the handshake, so a half-open dial or a silent scanner is dropped.
    stream.setTimeout(this.opts.timeout)
    this.onstream(stream)
    return stream
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.names.clear()
    if (this.ticker !== null) clearInterval(this.ticker)
    if (this.soon !== null) clearTimeout(this.soon)
    await this.started?.catch(() => {})
    for (const socket of this.sockets) socket.destroy()
    const mdns = this.mdns
    const server = this.server
    await Promise.all([
      mdns === null ? null : new Promise<void>((resolve) => mdns.destroy(() => resolve())),
      server === null ? null : new Promise<void>((resolve) => server.close(() => resolve()))
    ])
  }
}

function parseTxt (data: unknown): { key: string, port: number } | null {
  const entries = (Array.isArray(data) ? data : [data]).map((item) => Buffer.isBuffer(item) ? item.toString('utf8') : String(item))
  if (!entries.includes(TXT_VERSION)) return null
  const fields = new Map(entries.map((entry) => {
    const at = entry.indexOf('=')
    return [entry.slice(0, at), entry.slice(at + 1)] as const
  }))
  const key = fields.get('key') ?? ''
  const port = Number(fields.get('port'))
  if (!/^[0-9a-f]{64}$/.test(key) || !Number.isInteger(port) || port < 1 || port > 65535) return null
  return { key, port }
}
