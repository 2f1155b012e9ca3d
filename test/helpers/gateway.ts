// Test helpers for the gateway: a node plus gateway in a temp dir, real HTTP
// via fetch, real WebSocket clients via ws, a `crosscast serve` child process,
// and snapshots of the database to prove a failed request wrote nothing.

import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createServer, type AddressInfo } from 'node:net'
import WebSocket from 'ws'
import type { Assert } from 'brittle'
import { Crosscast } from '../../lib/index.ts'
import { createGateway, type Gateway, type GatewayOptions } from '../../lib/gateway/index.ts'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export interface GatewayNode { cc: Crosscast, gw: Gateway, url: string, storage: string }

export async function startGateway (t: Pick<Assert, 'teardown' | 'tmp'>, opts: GatewayOptions = {}, room = 'gateway-test'): Promise<GatewayNode> {
  const storage = await t.tmp()
  const cc = await Crosscast.open({ storage, room, agent: 'gateway', sessionId: 'gateway', swarm: false, lan: false })
  t.teardown(() => cc.close(), { order: 2 })
  const gw = await createGateway(cc, { port: 0, ...opts })
  t.teardown(() => gw.close(), { order: 1 })
  return { cc, gw, url: gw.url, storage }
}

export const WRITER = { 'x-agent-id': 'claude-1', 'x-session-id': 'sess-1' }

export interface JsonResponse { status: number, body: any, headers: Headers }

export async function request (url: string, method: string, path: string, body?: unknown, headers: Record<string, string> = WRITER): Promise<JsonResponse> {
  const init: RequestInit = { method, headers: { ...headers } }
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body)
    ;(init.headers as Record<string, string>)['content-type'] ??= 'application/json'
  }
  const res = await fetch(url + path, init)
  const text = await res.text()
  let parsed: unknown = text
  try { parsed = JSON.parse(text) } catch {}
  return { status: res.status, body: parsed, headers: res.headers }
}

export const post = (url: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<JsonResponse> => request(url, 'POST', path, body, headers)
export const get = (url: string, path: string, headers: Record<string, string> = {}): Promise<JsonResponse> => request(url, 'GET', path, undefined, headers)

/** Everything a failed request could have touched: the audit trail and every state table. */
export function dbSnapshot (cc: Crosscast): string {
  const tables = ['broadcast_events', 'features', 'tracks', 'spikes', 'links', 'comments', 'conflicts']
  const out: Record<string, unknown> = {}
  for (const table of tables) out[table] = cc.db.prepare(`SELECT * FROM ${table} ORDER BY rowid`).all()
  return JSON.stringify(out)
}

export function eventCount (cc: Crosscast): number {
  return (cc.db.prepare('SELECT count(*) AS n FROM broadcast_events').get() as { n: number }).n
}

/** A WebSocket client that queues every frame, so a test can wait for the one it expects. */
export class WsClient {
  readonly socket: WebSocket
  readonly frames: any[] = []
  closed: { code: number, reason: string } | null = null
  private waiters: Array<() => void> = []

  constructor (url: string, opts: WebSocket.ClientOptions = {}) {
    this.socket = new WebSocket(url, opts)
    this.socket.on('message', (data) => {
      const text = data.toString()
      let frame: unknown = text
      try { frame = JSON.parse(text) } catch {}
      this.frames.push(frame)
      this.wake()
    })
    this.socket.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() }
      this.wake()
    })
    this.socket.on('error', () => {})
  }

  static async open (baseUrl: string, query = '', opts: WebSocket.ClientOptions = {}): Promise<WsClient> {
    const client = new WsClient(baseUrl.replace(/^http/, 'ws') + '/ws/broadcasts' + query, opts)
    await new Promise<void>((resolve, reject) => {
      client.socket.once('open', () => resolve())
      client.socket.once('unexpected-response', (req, res) => {
        req.destroy()
        reject(new Error(`upgrade refused: ${res.statusCode}`))
      })
      client.socket.once('error', reject)
    })
    return client
  }

  private wake (): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }

  send (data: unknown): void {
    this.socket.send(typeof data === 'string' ? data : JSON.stringify(data))
  }

  events (): any[] {
    return this.frames.filter(f => f?.type === 'broadcast_event')
  }

  /** Resolves with the first frame (from `from` on) that matches, or rejects after `ms`. */
  async waitFor (match: (frame: any) => boolean, ms = 5000, from = 0): Promise<any> {
    const deadline = Date.now() + ms
    for (;;) {
      const found = this.frames.slice(from).find(match)
      if (found !== undefined) return found
      if (this.closed !== null) throw new Error(`socket closed (${this.closed.code} ${this.closed.reason}) before the expected frame`)
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('timed out waiting for a frame')
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  async waitForEvents (n: number, ms = 5000): Promise<any[]> {
    await this.waitFor(() => this.events().length >= n, ms)
    return this.events()
  }

  async waitClosed (ms = 5000): Promise<{ code: number, reason: string }> {
    const deadline = Date.now() + ms
    while (this.closed === null) {
      if (Date.now() > deadline) throw new Error('timed out waiting for close')
      await new Promise<void>(resolve => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()))
        this.waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
    return this.closed
  }

  close (): void {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.terminate()
  }
}

export async function openWs (t: Pick<Assert, 'teardown'>, baseUrl: string, query = '', opts: WebSocket.ClientOptions = {}): Promise<WsClient> {
  const client = await WsClient.open(baseUrl, query, opts)
  t.teardown(() => client.close())
  return client
}

export async function until (check: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

export interface ServeProcess { child: ChildProcess, url: string, lines: any[], exited: Promise<number | null> }

/** Runs `crosscast serve` as a child process (killed in teardown) and waits for its URL. */
export async function spawnServe (t: Pick<Assert, 'teardown'>, args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'lib/cli/main.ts', 'serve', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const lines: any[] = []
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`crosscast serve did not start in 20 s: ${stderr}`)), 20_000)
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: any = line
      try { entry = JSON.parse(line) } catch {}
      lines.push(entry)
      if (entry?.msg === 'crosscast serve ready') { clearTimeout(timer); resolve(entry.url) }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`crosscast serve exited with ${code}: ${stderr}`)) })
  })
  return { child, url, lines, exited }
}

/** A port nothing listens on right now, for a child process that must be told its port up front. */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}
