// A room of many peers (issue 12 §5): BENCH_ROOM_NODES nodes (default 32; 8 with
// BENCH_QUICK=1) on one loopback hyperdht testnet, lan: false, spread over
// BENCH_ROOM_PROCESSES OS processes (default 8: 32 node processes do not fit two
// cores beside other work), each node its own storage, DHT node and swarm. Every node
// writes; the figure is the time until every node holds every event. Then a quarter
// of the nodes close while as many new ones join and everyone writes again, and
// every node up at the end must hold every event with the same content hash.
//
// Each node runs with maxPeers BENCH_ROOM_MAX_PEERS (default 8), well under the room's
// size: Hyperswarm's default (64) would let 32 nodes form a full mesh, which a room
// of hundreds could not, so this measures what a big room relies on: logs relayed by
// the nodes in between. Printed: time to converge, connections per node (min /
// median / max, and how many the node dialled vs accepted), bytes per node sent and
// received (everything on its UDX sockets: DHT and connections), CPU per node.
// Baseline in the same run (BENCH_ROOM_MESH=0 skips it): the same room at Hyperswarm's
// default maxPeers, a full mesh at this size. One run of both takes 1.5-2 min at 32 nodes,
// so this module takes at most 3 runs (BENCH_ROOM_RUNS overrides).
//
// Hyperswarm 4.17 as checked: maxPeers counts every connection but only gates its own
// dials; maxClientConnections / maxServerConnections default to Infinity and the latter
// is never enforced (crosscast's Discovery caps accepted ones at maxPeers when set);
// join()'s per-topic `limit` (default Infinity, unused here) caps peers taken per lookup;
// a DHT node answers a lookup with a random 20 of a topic's announcers, and a lookup asks
// about 20 nodes, so one lookup almost surely sees every node of a room this size.
import createTestnet from 'hyperdht/testnet'
import { envInt, type BenchContext, type FigureSet } from './lib/contract.ts'
import { summarize, median } from './lib/stats.ts'
import { runRoom, relayedOnly, type NodeState, type RoomResult } from './lib/room-run.ts'

export const system = 'crosscast'

function spread (values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b)
  return `${sorted[0]}/${median(sorted)}/${sorted[sorted.length - 1]}`
}

const kib = (bytes: number): number => bytes / 1024

export async function run (ctx: BenchContext): Promise<FigureSet> {
  const nodes = envInt('BENCH_ROOM_NODES', ctx.quick ? 8 : 32)
  const processes = Math.min(nodes, envInt('BENCH_ROOM_PROCESSES', ctx.quick ? 2 : 8))
  const maxPeers = envInt('BENCH_ROOM_MAX_PEERS', ctx.quick ? 3 : 8)
  const eventsPerNode = envInt('BENCH_ROOM_EVENTS', 20)
  const churn = Math.max(1, Math.floor(nodes / 4))
  const runs = envInt('BENCH_ROOM_RUNS', Math.min(ctx.runs, 3))
  const samples: Record<string, number[]> = {}
  const push = (id: string, v: number): void => { (samples[id] ??= []).push(v) }
  const notes: Record<string, string> = {}

  // The same room at Hyperswarm's default maxPeers (64: a full mesh at this size), same run.
  const mesh = process.env.BENCH_ROOM_MESH !== '0'
  const room = async (run: number, cap: number | undefined): Promise<RoomResult> => {
    const testnet = await createTestnet(3, { host: '127.0.0.1' })
    try {
      return await runRoom({
        bootstrap: testnet.bootstrap.map(({ host, port }) => ({ host, port })),
        nodes,
        processes,
        eventsPerNode,
        maxPeers: cap,
        leave: churn,
        join: churn,
        timeoutMs: 180_000,
        log: (line) => ctx.log(`[crosscast] room run ${run + 1}/${runs}${cap === undefined ? ' (full mesh)' : ''}: ${line}`)
      })
    } finally {
      await testnet.destroy()
    }
  }

  for (let i = 0; i < runs; i++) {
    const r = await room(i, maxPeers)
    const distinct = new Set(r.hashes.values()).size
    if (distinct !== 1) throw new Error(`after churn the ${r.hashes.size} nodes up hold ${distinct} different contents`)
    const peers = (states: NodeState[]): number[] => states.map(s => s.peers)
    push('room.converge_ms', r.convergeMs)
    push('room.connections_median', median(peers(r.converged)))
    push('room.connections_max', Math.max(...peers(r.converged)))
    push('room.relayed_writers_median', median(relayedOnly(r.converged)))
    push('room.kib_sent_per_node_median', kib(median(r.converged.map(s => s.bytesSent))))
    push('room.kib_received_per_node_median', kib(median(r.converged.map(s => s.bytesReceived))))
    push('room.kib_sent_per_node_max', kib(Math.max(...r.converged.map(s => s.bytesSent))))
    push('room.cpu_s_per_node', r.cpuSeconds / nodes)
    push('room.churn_converge_ms', r.churnConvergeMs)
    push('room.churn_connections_median', median(peers(r.final)))
    const line = `connections min/median/max ${spread(peers(r.converged))} (dialled ${spread(r.converged.map(s => s.clients))}, accepted ${spread(r.converged.map(s => s.servers))}); ` +
      `KiB sent ${spread(r.converged.map(s => Math.round(kib(s.bytesSent))))}, received ${spread(r.converged.map(s => Math.round(kib(s.bytesReceived))))} ` +
      `(on connections ${spread(r.converged.map(s => Math.round(kib(s.connectionBytesSent))))} / ${spread(r.converged.map(s => Math.round(kib(s.connectionBytesReceived))))}); ` +
      `after churn: connections ${spread(peers(r.final))}, ${r.final.length} nodes hold ${r.expected} events, one content hash`
    ctx.log(`[crosscast] room run ${i + 1}/${runs}: ${line}`)
    notes.last = line
    if (mesh) {
      const m = await room(i, undefined)
      push('room.mesh_converge_ms', m.convergeMs)
      push('room.mesh_connections_median', median(peers(m.converged)))
      push('room.mesh_kib_received_per_node_median', kib(median(m.converged.map(s => s.bytesReceived))))
      push('room.mesh_cpu_s_per_node', m.cpuSeconds / nodes)
      push('room.mesh_churn_converge_ms', m.churnConvergeMs)
      push('room.mesh_churn_connections_median', median(peers(m.final)))
    }
  }

  const setup = `${nodes} nodes in ${processes} processes, maxPeers ${maxPeers}, ${eventsPerNode} events each, loopback DHT`
  const churnSetup = `${churn} of ${nodes} nodes close while ${churn} join and all write ${eventsPerNode} more; every node up ends with one content hash`
  const fig = (id: string, unit: string, note: string): FigureSet[string] => summarize(samples[id], unit, true, note)
  return {
    'room.converge_ms': fig('room.converge_ms', 'ms', `every node holds every node's events, from the first open; ${setup}`),
    'room.connections_median': fig('room.connections_median', 'peers', `authenticated peers per node at convergence (a full mesh is ${nodes - 1}); last run: ${notes.last}`),
    'room.connections_max': fig('room.connections_max', 'peers', 'Hyperswarm caps the peers a node dials, not those it accepts'),
    'room.relayed_writers_median': fig('room.relayed_writers_median', 'writers', `per node, writers it is not connected to at convergence: their logs came through relays (of ${nodes - 1})`),
    'room.kib_sent_per_node_median': fig('room.kib_sent_per_node_median', 'KiB', 'UDX bytes (DHT and connections) from open to convergence'),
    'room.kib_received_per_node_median': fig('room.kib_received_per_node_median', 'KiB', 'UDX bytes from open to convergence'),
    'room.kib_sent_per_node_max': fig('room.kib_sent_per_node_max', 'KiB', 'the busiest node: its logs and relayed ones'),
    'room.cpu_s_per_node': fig('room.cpu_s_per_node', 's', `CPU used by the node processes from start to convergence, per node (module loading included); the run is CPU-bound when nodes x this exceeds the cores' share`),
    'room.churn_converge_ms': fig('room.churn_converge_ms', 'ms', churnSetup),
    'room.churn_connections_median': fig('room.churn_connections_median', 'peers', 'authenticated peers per node after the churn'),
    ...(mesh ? meshFigures(samples, fig) : {})
  }
}

function meshFigures (samples: Record<string, number[]>, fig: (id: string, unit: string, note: string) => FigureSet[string]): FigureSet {
  const ratio = (id: string): string => `${(median(samples[`room.mesh_${id}`]) / median(samples[`room.${id}`])).toFixed(2)}x the capped room's`
  return {
    'room.mesh_converge_ms': fig('room.mesh_converge_ms', 'ms', `baseline, same run: the same room at Hyperswarm's default maxPeers (64); ${ratio('converge_ms')}`),
    'room.mesh_connections_median': fig('room.mesh_connections_median', 'peers', 'baseline: authenticated peers per node at convergence'),
    'room.mesh_kib_received_per_node_median': fig('room.mesh_kib_received_per_node_median', 'KiB', `baseline: UDX bytes received per node to convergence; ${ratio('kib_received_per_node_median')}`),
    'room.mesh_cpu_s_per_node': fig('room.mesh_cpu_s_per_node', 's', `baseline: CPU per node to convergence; ${ratio('cpu_s_per_node')}`),
    'room.mesh_churn_converge_ms': fig('room.mesh_churn_converge_ms', 'ms', `baseline: the same churn in the full mesh (it stalled past 180 s until presence stopped flooding every announcement to every peer); ${ratio('churn_converge_ms')}`),
    'room.mesh_churn_connections_median': fig('room.mesh_churn_connections_median', 'peers', 'baseline: authenticated peers per node after the churn')
  }
}
