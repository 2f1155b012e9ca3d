// Across NATs (issue 12 §6): the figures of test/net-nat-netns.test.ts, the one
// harness that builds the simulated internet (network namespaces, a public DHT on
// several addresses, two homes behind their own NAT routers, two sessions in
// each), run as a child process once per run and read from the lines it prints:
// time to the first event across the NATs and to convergence, for the direct path
// (home routers, hole-punched) and the relayed paths (symmetric NATs, through
// `crosscast bootstrap --relay`, a public `relay: true` node, or a room peer whose
// relay key the homes learn from its presence). Needs root, iproute2 and
// iptables; elsewhere it says why and prints nothing.
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { BenchContext, FigureSet } from './lib/contract.ts'
import { summarize } from './lib/stats.ts'

export const system = 'crosscast'

const TEST_FILE = fileURLToPath(new URL('../test/net-nat-netns.test.ts', import.meta.url))
const RUN_LIMIT_MS = 5 * 60_000
const PATH_LINE = /^\s*# (direct path|relayed path \((\w+)\)): first event across the NATs (-?\d+) ms, converged (-?\d+) ms/

interface PathTimes { firstCrossMs: number[], convergeMs: number[] }

export async function run (ctx: BenchContext): Promise<FigureSet> {
  const paths = new Map<string, PathTimes>()
  for (let i = 0; i < ctx.runs; i++) {
    const out = await runHarness()
    const skipped = /^\s*# SKIP: (.*)$/m.exec(out)
    if (skipped !== null) {
      ctx.log(`nat: not measured: ${skipped[1]}`)
      return {}
    }
    const failed = out.split('\n').find(line => line.startsWith('not ok'))
    if (failed !== undefined) throw new Error(`the NAT harness failed: ${failed}\n${out.slice(-2000)}`)
    for (const line of out.split('\n')) {
      const m = PATH_LINE.exec(line)
      if (m === null) continue
      const id = m[2] === undefined ? 'direct' : `relayed_${m[2]}`
      let times = paths.get(id)
      if (times === undefined) paths.set(id, times = { firstCrossMs: [], convergeMs: [] })
      times.firstCrossMs.push(Number(m[3]))
      times.convergeMs.push(Number(m[4]))
      ctx.log(`nat: run ${i + 1}/${ctx.runs}: ${id}: first event across ${m[3]} ms, converged ${m[4]} ms`)
    }
  }
  const figures: FigureSet = {}
  for (const [id, times] of paths) {
    const how = id === 'direct' ? 'home routers, hole-punched' : `symmetric NATs, relayed through ${RELAY_NAMES[id] ?? id}`
    figures[`nat.${id}_first_event_ms`] = summarize(times.firstCrossMs, 'ms', true, `4 sessions in 2 homes (${how}), from every session open to the first event across the NATs`)
    figures[`nat.${id}_converge_ms`] = summarize(times.convergeMs, 'ms', true, `until all 4 sessions hold all 40 events (${how})`)
  }
  return figures
}

const RELAY_NAMES: Record<string, string> = {
  relayed_bootstrap: '`crosscast bootstrap --relay`',
  relayed_node: 'a public node with relay: true',
  relayed_announced: 'a room peer that announces its relay (it also carries the events itself)'
}

/** The harness's TAP output; killed by its pid if it runs past RUN_LIMIT_MS. */
async function runHarness (): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', TEST_FILE], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_LIMIT_MS)
  await new Promise<void>(resolve => child.once('exit', () => resolve()))
  clearTimeout(timer)
  return out
}
