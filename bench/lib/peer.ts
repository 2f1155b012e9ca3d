// Child side of a benchmark peer (see proc.ts): answers commands from the
// parent over IPC and can push unsolicited events.

import { mkdtempSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Storage dir for this peer: made and removed by the parent (spawnPeer), so a killed peer leaves nothing behind. */
export function peerDir (): string {
  return process.env.BENCH_PEER_DIR ?? mkdtempSync(join(tmpdir(), 'crosscast-bench-peer-'))
}

export type Handler = (args: Record<string, unknown>) => unknown | Promise<unknown>

export function emit (event: string, fields: Record<string, unknown> = {}): void {
  if (process.send && process.connected) process.send({ ...fields, event })
}

/**
 * Serves `handlers` until the parent asks for `exit` or goes away. Handlers
 * run as messages arrive (not queued), so a long command can be observed by
 * events while it runs.
 */
export function servePeer (handlers: Record<string, Handler>, onExit?: () => Promise<void>): void {
  if (!process.send) throw new Error('servePeer: not started through spawnPeer (no IPC channel)')
  let closing = false
  const shutdown = async (code: number): Promise<void> => {
    if (closing) return
    closing = true
    const force = setTimeout(() => process.exit(code), 3000)
    try { if (onExit) await onExit() } catch {}
    clearTimeout(force)
    process.exit(code)
  }
  process.on('disconnect', () => { void shutdown(0) })
  process.on('message', async (raw) => {
    const msg = raw as { id: number, cmd: string, [key: string]: unknown }
    if (msg.cmd === 'exit') {
      process.send!({ id: msg.id, ok: true, result: null })
      void shutdown(0)
      return
    }
    const handler = handlers[msg.cmd]
    try {
      if (!handler) throw new Error(`unknown command ${msg.cmd}`)
      const result = await handler(msg)
      if (process.connected) process.send!({ id: msg.id, ok: true, result: result ?? null })
    } catch (err) {
      if (process.connected) process.send!({ id: msg.id, ok: false, error: (err as Error).stack ?? String(err) })
    }
  })
  process.on('uncaughtException', (err) => {
    // a peer's stderr is the harness's stderr: the only place a crash can be seen
    console.error(`bench peer ${process.pid} crashed:`, err)
    emit('fatal', { error: err.stack ?? String(err) })
    void shutdown(1)
  })
  emit('ready', { pid: process.pid })
}

/**
 * `profileStart` / `profileStop {path}`: a CPU profile of one phase of a peer
 * (e.g. the fan-out alone, not the connection storm before it), sampled every 100 µs.
 */
export function profilerHandlers (): Record<string, Handler> {
  let session: Session | null = null
  return {
    async profileStart () {
      session = new Session()
      session.connect()
      await session.post('Profiler.enable')
      await session.post('Profiler.setSamplingInterval', { interval: 100 })
      await session.post('Profiler.start')
      return null
    },
    async profileStop (args) {
      if (session === null) throw new Error('profileStart first')
      const { profile } = await session.post('Profiler.stop')
      writeFileSync(String(args.path), JSON.stringify(profile))
      session.disconnect()
      session = null
      return null
    }
  }
}

export interface PostSpan { received: bigint, stored: bigint }

/** A fan-out server's timeline per post (see FanoutTarget.spans): call received() as a post arrives and stored() once its event is stored; the `spans` handler hands them over. */
export function peerSpans (): { received (): void, stored (): void, handlers: Record<string, () => PostSpan[]> } {
  let spans: PostSpan[] = []
  let received: bigint | null = null
  return {
    received: () => { received ??= process.hrtime.bigint() },
    stored: () => {
      if (received === null) return
      spans.push({ received, stored: process.hrtime.bigint() })
      received = null
    },
    handlers: { spans: () => { const out = spans; spans = []; return out } }
  }
}
