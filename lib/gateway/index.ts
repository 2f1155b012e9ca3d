// crosscast/gateway: HTTP + WebSocket in front of one crosscast node, for
// clients that cannot embed the library. The core entry never imports fastify;
// only this subpath does.

import { timingSafeEqual, createHash } from 'node:crypto'
import { isIP } from 'node:net'
import Fastify, { LogController, type FastifyInstance, type FastifyRequest, type FastifyReply, type FastifyBaseLogger, type FastifySchema } from 'fastify'
import websocket from '@fastify/websocket'
import type { Crosscast } from '../index.ts'
import { CrosscastError } from '../errors.ts'
import { toHttpError, notFoundRoute } from './errors.ts'
import { BroadcastHub, parseSince, parseEpoch } from './ws-hub.ts'
import { registerWriteRoutes } from './routes-write.ts'
import { registerReadRoutes } from './routes-read.ts'
import { registerStatic } from './static.ts'
import { openApiDocument, type RouteDoc } from './openapi.ts'
import { typeboxValidatorCompiler } from './validation.ts'
import { silentLogger, toFastifyLogger, redactUrl, type Logger } from './logger.ts'
import type { GatewayContext } from './context.ts'
import { GatewaySessions, DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_IDLE_MS } from './sessions.ts'
import type { GatewayCounters } from './metrics.ts'
import { validateLabel } from '../events/validate.ts'

export type { Logger } from './logger.ts'
export type { Metrics } from './metrics.ts'

export const DEFAULT_PORT = 8000
export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024
export const DEFAULT_WS_MAX_LAG = 4 * 1024 * 1024
export const DEFAULT_HEARTBEAT_MS = 30_000
export { DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_IDLE_MS } from './sessions.ts'
const MAX_WS_FRAME_BYTES = 64 * 1024

export interface GatewayOptions {
  host?: string
  port?: number
  /** When set, every route and the WebSocket need `Authorization: Bearer <token>` (browsers: `?token=`). */
  token?: string
  cors?: boolean
  logger?: Logger
  /** Largest request body accepted (413 above). */
  maxBodyBytes?: number
  /** Largest unsent backlog a WebSocket client may build up before it is closed (bytes). */
  wsMaxLag?: number
  /** Interval of WebSocket pings; a client that misses one whole interval is dropped. 0 disables. */
  heartbeatMs?: number
  /** Most session logs (X-Session-IDs that write) hosted at once; a write from one more gets 429 LIMIT_REACHED. */
  maxSessions?: number
  /** A hosted session log with no write for this long is closed (it reopens on its next write). 0 keeps them open. */
  sessionIdleMs?: number
}

export interface Gateway {
  readonly address: { host: string, port: number }
  readonly url: string
  readonly app: FastifyInstance
  close: () => Promise<void>
}

export function isLoopback (host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'))
}

/** Binding beyond this machine without a token would let anyone on the network write. */
export function checkBindSecurity (host: string, token: string | undefined): void {
  if (!isLoopback(host) && (token === undefined || token === '')) {
    throw new CrosscastError('INVALID_OPTION', `refusing to listen on ${host} without a token: anyone who can reach it could read and write. Pass --token <secret> (token option), or keep the default host 127.0.0.1`, { field: 'host' })
  }
}

function checkOptions (opts: GatewayOptions): void {
  if (opts.port !== undefined && (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535)) {
    throw new CrosscastError('INVALID_OPTION', `port must be an integer from 0 to 65535, got ${String(opts.port)}`, { field: 'port' })
  }
  if (opts.token !== undefined && (typeof opts.token !== 'string' || !/^[\x21-\x7e]{1,512}$/.test(opts.token))) {
    throw new CrosscastError('INVALID_OPTION', 'token must be 1 to 512 printable ASCII characters without spaces', { field: 'token' })
  }
  if (opts.maxSessions !== undefined && (!Number.isInteger(opts.maxSessions) || opts.maxSessions < 1)) {
    throw new CrosscastError('INVALID_OPTION', `maxSessions must be a positive integer, got ${String(opts.maxSessions)}`, { field: 'maxSessions' })
  }
  for (const key of ['maxBodyBytes', 'wsMaxLag', 'heartbeatMs', 'sessionIdleMs'] as const) {
    const v = opts[key]
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new CrosscastError('INVALID_OPTION', `${key} must be a non-negative integer`, { field: key })
  }
}

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

function hostnameOf (hostHeader: string): string {
  if (hostHeader.startsWith('[')) return hostHeader.slice(1, hostHeader.indexOf(']'))
  const colon = hostHeader.lastIndexOf(':')
  return colon === -1 ? hostHeader : hostHeader.slice(0, colon)
}

function sendError (reply: FastifyReply, err: CrosscastError, status = err.httpStatus): FastifyReply {
  return reply.code(status).send(err.toJSON())
}

export async function createGateway (cc: Crosscast, opts: GatewayOptions = {}): Promise<Gateway> {
  checkOptions(opts)
  const host = opts.host ?? DEFAULT_HOST
  checkBindSecurity(host, opts.token)
  const logger = opts.logger ?? silentLogger
  const tokenDigest = opts.token === undefined ? null : digest(opts.token)
  const routes: RouteDoc[] = []

  const app = Fastify({
    loggerInstance: toFastifyLogger(logger) as unknown as FastifyBaseLogger,
    // Requests are logged once, at debug, by the onResponse hook below (with tokens redacted).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
    forceCloseConnections: true,
    return503OnClosing: true,
    // A client that sends headers and then stalls its body would otherwise hold its socket forever.
    requestTimeout: 30_000,
    // A URL that does not decode or an over-long path parameter is refused by the router, before
    // any hook: without this it would answer in fastify's own error shape instead of {code, message}.
    frameworkErrors: (err, req, reply) => {
      const { status, body } = toHttpError(err)
      counters.restErrors++
      const r = reply as unknown as FastifyReply
      // As in the onResponse hook below (which does not run here): nothing else would close a refused upgrade's socket.
      if (String(req.headers.upgrade).toLowerCase() === 'websocket') r.raw.once('finish', () => req.raw.socket?.destroy())
      r.code(status).send(body)
    }
  })

  const counters: GatewayCounters = { startedAt: Date.now(), restWrites: 0, restErrors: 0, writeSessions: new Map() }
  const hub = new BroadcastHub(cc, {
    maxLagBytes: opts.wsMaxLag ?? DEFAULT_WS_MAX_LAG,
    heartbeatMs: opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
    logger
  })
  const sessions = new GatewaySessions(cc, { maxSessions: opts.maxSessions ?? DEFAULT_MAX_SESSIONS, idleMs: opts.sessionIdleMs ?? DEFAULT_SESSION_IDLE_MS, logger })
  const ctx: GatewayContext = { cc, hub, sessions, counters, logger }

  app.setValidatorCompiler(typeboxValidatorCompiler)
  // Without a text/plain parser a cross-site "simple" POST cannot reach a route: 415.
  app.removeContentTypeParser('text/plain')
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    const schema = route.schema as (RouteDoc['schema'] & { hide?: boolean, summary?: string }) | undefined
    if (schema?.hide === true || (route as { websocket?: boolean }).websocket === true) return
    // Response schemas document; they do not serialize (fast-json-stringify would reorder and drop fields).
    const responses = { ...(route.config as { responses?: RouteDoc['responses'] } | undefined)?.responses, ...schema?.response }
    if (schema !== undefined) delete schema.response
    for (const method of methods) {
      if (method === 'HEAD' || method === 'OPTIONS') continue
      routes.push({ method, url: route.url, summary: schema?.summary, schema, responses })
    }
  })

  app.setErrorHandler((err, req, reply) => {
    const { status, body } = toHttpError(err)
    counters.restErrors++
    if (status >= 500) logger.error({ err, method: req.method, url: redactUrl(req.url) }, 'request failed')
    else logger.debug({ code: body.code, method: req.method, url: redactUrl(req.url) }, 'request refused')
    return reply.code(status).send(body)
  })
  app.setNotFoundHandler((req, reply) => {
    const { status, body } = notFoundRoute(req.method, req.url)
    counters.restErrors++
    return reply.code(status).send(body)
  })

  const loopbackOnly = isLoopback(host)
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    // A page on another site may resolve its own name to 127.0.0.1 (DNS rebinding): a loopback
    // gateway answers only requests addressed to a loopback name.
    // An absolute-form target (POST http://name/path) names the host itself, and it wins over Host.
    const target = req.raw.url ?? '/'
    const targetHost = target.startsWith('/') || target === '*' ? null : URL.canParse(target) ? new URL(target).hostname : ''
    if (loopbackOnly && ((req.headers.host !== undefined && !isLoopback(hostnameOf(req.headers.host))) || (targetHost !== null && !isLoopback(targetHost)))) {
      counters.restErrors++
      return sendError(reply, new CrosscastError('INVALID_HEADER', 'Host must name this machine (localhost or a loopback address)', { field: 'Host' }), 403)
    }
    if (opts.cors === true) {
      reply.header('access-control-allow-origin', '*')
      if (req.method === 'OPTIONS') {
        return reply.code(204)
          .header('access-control-allow-methods', 'GET, POST, DELETE, OPTIONS')
          .header('access-control-allow-headers', 'authorization, content-type, x-agent-id, x-session-id')
          .header('access-control-max-age', '600')
          .send()
      }
    }
    if (tokenDigest !== null) {
      const header = req.headers.authorization
      let presented = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : undefined
      // Browsers cannot set headers on a WebSocket or on a page they navigate to.
      const path = req.url.split('?')[0]
      if (presented === undefined && req.method === 'GET' && (path === '/ws/broadcasts' || path === '/' || path.startsWith('/static/'))) {
        const q = (req.query as { token?: unknown } | undefined)?.token
        if (typeof q === 'string') presented = q
      }
      if (presented === undefined || !timingSafeEqual(digest(presented), tokenDigest)) {
        counters.restErrors++
        reply.header('www-authenticate', 'Bearer')
        return sendError(reply, new CrosscastError('UNAUTHORIZED', presented === undefined ? 'this gateway needs Authorization: Bearer <token>' : 'wrong token'))
      }
    }
  })
  app.addHook('onResponse', async (req, reply) => {
    // A refused upgrade leaves a raw socket no HTTP machinery will close (fastify's close would wait on it).
    if (reply.statusCode !== 101 && String(req.headers.upgrade).toLowerCase() === 'websocket') req.raw.socket?.destroy()
    logger.debug({ method: req.method, url: redactUrl(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request')
  })

  await app.register(websocket, {
    options: { maxPayload: MAX_WS_FRAME_BYTES },
    errorHandler: (err, socket) => {
      logger.debug({ err }, 'websocket error')
      socket.terminate()
    }
  })

  app.register(async (scoped) => {
    scoped.get('/ws/broadcasts', {
      websocket: true,
      preValidation: async (req, reply) => {
        // Browsers send Origin on a WebSocket and no CORS protects it: refuse other sites' pages.
        const origin = req.headers.origin
        if (opts.cors !== true && typeof origin === 'string' && origin !== 'null') {
          const originHost = URL.canParse(origin) ? new URL(origin).host : ''
          if (originHost !== req.headers.host) {
            return sendError(reply, new CrosscastError('UNAUTHORIZED', `WebSocket from origin ${origin} refused: start the gateway with cors to allow other origins`), 403)
          }
        }
        const q = req.query as { since?: unknown, session_id?: unknown, epoch?: unknown }
        parseSince(q.since)
        parseEpoch(q.epoch)
        if (q.session_id !== undefined) validateLabel(q.session_id, 'session_id')
        // The header is the non-browser way to name the session; repeated copies arrive joined by ", ".
        else if (req.headers['x-session-id'] !== undefined) validateLabel(req.headers['x-session-id'], 'X-Session-ID')
      }
    }, (socket, req) => {
      const q = req.query as { since?: string, session_id?: string, epoch?: string }
      const sessionHeader = req.headers['x-session-id']
      const sessionId = typeof q.session_id === 'string' ? q.session_id : typeof sessionHeader === 'string' ? sessionHeader : null
      hub.attach(socket, { sessionId, since: parseSince(q.since), epoch: parseEpoch(q.epoch) })
    })
  })

  registerWriteRoutes(app, ctx)
  registerReadRoutes(app, ctx)
  registerStatic(app)
  app.get('/docs/json', { schema: { summary: 'this OpenAPI document' } as FastifySchema }, async () => openApiDocument(routes, { title: 'crosscast gateway', version: '1' }))

  await app.listen({ host, port: opts.port ?? DEFAULT_PORT })
  const bound = app.server.address()
  const port = typeof bound === 'object' && bound !== null ? bound.port : opts.port ?? DEFAULT_PORT
  const urlHost = isIP(host) === 6 ? `[${host}]` : host
  const url = `http://${urlHost}:${port}`
  logger.info({ url, auth: tokenDigest !== null, cors: opts.cors === true }, 'gateway listening')

  let closing: Promise<void> | null = null
  return {
    address: { host, port },
    url,
    app,
    close: async () => {
      closing ??= (async () => {
        hub.close()
        sessions.close()
        await app.close()
      })()
      return await closing
    }
  }
}
