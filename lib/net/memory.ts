// An in-process link between two Discovery instances: a real Noise handshake
// over a duplex pair, no sockets. It lets tests (and the shared transport
// suite) exercise dedupe and lifecycle exactly as the network transports do.
import NoiseSecretStream from '@hyperswarm/secret-stream'
import type { Discovery } from './index.ts'

const REDIAL_MS = 100

export interface MemoryLink {
  // Dials once more, on top of the link's own dialling (tests force duplicates with it).
  dial (initiator?: 'a' | 'b'): void
  close (): void
}

// Connects a and b now and, unless reconnect is false, again whenever they lose
// each other, until either closes or the link is closed.
export function connectInMemory (a: Discovery, b: Discovery, opts: { reconnect?: boolean } = {}): MemoryLink {
  let closed = false
  let timer: NodeJS.Timeout | null = null
  const aKey = a.publicKey.toString('hex')
  const bKey = b.publicKey.toString('hex')

  const dial = (initiator: 'a' | 'b' = 'a'): void => {
    if (closed || a.closed || b.closed) return
    const [left, right] = initiator === 'a' ? [a, b] : [b, a]
    const outgoing = new NoiseSecretStream(true, null, { keyPair: left.keyPair })
    const incoming = new NoiseSecretStream(false, null, { keyPair: right.keyPair })
    outgoing.rawStream.pipe(incoming.rawStream).pipe(outgoing.rawStream)
    // A real wire breaks for both ends at once; so does this one.
    outgoing.once('close', () => incoming.destroy())
    incoming.once('close', () => outgoing.destroy())
    left.attach(outgoing, 'memory')
    right.attach(incoming, 'memory')
  }

  const onlost = (): void => {
    if (closed || timer !== null) return
    timer = setTimeout(() => {
      timer = null
      if (closed || a.closed || b.closed) return
      if (a.connections.has(bKey) || b.connections.has(aKey)) return
      dial()
    }, REDIAL_MS)
    timer.unref()
  }
  const onDisconnectA = (conn: { remotePublicKey: Buffer }): void => { if (conn.remotePublicKey.toString('hex') === bKey) onlost() }
  const onDisconnectB = (conn: { remotePublicKey: Buffer }): void => { if (conn.remotePublicKey.toString('hex') === aKey) onlost() }

  const close = (): void => {
    if (closed) return
    closed = true
    if (timer !== null) clearTimeout(timer)
    a.removeListener('disconnection', onDisconnectA)
    b.removeListener('disconnection', onDisconnectB)
  }

  if (opts.reconnect !== false) {
    a.on('disconnection', onDisconnectA)
    b.on('disconnection', onDisconnectB)
  }
  dial()
  return { dial, close }
}
