// A pino-shaped logger that keeps every line, so tests can assert what a node reported.
import type { Logger } from '../../lib/index.ts'

export interface LogLine { level: string, obj: Record<string, unknown>, msg: string }

export function capturingLogger (): { logger: Logger, lines: LogLine[] } {
  const lines: LogLine[] = []
  const at = (level: string) => (obj: unknown, msg?: string) => {
    if (typeof obj === 'string') lines.push({ level, obj: {}, msg: obj })
    else lines.push({ level, obj: (obj ?? {}) as Record<string, unknown>, msg: msg ?? '' })
  }
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines }
}
