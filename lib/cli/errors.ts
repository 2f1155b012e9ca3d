// How the command line reports a failure: a CrosscastError or a system error
// (a path that does not exist, a permission) is the user's to fix and gets one
// line; anything else is a bug and says how to see its stack.

import { isCrosscastError } from '../errors.ts'
import { colorsFor } from './output.ts'

export const EXIT_USER_ERROR = 2
export const EXIT_BUG = 1

export function describeError (err: unknown, withStack: boolean): { text: string, exitCode: number } {
  const c = colorsFor(process.stderr)
  const prefix = c.red('crosscast:')
  if (isCrosscastError(err) && err.code !== 'INTERNAL') {
    return { text: `${prefix} ${err.message} ${c.dim(`(${err.code})`)}\n`, exitCode: EXIT_USER_ERROR }
  }
  const e = err as NodeJS.ErrnoException
  if (typeof e?.code === 'string' && /^E[A-Z]+$/.test(e.code) && typeof e.message === 'string') {
    return { text: `${prefix} ${e.message}\n`, exitCode: EXIT_USER_ERROR }
  }
  const message = err instanceof Error ? err.message : String(err)
  const stack = withStack && err instanceof Error && err.stack !== undefined ? `${err.stack}\n` : ''
  return { text: `${prefix} internal error: ${message} ${c.dim('(a bug: please report it; CROSSCAST_DEBUG=1 shows the stack trace)')}\n${stack}`, exitCode: EXIT_BUG }
}
