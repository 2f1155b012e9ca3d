// Serves lib/gateway/static/ and nothing else: the file name is one path
// segment matched by the route schema, and the resolved path must still sit
// inside the directory, so neither `..` nor an encoded slash can escape it.

import { readFile, stat } from 'node:fs/promises'
import { join, resolve, sep, extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify'
import { StaticParams, ErrorResponse } from './schemas.ts'
import { notFound } from './context.ts'

export const STATIC_DIR = resolve(fileURLToPath(new URL('./static/', import.meta.url)))

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon'
}

export function registerStatic (app: FastifyInstance): void {
  app.get('/', { schema: { summary: 'redirects to the demo page' } as FastifySchema }, async (req, reply) => {
    const query = req.url.includes('?') ? req.url.slice(req.url.indexOf('?')) : ''
    return reply.redirect('/static/broadcast-demo.html' + query)
  })

  // Browsers ask for /favicon.ico on their own: answer with the board's icon rather than a 404.
  app.get('/favicon.ico', { schema: { summary: 'the board\'s icon (SVG)' } as FastifySchema }, async (_req, reply) => {
    reply.type(TYPES['.svg']).header('cache-control', 'max-age=86400')
    return await readFile(join(STATIC_DIR, 'favicon.svg'))
  })

  app.get('/static/:file', {
    schema: { summary: 'the demo page and its assets', params: StaticParams } as FastifySchema,
    config: { responses: { 404: ErrorResponse } }
  }, async (req: FastifyRequest, reply) => {
    const { file } = req.params as { file: string }
    const path = resolve(join(STATIC_DIR, file))
    if (!path.startsWith(STATIC_DIR + sep)) throw notFound('file', file, 'file')
    const info = await stat(path).catch(() => null)
    if (info === null || !info.isFile()) throw notFound('file', file, 'file')
    reply
      .type(TYPES[extname(path)] ?? 'application/octet-stream')
      .header('x-content-type-options', 'nosniff')
      // The page may carry ?token= in its URL: never leak it through Referer.
      .header('referrer-policy', 'no-referrer')
      .header('content-security-policy', "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'")
      .header('x-frame-options', 'DENY')
      .header('cache-control', 'no-cache')
    return await readFile(path)
  })
}
