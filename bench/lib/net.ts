// Loopback transport for the hypercore-stack alternatives: a plain TCP socket
// on 127.0.0.1 wrapped in a Noise secret stream, the same encryption
// Hyperswarm gives, without DHT discovery (which is not what is measured).
import net from 'node:net'
import { createRequire } from 'node:module'
import type { Duplex } from 'node:stream'

const require = createRequire(import.meta.url)

export interface SecretStream extends Duplex {
  readonly rawStream: net.Socket
  readonly remotePublicKey: Buffer | null
  opened: Promise<boolean>
}
type SecretStreamCtor = new (isInitiator: boolean, raw: net.Socket) => SecretStream
const NoiseSecretStream = require('@hyperswarm/secret-stream') as SecretStreamCtor

export interface SecretServer { port: number, close (): Promise<void> }

export async function listenSecret (onStream: (stream: SecretStream) => void): Promise<SecretServer> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    socket.setNoDelay(true)
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    const stream = new NoiseSecretStream(false, socket)
    stream.on('error', () => {})
    onStream(stream)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

export async function connectSecret (port: number): Promise<SecretStream> {
  const socket = net.connect({ port, host: '127.0.0.1' })
  socket.setNoDelay(true)
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve())
    socket.once('error', reject)
  })
  const stream = new NoiseSecretStream(true, socket)
  stream.on('error', () => {})
  return stream
}
