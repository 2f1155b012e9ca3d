// The replication links of a crosscast bench peer: TCP on 127.0.0.1 carried by
// Crosscast#replicate, so the room handshake and Noise are what peers really run.
import net from 'node:net'
import type { Crosscast } from '../../lib/index.ts'

export class PeerLinks {
  readonly sockets = new Set<net.Socket>()
  private server: net.Server | null = null
  private readonly node: () => Crosscast

  constructor (node: () => Crosscast) {
    this.node = node
  }

  private track (socket: net.Socket): net.Socket {
    socket.setNoDelay(true)
    this.sockets.add(socket)
    socket.on('close', () => this.sockets.delete(socket))
    socket.on('error', () => {})
    return socket
  }

  async listen (): Promise<{ port: number }> {
    const c = this.node()
    const server = net.createServer((socket) => { c.replicate(false, this.track(socket)) })
    this.server = server
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    return { port: (server.address() as net.AddressInfo).port }
  }

  connect (port: number): true {
    this.node().replicate(true, this.track(net.connect(port, '127.0.0.1')))
    return true
  }

  /** Peers that passed the room handshake. */
  authenticated (): number {
    return this.node().status().peers.filter(p => p.authenticated).length
  }

  close (): void {
    for (const s of this.sockets) s.destroy()
    this.server?.close()
  }
}
