// One set of figures, two renderings: JSON for /api/metrics (the seed's
// get_global_metrics names) and Prometheus text for /metrics.

import type { Crosscast } from '../index.ts'
import type { HubStats } from './ws-hub.ts'

export const ACTIVE_SESSION_WINDOW_MS = 5 * 60 * 1000

export interface GatewayCounters {
  startedAt: number
  restWrites: number
  restErrors: number
  /** session id → last time it wrote through this gateway */
  writeSessions: Map<string, number>
}

export interface Metrics {
  total_connected_clients: number
  active_sessions: number
  total_events_broadcast: number
  total_frames_sent: number
  total_bytes_sent: number
  clients_dropped_lagging: number
  clients_dropped_dead: number
  rest_writes_total: number
  rest_errors_total: number
  connected_peers: number
  writers: number
  local_writers: number
  indexing_lag: number
  events_total: number
  events_per_second: number
  room: string
  session_id: string
  uptime_seconds: number
}

/** Sessions connected by WebSocket now, or that wrote through the gateway in the last five minutes. */
function activeSessions (hub: HubStats, counters: GatewayCounters, now: number): number {
  const active = new Set(hub.sessionIds)
  for (const [sessionId, at] of counters.writeSessions) {
    if (now - at <= ACTIVE_SESSION_WINDOW_MS) active.add(sessionId)
    else counters.writeSessions.delete(sessionId)
  }
  return active.size
}

export function collectMetrics (cc: Crosscast, hub: HubStats, counters: GatewayCounters): Metrics {
  const now = Date.now()
  const status = cc.status()
  return {
    total_connected_clients: hub.connectedClients,
    active_sessions: activeSessions(hub, counters, now),
    total_events_broadcast: hub.eventsBroadcast,
    total_frames_sent: hub.framesSent,
    total_bytes_sent: hub.bytesSent,
    clients_dropped_lagging: hub.droppedLagging,
    clients_dropped_dead: hub.droppedDead,
    rest_writes_total: counters.restWrites,
    rest_errors_total: counters.restErrors,
    connected_peers: status.peers.length,
    writers: status.writers.length,
    local_writers: status.writers.filter(w => w.local).length,
    indexing_lag: status.lag,
    events_total: status.events.total,
    events_per_second: status.events.perSecond,
    room: status.room,
    session_id: status.sessionId,
    uptime_seconds: Math.round((now - counters.startedAt) / 1000)
  }
}

const PROMETHEUS: Array<[keyof Metrics, string, 'gauge' | 'counter', string]> = [
  ['total_connected_clients', 'crosscast_gateway_connected_clients', 'gauge', 'WebSocket clients connected now'],
  ['active_sessions', 'crosscast_gateway_active_sessions', 'gauge', 'sessions connected or writing in the last five minutes'],
  ['total_events_broadcast', 'crosscast_gateway_events_broadcast_total', 'counter', 'distinct events sent to at least one WebSocket client'],
  ['total_frames_sent', 'crosscast_gateway_frames_sent_total', 'counter', 'broadcast_event frames sent, one per client per event'],
  ['total_bytes_sent', 'crosscast_gateway_bytes_sent_total', 'counter', 'bytes of WebSocket text frames sent'],
  ['clients_dropped_lagging', 'crosscast_gateway_clients_dropped_lagging_total', 'counter', 'clients closed because their unsent backlog passed the bound'],
  ['clients_dropped_dead', 'crosscast_gateway_clients_dropped_dead_total', 'counter', 'clients dropped for missing a heartbeat'],
  ['rest_writes_total', 'crosscast_gateway_rest_writes_total', 'counter', 'REST writes that appended events'],
  ['rest_errors_total', 'crosscast_gateway_rest_errors_total', 'counter', 'REST requests answered with an error'],
  ['connected_peers', 'crosscast_peers', 'gauge', 'replication peers connected now'],
  ['writers', 'crosscast_writers', 'gauge', 'writer logs known to this node'],
  ['local_writers', 'crosscast_local_writers', 'gauge', 'writer logs hosted by this node'],
  ['indexing_lag', 'crosscast_indexing_lag', 'gauge', 'blocks downloaded but not yet projected into SQLite'],
  ['events_total', 'crosscast_events_total', 'counter', 'events in broadcast_events'],
  ['events_per_second', 'crosscast_events_per_second', 'gauge', 'events projected per second, recent average'],
  ['uptime_seconds', 'crosscast_gateway_uptime_seconds', 'gauge', 'seconds since the gateway started']
]

function labelValue (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

export function prometheusText (m: Metrics): string {
  const labels = `{room="${labelValue(m.room)}",session_id="${labelValue(m.session_id)}"}`
  const lines: string[] = []
  for (const [key, name, type, help] of PROMETHEUS) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${labels} ${Number(m[key])}`)
  }
  return lines.join('\n') + '\n'
}
