// What every subcommand prints with: colors decided once per stream, one event
// line format, count flags, and the wait for Ctrl-C.

import pc from 'picocolors'
import { CrosscastError } from '../errors.ts'
import type { BroadcastEvent, EventType } from '../events/types.ts'

export type Colors = ReturnType<typeof pc.createColors>

/**
 * Colors on a terminal, none when piped, none with NO_COLOR (no-color.org), forced by FORCE_COLOR.
 * picocolors' own detection is not used: it turns colors on for any CI=… even when piped.
 */
export function colorsFor (stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Colors {
  let enabled = stream.isTTY === true && env.TERM !== 'dumb'
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '') enabled = env.FORCE_COLOR !== '0'
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') enabled = false
  return pc.createColors(enabled)
}

const TYPE_COLOR: Record<EventType, keyof Colors> = {
  feature_created: 'green',
  feature_updated: 'blue',
  feature_deleted: 'red',
  track_updated: 'blue',
  spike_updated: 'blue',
  status_changed: 'yellow',
  link_added: 'cyan',
  comment_added: 'magenta',
  claim_added: 'cyan',
  claim_released: 'cyan'
}

export function formatEvent (e: BroadcastEvent, c: Colors): string {
  const paint = c[TYPE_COLOR[e.event_type]] as (s: string) => string
  return `${c.dim(e.timestamp)}  ${c.dim(String(e.cursor).padStart(6))}  ${paint(e.event_type.padEnd(15))}  ${c.bold(e.resource_id)}  ${c.dim(`${e.agent_id}/${e.session_id}`)}  ${JSON.stringify(e.payload)}`
}

export function parseCount (value: string, flag: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0) throw new CrosscastError('INVALID_OPTION', `${flag} must be a non-negative integer, got ${JSON.stringify(value)}`, { field: flag })
  return n
}

export function waitForSignal (): Promise<void> {
  return new Promise(resolve => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
}
