// `crosscast serve`: one node plus its gateway, logging through pino (pretty on
// a terminal, JSON lines otherwise), stopped cleanly by SIGINT or SIGTERM.

import { Command, Option } from 'commander'
import pino from 'pino'
import { Crosscast } from '../index.ts'
import { CrosscastError } from '../errors.ts'
import { createGateway, checkBindSecurity, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_MAX_SESSIONS } from '../gateway/index.ts'

interface ServeFlags {
  port: string
  host: string
  storage: string
  room: string
  secret?: string
  bootstrap?: string[]
  swarm: boolean
  lan: boolean
  token?: string
  cors?: boolean
  maxSessions: string
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

function makeLogger (level: string): pino.Logger {
  if (process.stdout.isTTY === true) {
    return pino({ level, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } })
  }
  return pino({ level })
}

export async function serve (flags: ServeFlags): Promise<void> {
  const port = parsePort(flags.port)
  const token = flags.token ?? (process.env.CROSSCAST_TOKEN === '' ? undefined : process.env.CROSSCAST_TOKEN)
  // Refuse before opening anything: a refused bind must not leave a node behind.
  checkBindSecurity(flags.host, token)
  const logger = makeLogger(flags.logLevel)
  const cc = await Crosscast.open({
    storage: flags.storage,
    room: flags.room,
    secret: flags.secret,
    swarm: flags.swarm,
    bootstrap: flags.bootstrap,
    lan: flags.lan,
    agent: 'gateway',
    sessionId: 'gateway',
    logger
  })
  let gateway: Awaited<ReturnType<typeof createGateway>>
  try {
    gateway = await createGateway(cc, { host: flags.host, port, token, cors: flags.cors === true, maxSessions: parseMaxSessions(flags.maxSessions), logger: logger.child({ component: 'gateway' }) })
  } catch (err) {
    await cc.close()
    throw err
  }
  logger.info({ url: gateway.url, demo: `${gateway.url}/static/broadcast-demo.html`, storage: flags.storage, room: flags.room, swarm: flags.swarm, lan: flags.lan }, 'crosscast serve ready')

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
    .option('--storage <dir>', 'storage directory', '.crosscast')
    .option('--room <name>', 'room to join', 'default')
    .option('--secret <secret>', 'room secret')
    .option('--bootstrap <host:port...>', 'DHT bootstrap nodes (default: the public DHT)')
    .option('--no-swarm', 'do not discover peers over the DHT')
    .option('--no-lan', 'do not discover peers on the local network (mDNS)')
    .option('--token <token>', 'require Authorization: Bearer <token> on every request (env CROSSCAST_TOKEN)')
    .option('--cors', 'allow cross-origin browser requests')
    .option('--max-sessions <n>', 'most session logs (X-Session-IDs that write) hosted at once; past it writes get 429 LIMIT_REACHED', String(DEFAULT_MAX_SESSIONS))
    .addOption(new Option('--log-level <level>', 'log level').choices(LOG_LEVELS).default('info'))
    .action(async (flags: ServeFlags) => { await serve(flags) })
}
