// Human output of the agent commands: aligned columns, colored on a terminal,
// plain when piped or NO_COLOR is set (--json prints the operation's result as is).

import pc from 'picocolors'

type Colors = ReturnType<typeof pc.createColors>

export function colors (stream: NodeJS.WriteStream = process.stdout): Colors {
  const enabled = stream.isTTY === true && (process.env.NO_COLOR === undefined || process.env.NO_COLOR === '') && process.env.TERM !== 'dumb'
  return pc.createColors(enabled)
}

const STATUS_COLOR: Record<string, keyof Colors> = { todo: 'white', in_progress: 'yellow', blocked: 'red', done: 'green' }

function visibleLength (s: string): number {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, '').length
}

/** Rows padded to the widest cell of each column (the last column is not padded). */
export function table (rows: string[][]): string {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, visibleLength(cell)) })
  return rows.map(row => row.map((cell, i) => i === row.length - 1 ? cell : cell + ' '.repeat(widths[i] - visibleLength(cell))).join('  ').trimEnd()).join('\n')
}

function statusCell (c: Colors, status: unknown): string {
  if (typeof status !== 'string') return c.dim('-')
  const color = STATUS_COLOR[status] ?? 'white'
  return (c[color] as (s: string) => string)(status)
}

type Item = Record<string, unknown>

export function formatList (items: Item[], c: Colors = colors()): string {
  if (items.length === 0) return c.dim('no items')
  const rows = [[c.bold('ID'), c.bold('STATUS'), c.bold('PRIORITY'), c.bold('TITLE')]]
  for (const i of items) rows.push([c.cyan(String(i.id)), i.kind === 'feature' ? statusCell(c, i.status) : c.dim(String(i.kind)), i.priority == null ? c.dim('-') : String(i.priority), String(i.title ?? '')])
  return table(rows)
}

export function formatItem (item: Item, c: Colors = colors()): string {
  const skip = new Set(['comments', 'links', 'kind', 'id', 'title'])
  const rows: string[][] = []
  for (const [key, value] of Object.entries(item)) {
    if (skip.has(key) || value === null || value === undefined || (Array.isArray(value) && value.length === 0)) continue
    rows.push([c.dim(key), key === 'status' ? statusCell(c, value) : typeof value === 'string' ? value : JSON.stringify(value)])
  }
  const lines = [`${c.cyan(String(item.id))}  ${c.bold(String(item.title ?? ''))}  ${c.dim(String(item.kind))}`, table(rows).split('\n').map(l => '  ' + l).join('\n')]
  const links = (item.links ?? []) as Array<{ link_type: string, linked_feature_id: string }>
  if (links.length > 0) lines.push(c.dim('  links'), ...links.map(l => `    ${l.link_type} ${c.cyan(l.linked_feature_id)}`))
  const comments = (item.comments ?? []) as Array<{ author: string, text: string, created_at: string }>
  if (comments.length > 0) lines.push(c.dim('  comments'), ...comments.map(cm => `    ${c.dim(cm.created_at)} ${c.magenta(cm.author)}: ${cm.text}`))
  return lines.join('\n')
}

export function describeEvent (e: { event_type: string, payload: Record<string, unknown> }): string {
  const p = e.payload
  switch (e.event_type) {
    case 'feature_created': return `created "${String(p.title)}" (${String(p.status)})`
    // A status move also writes status_changed, which says it better.
    case 'feature_updated': { const keys = Object.keys(p).filter(k => k !== 'status'); return keys.length === 0 ? '' : `updated ${keys.join(', ')}` }
    case 'feature_deleted': return 'deleted'
    case 'status_changed': return `${String(p.old_status)} -> ${String(p.new_status)}`
    case 'link_added': return `${String(p.link_type)} ${String(p.linked_feature_id)}`
    case 'comment_added': return `comment: ${String(p.comment_text).slice(0, 80)}`
    case 'track_updated': case 'spike_updated': return p.title === undefined ? `updated ${Object.keys(p).join(', ')}` : `"${String(p.title)}"`
    default: return JSON.stringify(p).slice(0, 80)
  }
}

export function formatChanges (events: Array<Record<string, unknown>>, c: Colors = colors()): string {
  if (events.length === 0) return c.dim('no changes')
  return table(events.map(e => [c.dim(String(e.cursor)), c.dim(String(e.timestamp).slice(11, 19)), c.magenta(`${String(e.agent_id)}/${String(e.session_id)}`), c.cyan(String(e.resource_id)), describeEvent(e as { event_type: string, payload: Record<string, unknown> })]))
}

export function formatWrite (verb: string, result: Record<string, unknown>, c: Colors = colors()): string {
  const version = result.version === undefined || result.version === null ? '' : c.dim(`  version ${String(result.version)}`)
  return `${verb} ${c.cyan(String(result.id))}${version}`
}
