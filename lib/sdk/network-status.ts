// What a running node reports of its network, apart from the network code so
// that `crosscast status` can read it beside the node without loading hyperswarm.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TransportName } from '../net/types.ts'

export interface PeerStatus { remoteKey: string, transport: TransportName, since: number, authenticated: boolean }

/** The latest failed room handshake of one remote peer. */
export interface RejectedPeer { remoteKey: string, reason: string, at: string, count: number }

export interface RejectedPeersStatus {
  /** Distinct remote peers that failed the room handshake (each counted once, however often it redials). */
  peers: number
  /** The most recent ones, newest first, at most MAX_REJECTED_REASONS. */
  reasons: RejectedPeer[]
}

// A running node holds its storage locked, so `crosscast status` cannot open it to
// ask; the node leaves what only it knows (peers, failed handshakes) in this file
// while it runs, and removes it on close.
export const NETWORK_STATUS_FILE = 'network-status.json'

export interface NetworkStatusFile { pid: number, updatedAt: string, peers: PeerStatus[], rejected: RejectedPeersStatus }

/** What the node running on this storage last wrote; null when none runs or it wrote nothing yet. */
export function readNetworkStatus (storage: string): NetworkStatusFile | null {
  try {
    return JSON.parse(readFileSync(join(storage, NETWORK_STATUS_FILE), 'utf8')) as NetworkStatusFile
  } catch {
    return null
  }
}
