// A node in its own OS process for bench/writers.ts: builds a storage holding
// many ended session logs, reopens one (timed, with its RSS), serves it over
// TCP + Noise on 127.0.0.1, or joins as a fresh peer and times how long until it
// holds every event.
import { Crosscast } from '../../lib/index.ts'
import { servePeer } from '../lib/peer.ts'
import { PeerLinks } from '../lib/links.ts'
import { rssSelf, settleMemory } from '../lib/stats.ts'

const EVENTS_PER_WRITER = 3
const BUILD_PARALLEL = 32
let cc: Crosscast | null = null
let cpuFrom: NodeJS.CpuUsage | null = null
const links = new PeerLinks(node)

function node (): Crosscast {
  if (cc === null) throw new Error('open first')
  return cc
}

function count (): number {
  return (node().db.prepare('SELECT count(*) AS n FROM broadcast_events').get() as { n: number }).n
}

async function open (storage: string, idleMs: number): Promise<Crosscast> {
  return await Crosscast.open({ storage, room: 'bench-writers', sessionId: 'node', agent: 'bench', swarm: false, lan: false, writerIdleMs: idleMs })
}

servePeer({
  /** `writers` sessions that each wrote EVENTS_PER_WRITER events in one save and ended their log, as gateway sessions do. */
  async build (args) {
    const c = await open(String(args.storage), 10_000)
    const writers = Number(args.writers)
    for (let i = 0; i < writers; i += BUILD_PARALLEL) {
      await Promise.all(Array.from({ length: Math.min(BUILD_PARALLEL, writers - i) }, async (_, j) => {
        const sessionId = `w-${i + j}`
        const session = await c.session({ sessionId })
        await session.append(Array.from({ length: EVENTS_PER_WRITER }, (_, k) => ({ event_type: 'comment_added' as const, resource_id: `feat-${(i + j).toString(16).padStart(8, '0')}`, payload: { comment_text: `comment ${k} of ${sessionId}`, author: 'bench' } })))
        await c.closeSession(sessionId, { end: true })
      }))
    }
    await c.close()
    return { events: writers * EVENTS_PER_WRITER }
  },
  async rss () {
    await settleMemory()
    return rssSelf()
  },
  async open (args) {
    const started = process.hrtime.bigint()
    cc = await open(String(args.storage), Number(args.idleMs))
    const ms = Number(process.hrtime.bigint() - started) / 1e6
    return { ms, open: cc.status().logs.open, events: count() }
  },
  /** Starts counting this process's CPU time (user + system) from now. */
  listen: () => {
    cpuFrom = process.cpuUsage()
    return links.listen()
  },
  /** CPU time since listen, in ms: what serving cost this side. */
  cpu () {
    if (cpuFrom === null) throw new Error('listen first')
    const used = process.cpuUsage(cpuFrom)
    return (used.user + used.system) / 1000
  },
  /** Connects to a holder and resolves once every expected event is projected here. */
  async converge (args) {
    const expected = Number(args.events)
    const started = process.hrtime.bigint()
    const cpu = process.cpuUsage()
    links.connect(Number(args.port))
    const deadline = Date.now() + Number(args.timeoutMs ?? 600_000)
    while (count() < expected) {
      if (Date.now() > deadline) throw new Error(`holds ${count()} of ${expected} events after ${args.timeoutMs} ms`)
      await new Promise(resolve => setTimeout(resolve, 5))
    }
    const used = process.cpuUsage(cpu)
    return { ms: Number(process.hrtime.bigint() - started) / 1e6, cpuMs: (used.user + used.system) / 1000, open: node().status().logs.open }
  },
  logs: () => node().status().logs,
  /** Closes the node, however long that takes: killed mid-close, it would leave every log recorded as open for the next sample. */
  async close () {
    links.close()
    await cc?.close()
    cc = null
    return true
  }
}, async () => {
  links.close()
  await cc?.close()
})
