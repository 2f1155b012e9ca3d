// fastify wants a full pino logger (fatal, trace, child, level); crosscast
// accepts any pino-shaped { debug, info, warn, error, child? }. This adapts one
// to the other, and is silent by default.

import { silentLogger, childLogger, type Logger } from '../logger.ts'

export { silentLogger, type Logger }

type LogFn = Logger['debug']

export interface FastifyLogger extends Logger {
  level: string
  fatal: LogFn
  trace: LogFn
  silent: LogFn
  child: (bindings: Record<string, unknown>) => FastifyLogger
}

const noop: LogFn = () => {}

export function toFastifyLogger (logger: Logger): FastifyLogger {
  const full = logger as Partial<FastifyLogger>
  const bound = (fn: LogFn | undefined, fallback: LogFn): LogFn => typeof fn === 'function' ? fn.bind(logger) : fallback
  const error = bound(logger.error, noop)
  const debug = bound(logger.debug, noop)
  const adapted: FastifyLogger = {
    level: typeof full.level === 'string' ? full.level : 'info',
    debug,
    info: bound(logger.info, noop),
    warn: bound(logger.warn, noop),
    error,
    fatal: bound(full.fatal, error),
    trace: bound(full.trace, debug),
    silent: noop,
    // fastify asks for a child on every request: a logger whose child is itself (the silent default) is not adapted again.
    child: (bindings) => {
      const child = childLogger(logger, bindings)
      return child === logger ? adapted : toFastifyLogger(child)
    }
  }
  return adapted
}

/** Tokens travel in `?token=` for browsers; never let one reach a log line. */
export function redactUrl (url: string): string {
  return url.replace(/([?&]token=)[^&]*/g, '$1[redacted]')
}
