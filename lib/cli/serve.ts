// `crosscast serve`: one node plus its gateway, logging through pino (pretty on
// a terminal, JSON lines otherwise), stopped cleanly by SIGINT or SIGTERM.

import { Command, Option } from 'commander'
import type pino from 'pino'
import { CrosscastError } from '../errors.ts'
import { DEFAULT_HOST, DEFAULT_PORT, DEFAULT_MAX_SESSIONS } from '../gateway/defaults.ts'
import { colorsFor } from './output.ts'
import { showCatchUp } from './catch-up.ts'

interface ServeFlags {
  port: string
  host: string
  storage?: string
  room?: string
  secret?: string
  /** Serve the HTTP API on a unix socket too (true: node.sock in the storage directory). */
  socket?: string | boolean
  /** Take a storage slot in the room's pool (as agent sessions do) instead of --storage. */
  pool?: boolean
  maxSessions: string
  bootstrap?: string[]
  relay?: boolean
  relayThrough?: string[]
  swarm: boolean
  lan: boolean
  token?: string
  cors?: boolean
  logLevel: string
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']

function parsePort (value: string): number {
  const port = Number(value)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new CrosscastError('INVALID_OPTION', `--port must be an integer from 0 to 65535, got ${value}`, { field: '--port' })
  }
  return port
}

function parseMaxSessions (value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new CrosscastError('INVALID_OPTION', `--max-sessions must be a positive integer, got ${value}`, { field: '--max-sessions' })
  return n
}

async function makeLogger (level: string): Promise<pino.Logger> {
  const { default: pino } = await import('pino')
  if (process.stdout.isTTY === true) {
    return pino({ level, transport: { target: 'pino-pretty', options: { colorize: colorsFor(process.stdout).isColorSupported, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } })
  }
  return pino({ level })
}

export async function serve (flags: ServeFlags): Promise<void> {
  const port = parsePort(flags.port)
  const token = flags.token ?? (process.env.CROSSCAST_TOKEN === '' ? undefined : process.env.CROSSCAST_TOKEN)
  const [{ Crosscast }, { createGateway, checkBindSecurity }, nodes] = await Promise.all([import('../index.ts'), import('../gateway/index.ts'), import('../agents/nodes.ts')])
  // Refuse before opening anything: a refused bind must not leave a node behind.
  checkBindSecurity(flags.host, token)
  if (flags.pool === true && flags.storage !== undefined) throw new CrosscastError('INVALID_OPTION', '--pool takes a slot of the room\'s storage pool: leave out --storage', { field: '--pool' })
  const logger = await makeLogger(flags.logLevel)
  const node = { agent: 'gateway', sessionId: 'gateway', swarm: flags.swarm, bootstrap: flags.bootstrap, relay: flags.relay === true, relayThrough: flags.relayThrough, lan: flags.lan, logger }
  let room = flags.room ?? 'default'
  let cc: Awaited<ReturnType<typeof Crosscast.open>>
  if (flags.pool === true) {
    const [{ resolveIdentity }, { openInPool }] = await Promise.all([import('../agents/identity.ts'), import('../agents/pool.ts')])
    const identity = resolveIdentity({ room: flags.room, secret: flags.secret, agent: 'gateway', session: 'gateway' })
    room = identity.room
    cc = await openInPool({ ...node, room, secret: identity.secret })
  } else {
    cc = await Crosscast.open({ ...node, storage: flags.storage ?? '.crosscast', room, secret: flags.secret })
  }
  const socketPath = flags.socket === true || (flags.pool === true && flags.socket === undefined) ? nodes.socketPathFor(cc.storage) : typeof flags.socket === 'string' ? flags.socket : undefined
  let gateway: Awaited<ReturnType<typeof createGateway>>
  try {
    gateway = await createGateway(cc, { host: flags.host, port, token, cors: flags.cors === true, maxSessions: parseMaxSessions(flags.maxSessions), socketPath, logger: logger.child({ component: 'gateway' }) })
  } catch (err) {
    await cc.close()
    throw err
  }
  if (socketPath !== undefined) {
    nodes.writeNodeFile({ pid: process.pid, owners: nodes.owners(), room, storage: cc.storage, socket: socketPath, session_id: cc.sessionId, agent: cc.agent, writer: cc.writerKey, kind: 'serve', started_at: new Date().toISOString() })
  }
  const stopCatchUp = showCatchUp(cc)
  logger.info({ url: gateway.url, socket: socketPath, demo: `${gateway.url}/static/broadcast-demo.html`, storage: cc.storage, room, swarm: flags.swarm, lan: flags.lan }, 'crosscast serve ready')

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down')
    const forced = setTimeout(() => {
      logger.error('shutdown took over 10 s; exiting anyway')
      process.exit(1)
    }, 10_000)
    forced.unref()
    stopCatchUp()
    nodes.removeNodeFile(cc.storage)
    gateway.close()
      .then(async () => await cc.close())
      .then(() => {
        logger.info('stopped')
        logger.flush()
        process.exit(0)
      }, (err: unknown) => {
        logger.error({ err }, 'shutdown failed')
        logger.flush()
        process.exit(1)
      })
  }
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))
}

export function registerServe (program: Command): void {
  program.command('serve')
    .description('run a node plus the HTTP/WebSocket gateway and the demo page')
    .option('--port <port>', 'port to listen on (0: any free port)', String(DEFAULT_PORT))
    .option('--host <host>', 'address to bind; anything but loopback needs --token', DEFAULT_HOST)
    .option('--storage <dir>', 'storage directory (default: .crosscast)')
    .option('--pool', 'take a free slot of the room\'s storage pool in the data directory, as agent sessions do (room default: derived from the git repository)')
    .option('--socket [path]', 'also serve the API on a unix socket, where work-item commands find it (default path: node.sock in the storage directory; on with --pool)')
    .option('--room <name>', 'room to join (default: default; with --pool, derived from the git repository)')
    .option('--secret <secret>', 'room secret')
    .option('--bootstrap <host:port...>', 'DHT bootstrap nodes (default: the public DHT)')
    .option('--relay', 'relay for peers that cannot punch through their NATs (needs a reachable address)')
    .option('--relay-through <key...>', 'relays to go through when a direct connection cannot be punched')
    .option('--no-swarm', 'do not discover peers over the DHT')
    .option('--no-lan', 'do not discover peers on the local network (mDNS)')
    .option('--token <token>', 'require Authorization: Bearer <token> on every request (env CROSSCAST_TOKEN)')
    .option('--cors', 'allow cross-origin browser requests')
    .option('--max-sessions <n>', 'most session logs (X-Session-IDs that write) hosted at once; past it writes get 429 LIMIT_REACHED', String(DEFAULT_MAX_SESSIONS))
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .action(async (flags: ServeFlags) => { await serve(flags) })
}
