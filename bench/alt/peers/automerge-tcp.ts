// A NetworkAdapter for automerge-repo over one TCP socket on 127.0.0.1: the
// package ships no socket adapter in its core, so this is the thinnest one
// possible: CBOR messages (as the official WebSocket adapter sends them) in
// 4-byte length-prefixed frames, after a one-frame join handshake. The socket
// counts every byte, which gives bytes on the wire per change.
import type net from 'node:net'
import { NetworkAdapter, type Message, type PeerId, type PeerMetadata } from '@automerge/automerge-repo'
import { encode, decode } from '@automerge/automerge-repo/helpers/cbor.js'

interface Join { type: 'join', senderId: PeerId, peerMetadata: PeerMetadata }

export class TcpNetworkAdapter extends NetworkAdapter {
  private readonly socket: net.Socket
  private ready = false
  private readonly readyPromise: Promise<void>
  private resolveReady: () => void = () => {}
  private remotePeer: PeerId | null = null
  private buffered: Buffer = Buffer.alloc(0)

  constructor (socket: net.Socket) {
    super()
    this.socket = socket
    this.readyPromise = new Promise((resolve) => { this.resolveReady = resolve })
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', () => {})
    socket.on('close', () => {
      if (this.remotePeer) this.emit('peer-disconnected', { peerId: this.remotePeer })
      this.emit('close')
    })
  }

  isReady (): boolean { return this.ready }
  whenReady (): Promise<void> { return this.readyPromise }

  connect (peerId: PeerId, peerMetadata?: PeerMetadata): void {
    this.peerId = peerId
    this.peerMetadata = peerMetadata ?? {}
    this.writeFrame({ type: 'join', senderId: peerId, peerMetadata: this.peerMetadata })
    this.ready = true
    this.resolveReady()
  }

  send (message: Message): void {
    this.writeFrame(message)
  }

  disconnect (): void {
    this.socket.destroy()
  }

  private writeFrame (value: unknown): void {
    const body = encode(value)
    const header = Buffer.alloc(4)
    header.writeUInt32BE(body.length, 0)
    this.socket.write(Buffer.concat([header, body]))
  }

  private onData (chunk: Buffer): void {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk
    // bounded by the bytes received: every pass consumes one whole frame
    while (this.buffered.length >= 4) {
      const size = this.buffered.readUInt32BE(0)
      if (this.buffered.length < 4 + size) break
      const frame = this.buffered.subarray(4, 4 + size)
      this.buffered = this.buffered.subarray(4 + size)
      const msg = decode<Message | Join>(frame)
      if (msg.type === 'join') {
        const join = msg as Join
        this.remotePeer = join.senderId
        this.emit('peer-candidate', { peerId: join.senderId, peerMetadata: join.peerMetadata ?? {} })
      } else {
        this.emit('message', msg as Message)
      }
    }
  }
}
