// The crosscast command: every subcommand registers itself from its own file.
// A new subcommand is a file with a register function and one line in
// COMMANDS; README's CLI reference is generated from what is registered here.

import { readFileSync } from 'node:fs'
import { Command } from 'commander'
import { registerServe } from './serve.ts'
import { registerEvents } from './events.ts'
import { registerTail } from './tail.ts'
import { registerStatus } from './status.ts'
import { registerReindex } from './reindex.ts'
import { registerBootstrap } from './bootstrap.ts'
import { registerItemCommands } from './items.ts'
import { registerAgentCommands } from './agents.ts'
import { colorsFor } from './output.ts'

const COMMANDS: Array<(program: Command) => unknown> = [
  registerServe,
  registerEvents,
  registerTail,
  registerStatus,
  registerReindex,
  registerBootstrap,
  registerItemCommands,
  registerAgentCommands
]

/** From lib/cli/ and from dist/cli/ alike, package.json is two folders up. */
export const VERSION: string = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version

export function buildProgram (): Command {
  const program = new Command()
  const c = colorsFor(process.stderr)
  program
    .name('crosscast')
    .description('Local-first, peer-to-peer sync of features, tracks and spikes between agent sessions')
    .version(VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'print help')
    // Commander's own errors (unknown option, bad choice) read like every other crosscast error: one line.
    .configureOutput({ outputError: (text, write) => write(`${c.red('crosscast:')} ${text.replace(/^error: /, '').trimEnd()} ${c.dim('(add --help for usage)')}\n`) })
  for (const register of COMMANDS) register(program)
  return program
}
