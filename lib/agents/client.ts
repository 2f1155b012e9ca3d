// How a short-lived command runs an agent operation: through the local socket
// of a long-lived node of the room on this machine when there is one (no lock
// conflict, live at once), else on a node it opens itself in the pool, staying
// until a write reached a peer or a short timeout (the write is in the log
// either way and syncs later).

import { request } from 'node:http'
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { CrosscastError, ERROR_CODES, type ErrorCode } from '../errors.ts'
import { validateLabel } from '../events/validate.ts'
import { liveNodes, pickNode, readNodeFile, type NodeInfo } from './nodes.ts'
import { resolveIdentity } from './identity.ts'
import type { NodeFlags } from './node.ts'

export interface ClientFlags extends NodeFlags {
  /** How long a command that opened its own node waits for a peer to take its write. */
  syncTimeoutMs?: number
}

export interface CallResult { result: unknown, via: 'socket' | 'local', node?: NodeInfo }

const DEFAULT_SYNC_TIMEOUT_MS = 3000
const REQUEST_TIMEOUT_MS = 30_000

function env (name: string): string | undefined {
  const v = process.env[name]
  return v === undefined || v === '' ? undefined : v
}

/** A command's identity on a running node: flags, env, else the session of the agent tool's own node, else "cli". */
function identityOn (flags: ClientFlags, pick: { node: NodeInfo, mine: boolean } | null): { agent: string, sessionId: string } {
  const mine = pick !== null && pick.mine && pick.node.kind === 'mcp' ? pick.node : null
  return {
    agent: validateLabel(flags.agent ?? env('CROSSCAST_AGENT') ?? mine?.agent ?? 'cli', 'agent'),
    sessionId: validateLabel(flags.session ?? env('CROSSCAST_SESSION') ?? mine?.session_id ?? 'cli', 'session')
  }
}

export function postToSocket (socketPath: string, path: string, body: unknown, headers: Record<string, string>): Promise<{ status: number, body: unknown }> {
  const payload = JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'POST', headers: { host: 'localhost', 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers }, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) })
        } catch (err) {
          reject(err)
        }
      })
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`the node at ${socketPath} did not answer within ${REQUEST_TIMEOUT_MS} ms`)))
    req.on('error', reject)
    req.end(payload)
  })
}

/** Rebuilds the node's error (code, message, current item) on this side. */
function remoteError (body: unknown): CrosscastError {
  const b = (body ?? {}) as { code?: string, message?: string, field?: string, allowed?: string[], current?: unknown }
  const code: ErrorCode = typeof b.code === 'string' && b.code in ERROR_CODES ? b.code as ErrorCode : 'INTERNAL'
  return new CrosscastError(code, b.message ?? 'the node refused the request', { field: b.field, allowed: b.allowed, current: b.current })
}

export async function callOperation (flags: ClientFlags, name: string, args: Record<string, unknown>): Promise<CallResult> {
  // With --storage, only a node serving that directory will do.
  const nodes = flags.storage !== undefined
    ? [readNodeFile(flags.storage)].filter((n): n is NodeInfo => n !== null)
    : liveNodes(resolveIdentity({ room: flags.room, secret: flags.secret, agent: flags.agent, session: flags.session ?? 'cli' }).room)
  const pick = pickNode(nodes)
  const who = identityOn(flags, pick)
  if (pick !== null) {
    const headers: Record<string, string> = { 'x-agent-id': who.agent, 'x-session-id': who.sessionId }
    const token = env('CROSSCAST_TOKEN')
    if (token !== undefined) headers.authorization = `Bearer ${token}`
    const res = await postToSocket(pick.node.socket, `/api/agents/${name}`, args, headers)
    if (res.status !== 200) throw remoteError(res.body)
    return { result: res.body, via: 'socket', node: pick.node }
  }
  return { result: await runLocally({ ...flags, agent: who.agent, session: who.sessionId }, name, args), via: 'local' }
}

async function runLocally (flags: ClientFlags, name: string, args: Record<string, unknown>): Promise<unknown> {
  const [{ openAgentNode }, { runOperation, operation, cursorsOf }, { silentLogger }] = await Promise.all([import('./node.ts'), import('./operations.ts'), import('../logger.ts')])
  const op = operation(name)
  const node = await openAgentNode(flags, silentLogger)
  const { cc } = node
  try {
    const session = async (): Promise<Awaited<ReturnType<typeof cc.session>>> => await cc.session({ sessionId: cc.sessionId })
    // No running node keeps this session's `changes` cursor: it is kept beside the slot's data.
    const saved = name === 'changes' && args.since === undefined ? readCursor(cc.storage, cc.sessionId) : undefined
    const result = await runOperation({ cc, sessionId: cc.sessionId, agent: cc.agent, session, cursors: cursorsOf(cc) }, name, saved === undefined ? args : { ...args, since: saved })
    if (name === 'changes') saveCursor(cc.storage, cc.sessionId, (result as { cursor: string }).cursor)
    // With discovery off no peer can come: nothing to wait for.
    if (!op.readOnly && (flags.swarm !== false || flags.lan !== false)) {
      const timeoutMs = flags.syncTimeoutMs ?? syncTimeoutFromEnv() ?? DEFAULT_SYNC_TIMEOUT_MS
      if (!await reachedPeer(await session(), timeoutMs)) {
        process.stderr.write(`crosscast: written to this machine's log; no peer confirmed it within ${timeoutMs} ms. It reaches the room when a session of it is online (CROSSCAST_SYNC_TIMEOUT_MS waits longer).\n`)
      }
    }
    return result
  } finally {
    await node.close()
  }
}

function cursorFile (storage: string, sessionId: string): string {
  return join(storage, 'cursors', `${sessionId}.json`)
}

function readCursor (storage: string, sessionId: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(cursorFile(storage, sessionId), 'utf8')) as { cursor?: string }).cursor
  } catch {
    return undefined
  }
}

function saveCursor (storage: string, sessionId: string, cursor: string): void {
  mkdirSync(join(storage, 'cursors'), { recursive: true, mode: 0o700 })
  writeFileSync(cursorFile(storage, sessionId), JSON.stringify({ cursor }) + '\n', { mode: 0o600 })
}

function syncTimeoutFromEnv (): number | undefined {
  const raw = process.env.CROSSCAST_SYNC_TIMEOUT_MS
  if (raw === undefined || raw === '') return undefined
  const ms = Number(raw)
  if (!Number.isInteger(ms) || ms < 0) throw new CrosscastError('INVALID_OPTION', `CROSSCAST_SYNC_TIMEOUT_MS must be a whole number of milliseconds, got ${JSON.stringify(raw)}`, { field: 'CROSSCAST_SYNC_TIMEOUT_MS' })
  return ms
}

interface PeerState { remoteLength: number }

/** Waits until some peer holds this session's whole log, or the timeout. */
async function reachedPeer (session: { log: { core: { length: number, peers: unknown[] } } }, timeoutMs: number): Promise<boolean> {
  const core = session.log.core
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if ((core.peers as PeerState[]).some(p => p.remoteLength >= core.length)) return true
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return false
}
