// Spawns test/fixtures/peer.ts as a separate OS process and talks to it over
// JSON lines. Every child is killed at teardown, whatever happened.
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Assert } from 'brittle'
import type { CrosscastOptions } from '../../lib/index.ts'

const PEER = fileURLToPath(new URL('../fixtures/peer.ts', import.meta.url))

export interface ChildPeer {
  readonly process: ChildProcess
  readonly writerKey: string
  call<T = unknown> (cmd: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T>
  kill (signal?: NodeJS.Signals): Promise<void>
}

export interface SpawnPeerOptions {
  /** argv run before node, e.g. `['ip', 'netns', 'exec', ns]` to start the peer in a network namespace. */
  prefix?: string[]
  /** Another fixture speaking the same protocol (default fixtures/peer.ts), and arguments after the options. */
  script?: string
  args?: string[]
}

export async function spawnPeer (t: Pick<Assert, 'teardown'>, options: CrosscastOptions, timeoutMs = 30_000, launch: SpawnPeerOptions = {}): Promise<ChildPeer> {
  const argv = [...(launch.prefix ?? []), process.execPath, '--import', 'tsx', launch.script ?? PEER, JSON.stringify(options), ...(launch.args ?? [])]
  const child = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] })
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const pending = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>()
  let nextId = 1
  let buffered = ''
  let onReady: (key: string) => void = () => {}
  let timer: NodeJS.Timeout | undefined
  const ready = new Promise<string>((resolve, reject) => {
    onReady = resolve
    timer = setTimeout(() => reject(new Error(`peer did not start within ${timeoutMs} ms`)), timeoutMs)
    exited.then(() => reject(new Error('peer exited before it was ready')))
  }).finally(() => clearTimeout(timer))
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    for (const line of lines) {
      const msg = JSON.parse(line)
      if (msg.event === 'ready') onReady(msg.writerKey)
      else {
        const p = pending.get(msg.id)
        pending.delete(msg.id)
        if (msg.ok === true) p?.resolve(msg.result)
        else p?.reject(new Error(msg.error))
      }
    }
  })
  exited.then(() => { for (const p of pending.values()) p.reject(new Error('peer exited')) })
  const writerKey = await ready
  return {
    process: child,
    writerKey,
    call: <T>(cmd: string, args: Record<string, unknown> = {}, callTimeoutMs = 120_000) => new Promise<T>((resolve, reject) => {
      const id = nextId++
      const timer = setTimeout(() => { pending.delete(id); reject(new Error(`${cmd} timed out after ${callTimeoutMs} ms`)) }, callTimeoutMs)
      pending.set(id, { resolve: (v) => { clearTimeout(timer); resolve(v as T) }, reject: (e) => { clearTimeout(timer); reject(e) } })
      child.stdin!.write(JSON.stringify({ id, cmd, ...args }) + '\n')
    }),
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill(signal)
      await exited
    }
  }
}
