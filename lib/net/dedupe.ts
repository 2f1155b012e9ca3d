// Which of two live connections to the same remote key survives.
//
// Both ends run this on the same pair and must pick the same one, otherwise each
// closes the connection the other kept and they are left with none. So the rule
// uses only facts both ends see identically for a given connection:
//   1. the transport (swarm over lan over stream over memory): a LAN link is kept only until
//      the DHT finds the peer. Ranking swarm first means Hyperswarm's own retries
//      never lose to a LAN link and so never churn; LAN never dials a peer that
//      is already connected, so it does not churn either.
//   2. the initiator's public key (the higher one wins), like Hyperswarm's own
//      tie break, so two simultaneous dials settle on one.
//   3. the Noise handshake hash (the lower one wins): unique per connection and
//      equal at both ends, so even two dials by the same side settle.
import type { TransportName } from './types.ts'

const TRANSPORT_RANK: Record<TransportName, number> = { swarm: 3, lan: 2, stream: 1, memory: 0 }

export interface Candidate {
  transport: TransportName
  initiatorKey: Buffer
  handshakeHash: Buffer
}

// True when `challenger` should replace `incumbent`.
export function prefers (challenger: Candidate, incumbent: Candidate): boolean {
  const rank = TRANSPORT_RANK[challenger.transport] - TRANSPORT_RANK[incumbent.transport]
  if (rank !== 0) return rank > 0
  const initiator = Buffer.compare(challenger.initiatorKey, incumbent.initiatorKey)
  if (initiator !== 0) return initiator > 0
  return Buffer.compare(challenger.handshakeHash, incumbent.handshakeHash) < 0
}
