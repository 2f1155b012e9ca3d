// The long-lived nodes (`crosscast mcp`, `crosscast serve`) running on this
// machine for a room: each one leaves node.json in its storage slot, so a
// short-lived command finds it and talks to it over its local socket instead
// of opening storage itself. Kept free of heavy imports: the hook and CLI
// reads start with this.

import { readdirSync, readFileSync, writeFileSync, renameSync, rmSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { createHash } from 'node:crypto'
import { roomDir } from './paths.ts'

type Env = Record<string, string | undefined>

export interface NodeInfo {
  pid: number
  /** The process(es) that started the node (see owners()): a command started by the same agent tool descends from one. */
  owners: number[]
  room: string
  storage: string
  socket: string
  session_id: string
  agent: string
  writer: string
  kind: 'mcp' | 'serve'
  started_at: string
}

const NODE_FILE = 'node.json'
// sun_path holds 108 bytes on Linux, 104 on macOS.
const MAX_SOCKET_PATH = 100

/** The storage slots of a room on this machine, in order. */
export function slotDirs (room: string, env: Env = process.env): string[] {
  const dir = roomDir(room, env)
  if (!existsSync(dir)) return []
  return readdirSync(dir).filter(name => /^\d+$/.test(name)).sort((a, b) => Number(a) - Number(b)).map(name => join(dir, name))
}

export function socketPathFor (storage: string): string {
  const inside = join(storage, 'node.sock')
  if (Buffer.byteLength(inside) <= MAX_SOCKET_PATH) return inside
  return join(tmpdir(), `crosscast-${createHash('sha256').update(storage).digest('hex').slice(0, 16)}.sock`)
}

export function writeNodeFile (info: NodeInfo): void {
  const path = join(info.storage, NODE_FILE)
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify(info, null, 2) + '\n', { mode: 0o600 })
  renameSync(tmp, path)
}

export function removeNodeFile (storage: string): void {
  const path = join(storage, NODE_FILE)
  try {
    const info = JSON.parse(readFileSync(path, 'utf8')) as NodeInfo
    if (info.pid === process.pid) rmSync(path, { force: true })
  } catch {}
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export function readNodeFile (storage: string): NodeInfo | null {
  try {
    const info = JSON.parse(readFileSync(join(storage, NODE_FILE), 'utf8')) as NodeInfo
    return alive(info.pid) && existsSync(info.socket) ? info : null
  } catch {
    return null
  }
}

export function liveNodes (room: string, env: Env = process.env): NodeInfo[] {
  return slotDirs(room, env).map(readNodeFile).filter((n): n is NodeInfo => n !== null)
}

/** This process's ancestors, parent first (Linux /proc; elsewhere none). */
export function ancestors (pid = process.pid, max = 8): number[] {
  const out: number[] = []
  let current = pid
  for (let i = 0; i < max; i++) {
    let stat: string
    try {
      stat = readFileSync(`/proc/${current}/stat`, 'utf8')
    } catch {
      break
    }
    // pid (comm) state ppid ...: comm may hold spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (!Number.isInteger(ppid) || ppid <= 1) break
    out.push(ppid)
    current = ppid
  }
  return out
}

const WRAPPERS = new Set(['sh', 'bash', 'dash', 'zsh', 'npm', 'npx', 'npm exec', 'env', 'tsx'])

/**
 * The process that owns a node started now: its parent, or the grandparent when
 * the parent only wraps the command (npx, a shell), so a CLI started by the same
 * agent tool finds it.
 */
export function owners (): number[] {
  const chain = ancestors(process.pid, 2)
  if (chain.length < 2) return chain
  let comm = ''
  try { comm = readFileSync(`/proc/${chain[0]}/comm`, 'utf8').trim() } catch {}
  return WRAPPERS.has(comm) ? chain : chain.slice(0, 1)
}

/**
 * The node to talk to: the one started by the same agent tool as this
 * command (one of its owners is one of our ancestors, nearest wins),
 * else the newest. `mine` says which.
 */
export function pickNode (nodes: NodeInfo[], own: number[] = ancestors()): { node: NodeInfo, mine: boolean } | null {
  let best: { node: NodeInfo, depth: number } | null = null
  for (const node of nodes) {
    for (const pid of node.owners) {
      const depth = own.indexOf(pid)
      if (depth !== -1 && (best === null || depth < best.depth)) best = { node, depth }
    }
  }
  if (best !== null) return { node: best.node, mine: true }
  if (nodes.length === 0) return null
  const newest = [...nodes].sort((a, b) => b.started_at.localeCompare(a.started_at))[0]
  return { node: newest, mine: false }
}
