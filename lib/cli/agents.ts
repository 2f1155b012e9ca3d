// Agent set-up commands: `crosscast mcp` (the MCP server), `init`, `invite`,
// `join` (room keys), `hook` (for agent tools' hooks) and `setup claude`.
// Heavy modules load inside the actions, so `hook` and reads start fast.

import { readFileSync } from 'node:fs'
import { Command, Option } from 'commander'
import { nodeOptions } from './items.ts'
import { projectRoom, projectRoot } from '../agents/room.ts'
import { ensureKey, getKey, installKey, inviteToken, parseInvite, keysPath, fingerprint } from '../agents/keys.ts'
import { dataDir, roomDir } from '../agents/paths.ts'
import { colors, table } from '../agents/format.ts'

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']

function packageVersion (): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
  } catch {
    return '0.0.0'
  }
}

function roomOf (flags: { room?: string }): string {
  return flags.room ?? (process.env.CROSSCAST_ROOM === undefined || process.env.CROSSCAST_ROOM === '' ? projectRoom() : process.env.CROSSCAST_ROOM)
}

export function registerAgentCommands (program: Command): void {
  nodeOptions(program.command('mcp').description('run a stdio MCP server: this agent session\'s node (logs on stderr)'))
    .addOption(new Option('--log-level <level>', 'log level on stderr').choices(LOG_LEVELS).default('warn'))
    .action(async (flags) => {
      const { runMcp } = await import('../agents/mcp.ts')
      await runMcp(flags, packageVersion())
    })

  program.command('init')
    .description('create this machine\'s key for the room (in the user\'s config directory, never in the repository)')
    .option('--room <name>', 'room (default: derived from the git repository; env CROSSCAST_ROOM)')
    .option('--json', 'print JSON')
    .action((flags: { room?: string, json?: boolean }) => {
      const room = roomOf(flags)
      const { key, created } = ensureKey(room)
      const out = { room, created, key_fingerprint: fingerprint(key.secret), keys: keysPath(), data: roomDir(room) }
      if (flags.json === true) return void process.stdout.write(JSON.stringify(out, null, 2) + '\n')
      const c = colors()
      process.stdout.write(`${created ? 'created' : 'already have'} the key for room ${c.bold(room)} ${c.dim(`(${out.key_fingerprint})`)}\n` +
        table([[c.dim('keys'), out.keys], [c.dim('data'), out.data]]) + '\n' +
        `other machines: run ${c.cyan('crosscast invite')} here and ${c.cyan('crosscast join TOKEN')} there\n`)
    })

  program.command('invite')
    .description('print a token that lets another machine join the room (it carries the room key: share it privately)')
    .option('--room <name>', 'room (default: derived from the git repository; env CROSSCAST_ROOM)')
    .option('--json', 'print JSON')
    .action((flags: { room?: string, json?: boolean }) => {
      const room = roomOf(flags)
      const key = getKey(room) ?? ensureKey(room).key
      const token = inviteToken(room, key.secret)
      if (flags.json === true) return void process.stdout.write(JSON.stringify({ room, token, key_fingerprint: fingerprint(key.secret) }, null, 2) + '\n')
      process.stdout.write(token + '\n')
      process.stderr.write(`on the other machine: crosscast join <token>   (room ${room}, key ${fingerprint(key.secret)})\n`)
    })

  program.command('join <token>')
    .description('install a room key from `crosscast invite` on this machine')
    .option('--json', 'print JSON')
    .action((token: string, flags: { json?: boolean }) => {
      const { room, secret } = parseInvite(token)
      const { replaced } = installKey(room, secret)
      const out = { room, key_fingerprint: fingerprint(secret), replaced: replaced === null ? null : fingerprint(replaced.secret), keys: keysPath() }
      if (flags.json === true) return void process.stdout.write(JSON.stringify(out, null, 2) + '\n')
      process.stdout.write(`joined room ${room} (key ${out.key_fingerprint})${replaced === null ? '' : `; replaced key ${out.replaced}, which sessions here had created: restart them`}\n`)
    })

  program.command('hook')
    .description('for agent hooks: print what other sessions changed since this session last looked (nothing when nothing changed)')
    .option('--room <name>', 'room (default: derived from the git repository; env CROSSCAST_ROOM)')
    .option('--session <id>', 'whose "last looked" (default: the agent tool\'s session; env CROSSCAST_SESSION)')
    .option('--json', 'print {room, events, text}')
    .action(async (flags: { room?: string, session?: string, json?: boolean }) => {
      const { runHook, readHookInput } = await import('../agents/hook.ts')
      const input = await readHookInput()
      const result = runHook(flags, input)
      const { text } = result
      if (flags.json === true) return void process.stdout.write(JSON.stringify(result) + '\n')
      if (text === '') return
      // After a tool call, Claude Code passes plain output only to the transcript: hand it to the model as context.
      if (input.hook_event_name === 'PostToolUse') process.stdout.write(JSON.stringify({ hookSpecificOutput: { hookEventName: 'PostToolUse', additionalContext: text } }) + '\n')
      else process.stdout.write(text + '\n')
    })

  const setup = program.command('setup').description('configure an agent tool for this project')
  setup.command('claude')
    .description('write the crosscast MCP server to .mcp.json and its hooks to .claude/settings.json (idempotent)')
    .option('--command <cmd>', 'how to launch crosscast', 'crosscast')
    .option('--agent <name>', 'agent name the sessions write as', 'claude')
    .option('--dir <path>', 'project directory (default: the git repository\'s top level)')
    .option('--json', 'print JSON')
    .action(async (flags: { command: string, agent: string, dir?: string, json?: boolean }) => {
      const { setupClaude } = await import('../agents/setup.ts')
      const changes = setupClaude(flags.dir ?? projectRoot(), { command: flags.command, agent: flags.agent })
      if (flags.json === true) return void process.stdout.write(JSON.stringify({ changes }, null, 2) + '\n')
      const c = colors()
      const mark = { added: c.green('added'), updated: c.yellow('updated'), unchanged: c.dim('unchanged') }
      process.stdout.write(table(changes.map(ch => [mark[ch.action], ch.file, ch.what])) + '\n')
    })

  program.command('where')
    .description('print where crosscast keeps this machine\'s data and keys, and how to remove them')
    .option('--room <name>', 'room (default: derived from the git repository; env CROSSCAST_ROOM)')
    .option('--json', 'print JSON')
    .action((flags: { room?: string, json?: boolean }) => {
      const room = roomOf(flags)
      if (flags.json === true) return void process.stdout.write(JSON.stringify({ room, room_data: roomDir(room), data: dataDir(), keys: keysPath() }, null, 2) + '\n')
      const c = colors()
      process.stdout.write(table([
        [c.dim('room'), room],
        [c.dim('room data'), roomDir(room)],
        [c.dim('all data'), dataDir()],
        [c.dim('keys'), keysPath()]
      ]) + `\nremove a room's data: rm -rf ${roomDir(room)} (stop its sessions first; peers still hold what was shared)\n`)
    })
}
