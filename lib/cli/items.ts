// The work-item commands: `crosscast feature|track|spike ...`, `changes`.
// Each runs one agent operation (lib/agents/operations.ts) through a running
// node's socket or a node of its own (lib/agents/client.ts); --json prints the
// operation's result, otherwise aligned, colored text.

import { Command, Option } from 'commander'
import { STATUSES, LINK_TYPES, PRIORITIES, type ResourceType } from '../events/types.ts'
import { validateId } from '../events/validate.ts'
import { callOperation, type ClientFlags } from '../agents/client.ts'
import { formatList, formatItem, formatChanges, formatWrite, colors, table } from '../agents/format.ts'

interface CommonFlags extends ClientFlags { json?: boolean }

/** The options every agent command takes: which room, who, and how to reach peers. */
export function nodeOptions (cmd: Command): Command {
  return cmd
    .option('--room <name>', 'room (default: derived from the git repository; env CROSSCAST_ROOM)')
    .option('--secret <secret>', 'room secret (default: this machine\'s key for the room; env CROSSCAST_SECRET)')
    .option('--agent <name>', 'agent name (env CROSSCAST_AGENT)')
    .option('--session <id>', 'session id (env CROSSCAST_SESSION)')
    .option('--storage <dir>', 'storage directory (default: a free slot of the room\'s pool in the data directory)')
    .option('--bootstrap <host:port...>', 'DHT bootstrap nodes (default: the public DHT)')
    .option('--no-swarm', 'do not discover peers over the DHT')
    .option('--no-lan', 'do not discover peers on the local network (mDNS)')
}

function print (flags: CommonFlags, result: unknown, human: () => string): void {
  process.stdout.write((flags.json === true ? JSON.stringify(result, null, 2) : human()) + '\n')
}

async function run (flags: CommonFlags, op: string, args: Record<string, unknown>, human: (result: Record<string, unknown>) => string): Promise<void> {
  const { result } = await callOperation(flags, op, args)
  print(flags, result, () => human(result as Record<string, unknown>))
}

function defined (obj: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined))
}

const FIELDS: Record<ResourceType, Array<{ flag: string, key: string, help: string, choices?: readonly string[] }>> = {
  feature: [
    { flag: '--status <status>', key: 'status', help: 'status', choices: STATUSES },
    { flag: '--description <text>', key: 'description', help: 'description' },
    { flag: '--priority <priority>', key: 'priority', help: 'priority', choices: PRIORITIES },
    { flag: '--track <trk-id>', key: 'track_id', help: 'track the feature belongs to' }
  ],
  track: [{ flag: '--description <text>', key: 'description', help: 'description' }],
  spike: [{ flag: '--findings <text>', key: 'findings', help: 'findings' }]
}

function optionKey (flag: string): string {
  return flag.slice(2, flag.indexOf(' ')).replace(/-([a-z])/g, (_, ch: string) => ch.toUpperCase())
}

function fieldArgs (kind: ResourceType, flags: Record<string, unknown>): Record<string, unknown> {
  return defined(Object.fromEntries(FIELDS[kind].map(f => [f.key, flags[optionKey(f.flag)]])))
}

function addFields (cmd: Command, kind: ResourceType): Command {
  for (const f of FIELDS[kind]) cmd.addOption(f.choices === undefined ? new Option(f.flag, f.help) : new Option(f.flag, f.help).choices(f.choices as string[]))
  return cmd
}

function leaf (parent: Command, spec: string, description: string): Command {
  return nodeOptions(parent.command(spec).description(description)).option('--json', 'print JSON')
}

function registerKind (program: Command, kind: ResourceType): void {
  const group = program.command(kind).description(`create, change and read ${kind}s`)
  const c = (): ReturnType<typeof colors> => colors()

  addFields(leaf(group, 'create <title>', `create a ${kind}`), kind)
    .action(async (title: string, flags: CommonFlags & Record<string, unknown>) => {
      await run(flags, 'create_item', { kind, title, ...fieldArgs(kind, flags) }, r => formatWrite('created', r, c()))
    })

  addFields(leaf(group, 'update <id>', `change fields of a ${kind}`), kind)
    .option('--title <title>', 'new title')
    .option('--if-version <version>', 'only when the item is still at this version (else CONFLICT)')
    .action(async (id: string, flags: CommonFlags & Record<string, unknown>) => {
      validateId(id, 'id', kind)
      await run(flags, 'update_item', defined({ id, title: flags.title, ...fieldArgs(kind, flags), if_version: flags.ifVersion }), r => formatWrite('updated', r, c()))
    })

  if (kind === 'feature') {
    leaf(group, 'status <id> <status>', `move a feature to another status (${STATUSES.join(', ')})`)
      .action(async (id: string, status: string, flags: CommonFlags) => {
        validateId(id, 'id', kind)
        await run(flags, 'set_status', { id, status }, r => formatWrite(`${status}:`, r, c()))
      })
    leaf(group, 'link <id> <linked-id>', 'link a feature to another')
      .addOption(new Option('--type <type>', 'link type').choices(LINK_TYPES as unknown as string[]).default('depends_on'))
      .action(async (id: string, linked: string, flags: CommonFlags & { type: string }) => {
        validateId(id, 'id', kind)
        await run(flags, 'link_items', { id, linked_id: linked, link_type: flags.type }, r => formatWrite(`linked (${flags.type} ${linked})`, r, c()))
      })
    leaf(group, 'delete <id>', 'delete a feature')
      .action(async (id: string, flags: CommonFlags) => {
        validateId(id, 'id', kind)
        await run(flags, 'delete_item', { id }, r => formatWrite('deleted', r, c()))
      })
  }

  leaf(group, 'comment <id> <text>', `comment on a ${kind}`)
    .action(async (id: string, text: string, flags: CommonFlags) => {
      validateId(id, 'id', kind)
      await run(flags, 'comment', { id, text }, r => formatWrite('commented on', r, c()))
    })

  leaf(group, 'show <id>', `one ${kind} with its links, comments and version`)
    .action(async (id: string, flags: CommonFlags) => {
      validateId(id, 'id', kind)
      await run(flags, 'get_item', { id }, r => formatItem(r, c()))
    })

  const list = leaf(group, 'list', `list ${kind}s`).option('--limit <n>', 'at most this many').option('--claimed-by <agent-or-session>', 'only items this agent or session holds')
  if (kind === 'feature') {
    list.addOption(new Option('--status <status>', 'only this status').choices(STATUSES as unknown as string[]))
    list.option('--track <trk-id>', 'only features of this track')
  }
  list.action(async (flags: CommonFlags & { limit?: string, status?: string, track?: string, claimedBy?: string }) => {
    await run(flags, 'list_items', defined({ kind, status: flags.status, track_id: flags.track, claimed_by: flags.claimedBy, limit: flags.limit }), r => formatList(r.items as Array<Record<string, unknown>>, c()))
  })
}

function formatSessions (sessions: Array<Record<string, unknown>>, c: ReturnType<typeof colors>): string {
  if (sessions.length === 0) return c.dim('no session online')
  return table([[c.bold('AGENT'), c.bold('SESSION'), c.bold('SINCE'), c.bold('HOLDS')], ...sessions.map(s => [
    c.magenta(String(s.agent_id)), String(s.session_id) + (s.self === true ? c.dim(' (you)') : ''), c.dim(String(s.since)), (s.claims as string[]).map(id => c.cyan(id)).join(' ') || c.dim('-')
  ])])
}

export function registerItemCommands (program: Command): void {
  for (const kind of ['feature', 'track', 'spike'] as const) registerKind(program, kind)
  const c = (): ReturnType<typeof colors> => colors()

  leaf(program, 'ready', 'features ready to work on: todo, dependencies done, nobody holds them')
    .option('--limit <n>', 'at most this many')
    .action(async (flags: CommonFlags & { limit?: string }) => {
      await run(flags, 'ready', defined({ limit: flags.limit }), r => formatList(r.items as Array<Record<string, unknown>>, c()))
    })

  leaf(program, 'claim <id>', 'claim an item for this session (refused with CLAIMED when another holds it)')
    .option('--ttl <seconds>', 'how long the claim lasts unless renewed (default 300)')
    .action(async (id: string, flags: CommonFlags & { ttl?: string }) => {
      await run(flags, 'claim', defined({ id, ttl_s: flags.ttl }), r => {
        const holder = r.holder as { agent_id: string, session_id: string } | null
        return r.won === true ? `claimed ${c().cyan(id)} until ${String(r.expires_at)}` : `not claimed: ${id} is held by ${String(holder?.agent_id)}/${String(holder?.session_id)}`
      })
    })

  leaf(program, 'release <id>', 'give up this session\'s claim on an item')
    .action(async (id: string, flags: CommonFlags) => {
      await run(flags, 'release', { id }, () => `released ${c().cyan(id)}`)
    })

  leaf(program, 'who', 'sessions online now, and what they hold')
    .action(async (flags: CommonFlags) => {
      await run(flags, 'who', {}, r => formatSessions(r.sessions as Array<Record<string, unknown>>, c()))
    })

  leaf(program, 'changes', 'what other sessions changed since a cursor (default: since this session last looked)')
    .option('--since <cursor>', 'a cursor printed by an earlier call')
    .option('--limit <n>', 'at most this many events')
    .option('--include-own', 'include this session\'s own events')
    .action(async (flags: CommonFlags & { since?: string, limit?: string, includeOwn?: boolean }) => {
      await run(flags, 'changes', defined({ since: flags.since, limit: flags.limit, include_own: flags.includeOwn }), r => {
        const body = formatChanges(r.events as Array<Record<string, unknown>>, colors())
        return `${body}\n${colors().dim(`cursor ${String(r.cursor)}${r.more === true ? ' (more)' : ''}`)}`
      })
    })
}
