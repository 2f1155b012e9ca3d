// crosscast never writes to stdout by itself: it logs through a pino-shaped
// logger the caller passes in, silent by default.

type LogFn = (objOrMsg: unknown, msg?: string, ...args: unknown[]) => void

export interface Logger {
  debug: LogFn
  info: LogFn
  warn: LogFn
  error: LogFn
  child?: (bindings: Record<string, unknown>) => Logger
}

const noop: LogFn = () => {}

export const silentLogger: Logger = { debug: noop, info: noop, warn: noop, error: noop, child: () => silentLogger }

export function childLogger (logger: Logger, bindings: Record<string, unknown>): Logger {
  return typeof logger.child === 'function' ? logger.child(bindings) : logger
}
