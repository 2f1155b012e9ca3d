// What agent sessions see, on the built CLI (`node dist/cli/main.js`, run
// `npm run build` first): two `crosscast mcp` processes of one project on a
// loopback testnet, driven by the MCP SDK's client, and CLI commands beside a
// running node (through its socket).
//
//   agents.mcp_create_to_changes_p50_ms / _p99_ms   create_item on A until a `changes` call
//        on B returns it (B polls every POLL_MS; the figure includes up to that much wait)
//   agents.cli_read_ms       `crosscast feature list --json` wall time, process start to exit
//   agents.hook_ms           `crosscast hook` wall time (nothing changed)
//   agents.node_start_ms     `node -e 0` on the same machine: the floor under the two above

import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import createHyperTestnet from 'hyperdht/testnet'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import type { BenchContext, FigureSet } from './lib/contract.ts'
import { percentile, summarize } from './lib/stats.ts'

export const system = 'crosscast (agents)'

const exec = promisify(execFile)
const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url))
const POLL_MS = 5
const FIRST_CONTACT_MS = 60_000
const ONE_ITEM_MS = 10_000

interface Session { client: Client, pid: number | undefined, call: (name: string, args: Record<string, unknown>) => Promise<any> }

async function startMcp (args: string[], env: Record<string, string>): Promise<Session> {
  const transport = new StdioClientTransport({ command: process.execPath, args: [MAIN, 'mcp', ...args], env: { ...process.env as Record<string, string>, ...env }, stderr: 'ignore' })
  const client = new Client({ name: 'crosscast-bench', version: '1.0.0' })
  await client.connect(transport)
  return {
    client,
    pid: transport.pid ?? undefined,
    call: async (name, a) => {
      const res = await client.callTool({ name, arguments: a }) as { isError?: boolean, content: Array<{ text: string }> }
      const body = JSON.parse(res.content[0].text)
      if (res.isError === true) throw new Error(`${name}: ${body.code} ${body.message}`)
      return body
    }
  }
}

async function stop (s: Session): Promise<void> {
  await s.client.close().catch(() => {})
  if (s.pid !== undefined) { try { process.kill(s.pid, 'SIGKILL') } catch {} }
}

/** ms from create_item on A until B's changes returns it. */
async function propagation (a: Session, b: Session, title: string, deadlineMs: number): Promise<number> {
  const started = process.hrtime.bigint()
  const { id } = await a.call('create_item', { kind: 'feature', title })
  const limit = Date.now() + deadlineMs
  while (Date.now() < limit) {
    const res = await b.call('changes', {})
    if (res.events.some((e: { resource_id: string }) => e.resource_id === id)) return Number(process.hrtime.bigint() - started) / 1e6
    await new Promise(resolve => setTimeout(resolve, POLL_MS))
  }
  throw new Error(`${title} did not reach B within ${deadlineMs} ms`)
}

/** Wall time of one command, stdin given (and closed) as an agent tool does. */
async function wall (args: string[], env: Record<string, string>, input = ''): Promise<number> {
  const started = process.hrtime.bigint()
  const child = exec(process.execPath, args, { env: { ...process.env, ...env }, timeout: 60_000 })
  child.child.stdin?.end(input)
  await child
  return Number(process.hrtime.bigint() - started) / 1e6
}

export async function run (ctx: BenchContext): Promise<FigureSet> {
  if (!existsSync(MAIN)) throw new Error('dist/cli/main.js is missing: run `npm run build` first')
  const samplesPerRun = ctx.quick ? 10 : 40
  const home = mkdtempSync(join(tmpdir(), 'crosscast-bench-agents-'))
  const testnet = await createHyperTestnet(3, { host: '127.0.0.1' })
  const env = { CROSSCAST_HOME: home }
  const net = ['--room', 'bench-agents', '--no-lan', ...testnet.bootstrap.flatMap(b => ['--bootstrap', `${b.host}:${b.port}`])]
  const sessions: Session[] = []
  try {
    const a = await startMcp([...net, '--agent', 'a', '--session', 'bench-a'], env)
    sessions.push(a)
    const b = await startMcp([...net, '--agent', 'b', '--session', 'bench-b'], env)
    sessions.push(b)
    ctx.log('agents: waiting for the two mcp sessions to find each other')
    await propagation(a, b, 'first contact', FIRST_CONTACT_MS)

    const p50: number[] = []
    const p99: number[] = []
    const reads: number[] = []
    const hooks: number[] = []
    const floor: number[] = []
    for (let r = 0; r < ctx.runs; r++) {
      const samples: number[] = []
      for (let i = 0; i < samplesPerRun; i++) samples.push(await propagation(a, b, `run ${r} item ${i}`, ONE_ITEM_MS))
      p50.push(percentile(samples, 50))
      p99.push(percentile(samples, 99))
      // The CLI beside the running nodes: it talks to one over its socket.
      reads.push(await wall([MAIN, 'feature', 'list', '--json', '--room', 'bench-agents'], env))
      const hookInput = JSON.stringify({ session_id: 'bench-hook', hook_event_name: 'UserPromptSubmit', cwd: process.cwd() })
      await wall([MAIN, 'hook', '--room', 'bench-agents'], env, hookInput)
      hooks.push(await wall([MAIN, 'hook', '--room', 'bench-agents'], env, hookInput))
      floor.push(await wall(['-e', '0'], env))
      ctx.log(`agents: run ${r + 1}/${ctx.runs}: create->changes p50 ${p50[r].toFixed(1)} ms p99 ${p99[r].toFixed(1)} ms; cli read ${reads[r].toFixed(0)} ms; hook ${hooks[r].toFixed(0)} ms`)
    }
    const per = `${samplesPerRun} items per run, B polling changes every ${POLL_MS} ms; two mcp processes on a loopback testnet`
    return {
      'agents.mcp_create_to_changes_p50_ms': summarize(p50, 'ms', true, per),
      'agents.mcp_create_to_changes_p99_ms': summarize(p99, 'ms', true, per),
      'agents.cli_read_ms': summarize(reads, 'ms', true, '`node dist/cli/main.js feature list --json` beside a running mcp node (via its socket), process start to exit; target < 300 ms'),
      'agents.hook_ms': summarize(hooks, 'ms', true, '`node dist/cli/main.js hook` with nothing new, Claude Code\'s hook JSON on stdin, process start to exit; target < 200 ms'),
      'agents.node_start_ms': summarize(floor, 'ms', true, '`node -e 0`: the process start every CLI figure includes')
    }
  } finally {
    for (const s of sessions) await stop(s)
    await testnet.destroy()
    rmSync(home, { recursive: true, force: true })
  }
}
