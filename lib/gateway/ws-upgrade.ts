// What an upgraded WebSocket keeps of the HTTP exchange that opened it.

import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'

/**
 * Once upgraded, a connection needs none of the HTTP objects that opened it,
 * yet two references would keep them (request, response, reply, headers:
 * about 3 KiB a client) for the socket's whole life: the TCP socket still
 * points at the response @fastify/websocket assigned to it, and that plugin's
 * error listener closes over the request and the reply. This drops both;
 * `onError` takes over the listener's job (the plugin's errorHandler).
 */
export function releaseUpgrade (socket: WebSocket, stream: Socket, onError: (this: WebSocket, err: Error) => void): void {
  socket.on('error', onError)
  for (const listener of socket.listeners('error')) {
    if (listener !== onError) socket.off('error', listener as (err: Error) => void)
  }
  (stream as Socket & { _httpMessage: unknown })._httpMessage = null
}
