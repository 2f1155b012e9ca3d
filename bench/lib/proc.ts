// Parent side of a benchmark peer: a TypeScript script forked as its own OS
// process (so peers never share an event loop), driven by request/reply
// messages over the Node IPC channel. stdout stays free for humans.
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface PeerMessage { id?: number, event?: string, ok?: boolean, result?: unknown, error?: string, [key: string]: unknown }

export interface Peer {
  readonly pid: number
  readonly name: string
  /** Sends a command and resolves with the peer's result (rejects on its error or on timeout). */
  request<T = unknown> (cmd: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T>
  /** Resolves with the next unsolicited event named `event` for which `match` holds. */
  nextEvent<T = PeerMessage> (event: string, timeoutMs?: number, match?: (msg: T) => boolean): Promise<T>
  /** Calls `fn` for every unsolicited event named `event`; returns an unsubscribe. */
  onEvent<T = PeerMessage> (event: string, fn: (msg: T) => void): () => void
  kill (): Promise<void>
}

const live = new Map<ChildProcess, string>()

function removeDir (dir: string): void {
  try { rmSync(dir, { recursive: true, force: true }) } catch {}
}

function killSync (): void {
  for (const [child, dir] of live) {
    try { child.kill('SIGKILL') } catch {}
    removeDir(dir)
  }
  live.clear()
}
process.once('exit', killSync)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { killSync(); process.exit(130) })
}

export async function killAllPeers (): Promise<void> {
  killSync()
}

export interface SpawnOptions {
  args?: string[]
  env?: Record<string, string>
  /** Extra node flags, e.g. ['--expose-gc'] for memory figures. */
  nodeFlags?: string[]
  readyTimeoutMs?: number
}

/**
 * Forks `script` (a path or file URL of a .ts file that calls servePeer) and
 * waits for its `ready` event. The child is SIGKILLed by kill(), by
 * killAllPeers(), and when this process exits; the child also exits when the
 * IPC channel closes, so an orphan cannot outlive its parent.
 */
export async function spawnPeer (script: string | URL, name: string, opts: SpawnOptions = {}): Promise<Peer> {
  const path = script instanceof URL || script.startsWith('file:') ? fileURLToPath(script) : script
  // the parent owns the peer's storage dir, so it is removed even when the peer is SIGKILLed
  const dir = mkdtempSync(join(tmpdir(), `crosscast-bench-${name}-`))
  const child = fork(path, opts.args ?? [], {
    execArgv: ['--import', 'tsx', ...(opts.nodeFlags ?? [])],
    env: { ...process.env, ...(opts.env ?? {}), BENCH_PEER_DIR: dir },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced'
  })
  live.set(child, dir)
  let nextId = 1
  const pending = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>()
  const listeners = new Map<string, Set<(msg: PeerMessage) => void>>()
  let exited: Error | null = null

  child.on('message', (raw) => {
    const msg = raw as PeerMessage
    if (typeof msg.id === 'number' && pending.has(msg.id)) {
      const p = pending.get(msg.id)!
      pending.delete(msg.id)
      if (msg.ok) p.resolve(msg.result)
      else p.reject(new Error(`${name}: ${msg.error ?? 'failed'}`))
      return
    }
    if (typeof msg.event === 'string') {
      for (const fn of listeners.get(msg.event) ?? []) fn(msg)
    }
  })
  child.on('exit', (code, signal) => {
    live.delete(child)
    removeDir(dir)
    exited = new Error(`${name} exited (code ${code}, signal ${signal})`)
    for (const p of pending.values()) p.reject(exited)
    pending.clear()
    for (const fn of listeners.get('__exit') ?? []) fn({ event: '__exit' })
  })

  const onEvent = <T>(event: string, fn: (msg: T) => void): (() => void) => {
    let set = listeners.get(event)
    if (!set) listeners.set(event, (set = new Set()))
    const wrapped = fn as (msg: PeerMessage) => void
    set.add(wrapped)
    return () => { set!.delete(wrapped) }
  }

  const nextEvent = <T>(event: string, timeoutMs = 60_000, match?: (msg: T) => boolean): Promise<T> => {
    return new Promise<T>((resolve, reject) => {
      if (exited) { reject(exited); return }
      const timer = setTimeout(() => { off(); offExit(); reject(new Error(`${name}: no '${event}' within ${timeoutMs} ms`)) }, timeoutMs)
      const off = onEvent<T>(event, (msg) => {
        if (match && !match(msg)) return
        clearTimeout(timer); off(); offExit(); resolve(msg)
      })
      const offExit = onEvent('__exit', () => { clearTimeout(timer); off(); offExit(); reject(exited ?? new Error(`${name} exited`)) })
    })
  }

  const request = <T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<T> => {
    return new Promise<T>((resolve, reject) => {
      if (exited) { reject(exited); return }
      const id = nextId++
      const timer = setTimeout(() => { pending.delete(id); reject(new Error(`${name}: '${cmd}' timed out after ${timeoutMs} ms`)) }, timeoutMs)
      pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v as T) },
        reject: (e) => { clearTimeout(timer); reject(e) }
      })
      child.send({ id, cmd, ...args })
    })
  }

  /** Asks the peer to close its resources and exit; SIGKILL if it has not within 3 s. */
  const kill = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    const graceful = request('exit', {}, 3000).catch(() => {})
    const exitedInTime = await Promise.race([gone.then(() => true), graceful.then(() => new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 3000)))])
    if (!exitedInTime) {
      child.kill('SIGKILL')
      await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 5000))])
    }
    live.delete(child)
    removeDir(dir)
  }

  try {
    await nextEvent('ready', opts.readyTimeoutMs ?? 30_000)
  } catch (err) {
    await kill()
    throw err
  }
  return { pid: child.pid!, name, request, nextEvent, onEvent, kill }
}
