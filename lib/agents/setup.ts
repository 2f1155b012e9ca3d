// `crosscast setup claude`: the project's Claude Code configuration, written
// idempotently (running it twice changes nothing) and reporting each change:
// the MCP server entry in .mcp.json and the hooks in .claude/settings.json.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { CrosscastError } from '../errors.ts'

export const HOOK_EVENTS = ['SessionStart', 'UserPromptSubmit', 'PostToolUse'] as const

export interface SetupChange { file: string, what: string, action: 'added' | 'updated' | 'unchanged' }

interface HookCommand { type: string, command: string, timeout?: number }
interface HookGroup { matcher?: string, hooks: HookCommand[] }

function readJson (path: string): Record<string, unknown> {
  if (!existsSync(path)) return {}
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object')
    return parsed as Record<string, unknown>
  } catch (err) {
    throw new CrosscastError('INVALID_FIELD', `${path} is not a JSON object (${(err as Error).message}); fix or move it, then run setup again`, { field: path })
  }
}

function writeJson (path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, JSON.stringify(value, null, 2) + '\n')
}

/** The server entry and hook command for a launcher such as "crosscast" or "node /path/dist/cli/main.js". */
export function claudeConfig (command: string, agent = 'claude'): { server: Record<string, unknown>, hook: string } {
  const words = command.trim().split(/\s+/)
  if (words[0] === '') throw new CrosscastError('INVALID_OPTION', '--command must name the crosscast executable', { field: '--command' })
  return {
    server: { type: 'stdio', command: words[0], args: [...words.slice(1), 'mcp'], env: { CROSSCAST_AGENT: agent } },
    hook: `${words.join(' ')} hook`
  }
}

export function setupClaude (root: string, opts: { command?: string, agent?: string } = {}): SetupChange[] {
  const { server, hook } = claudeConfig(opts.command ?? 'crosscast', opts.agent)
  const changes: SetupChange[] = []

  const mcpPath = join(root, '.mcp.json')
  const mcp = readJson(mcpPath)
  const servers = (mcp.mcpServers ?? {}) as Record<string, unknown>
  const before = servers.crosscast
  const same = JSON.stringify(before) === JSON.stringify(server)
  if (!same) {
    mcp.mcpServers = { ...servers, crosscast: server }
    writeJson(mcpPath, mcp)
  }
  changes.push({ file: mcpPath, what: 'mcpServers.crosscast', action: same ? 'unchanged' : before === undefined ? 'added' : 'updated' })

  const settingsPath = join(root, '.claude', 'settings.json')
  const settings = readJson(settingsPath)
  const hooks = (settings.hooks ?? {}) as Record<string, HookGroup[]>
  let dirty = false
  for (const event of HOOK_EVENTS) {
    const groups = Array.isArray(hooks[event]) ? hooks[event] : []
    const present = groups.some(g => Array.isArray(g.hooks) && g.hooks.some(h => h.command === hook))
    if (!present) {
      groups.push({ ...(event === 'PostToolUse' ? { matcher: '*' } : {}), hooks: [{ type: 'command', command: hook, timeout: 5 }] })
      hooks[event] = groups
      dirty = true
    }
    changes.push({ file: settingsPath, what: `hooks.${event}: ${hook}`, action: present ? 'unchanged' : 'added' })
  }
  if (dirty) {
    settings.hooks = hooks
    writeJson(settingsPath, settings)
  }
  return changes
}
