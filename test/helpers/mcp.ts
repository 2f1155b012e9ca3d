// `crosscast mcp` as a separate process, driven by the MCP SDK's own client
// over stdio. The process is killed by its pid at teardown, whatever happened.
import { fileURLToPath } from 'node:url'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import type { Assert } from 'brittle'

export const CLI = fileURLToPath(new URL('../../lib/cli/main.ts', import.meta.url))
/** tsx by absolute URL: a child started in another directory (a test project) must still find it. */
export const TSX = import.meta.resolve('tsx')

export interface McpProcess {
  client: Client
  pid: number
  stderr: () => string
  /** Calls a tool; resolves with the parsed JSON text and whether it was a tool error. */
  call: (name: string, args?: Record<string, unknown>) => Promise<{ isError: boolean, body: any }>
  /** Calls a tool that must succeed. */
  ok: (name: string, args?: Record<string, unknown>) => Promise<any>
  close: () => Promise<void>
}

export async function spawnMcp (t: Pick<Assert, 'teardown'>, opts: { args?: string[], env?: Record<string, string>, cwd?: string }): Promise<McpProcess> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: ['--import', TSX, CLI, 'mcp', ...(opts.args ?? [])],
    env: { ...process.env as Record<string, string>, ...opts.env },
    cwd: opts.cwd,
    stderr: 'pipe'
  })
  let stderr = ''
  transport.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  const client = new Client({ name: 'crosscast-test', version: '1.0.0' })
  let pid: number | null = null
  const kill = (): void => {
    if (pid === null) return
    try { process.kill(pid, 'SIGKILL') } catch {}
  }
  t.teardown(async () => {
    await client.close().catch(() => {})
    kill()
  })
  try {
    await client.connect(transport)
  } catch (err) {
    kill()
    throw new Error(`crosscast mcp did not start: ${(err as Error).message}\n${stderr}`)
  }
  pid = transport.pid
  const call = async (name: string, args: Record<string, unknown> = {}): Promise<{ isError: boolean, body: any }> => {
    const res = await client.callTool({ name, arguments: args }) as { isError?: boolean, content: Array<{ type: string, text: string }> }
    return { isError: res.isError === true, body: JSON.parse(res.content[0].text) }
  }
  return {
    client,
    pid: pid!,
    stderr: () => stderr,
    call,
    ok: async (name, args) => {
      const res = await call(name, args)
      if (res.isError) throw new Error(`${name} failed: ${JSON.stringify(res.body)}`)
      return res.body
    },
    close: async () => {
      await client.close()
      kill()
    }
  }
}
