// Generates the parts of README.md that restate code: the error-code table
// (from ERROR_CODES in lib/errors.ts) and the command-line reference (from the
// commander definitions every subcommand registers). `npm run docs` rewrites
// them in place; test/readme.test.ts fails when README.md has drifted.
//
//   npm run docs            rewrite README.md
//   npm run docs -- --check exit 1 when README.md is not what this would write

import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Command, Option } from 'commander'
import { ERROR_CODES, type ErrorCode } from '../lib/errors.ts'
import { buildProgram } from '../lib/cli/program.ts'

export const README = fileURLToPath(new URL('../README.md', import.meta.url))

function cell (text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ')
}

export function errorTable (): string {
  const rows = (Object.keys(ERROR_CODES) as ErrorCode[]).map((code) => {
    const entry: { status: number, description: string, also?: Record<number, string> } = ERROR_CODES[code]
    const also = Object.entries(entry.also ?? {})
    const statuses = [entry.status, ...also.map(([status]) => status)].join(', ')
    const when = [entry.description, ...also.map(([status, why]) => `HTTP ${status}: ${why}`)].join('; ')
    return `| \`${code}\` | ${statuses} | ${cell(when)} |`
  })
  return ['| code | HTTP | when |', '|---|---|---|', ...rows].join('\n')
}

function defaultOf (option: Option): string {
  if (option.mandatory) return '(required)'
  if (option.negate || option.defaultValue === undefined || option.defaultValue === false) return ''
  return `\`${Array.isArray(option.defaultValue) ? option.defaultValue.join(' ') : String(option.defaultValue)}\``
}

function meaningOf (option: Option): string {
  const choices = option.argChoices === undefined ? '' : ` (one of ${option.argChoices.join(', ')})`
  return cell(option.description + choices)
}

/** Every command, nested ones under their parent's name, in registration order. */
function commandsOf (command: Command, prefix: string): Array<{ name: string, command: Command }> {
  return command.commands.flatMap((sub) => {
    const name = `${prefix} ${sub.name()}`
    return [{ name, command: sub }, ...commandsOf(sub, name)]
  })
}

export function cliReference (): string {
  const program = buildProgram()
  const root = program.name()
  const out: string[] = [
    '```',
    ...commandsOf(program, root).map(({ name, command }) => `${name.padEnd(root.length + 12)} ${command.description()}`),
    `${`${root} --version`.padEnd(root.length + 12)} print the version`,
    '```'
  ]
  for (const { name, command } of commandsOf(program, root)) {
    const args = command.registeredArguments.map(a => a.required ? `<${a.name()}>` : `[${a.name()}]`).join(' ')
    out.push('', `#### \`${name}${args === '' ? '' : ' ' + args}\``, '', cell(command.description()))
    const options = command.options.filter(o => o.long !== '--help')
    if (options.length > 0) {
      out.push('', '| option | default | meaning |', '|---|---|---|')
      for (const o of options) out.push(`| \`${o.flags}\` | ${defaultOf(o)} | ${meaningOf(o)} |`)
    }
  }
  return out.join('\n')
}

const SECTIONS: Record<string, () => string> = { errors: errorTable, cli: cliReference }

/** README with every generated section replaced by what the code says now. */
export function generate (readme: string): string {
  let text = readme
  for (const [name, render] of Object.entries(SECTIONS)) {
    const begin = `<!-- generated:${name} (npm run docs; do not edit by hand) -->`
    const end = `<!-- /generated:${name} -->`
    const from = text.indexOf(begin)
    const to = text.indexOf(end)
    if (from === -1 || to < from) throw new Error(`README.md lacks the markers ${begin} … ${end}`)
    text = text.slice(0, from + begin.length) + '\n' + render() + '\n' + text.slice(to)
  }
  return text
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const current = readFileSync(README, 'utf8')
  const next = generate(current)
  if (process.argv.includes('--check')) {
    if (next !== current) {
      process.stderr.write('README.md is out of date with the code: run npm run docs\n')
      process.exitCode = 1
    }
  } else if (next !== current) {
    writeFileSync(README, next)
    process.stdout.write('README.md: generated sections updated\n')
  } else {
    process.stdout.write('README.md: up to date\n')
  }
}
