#!/usr/bin/env node
// The crosscast command line. A user error is one line on stderr (what went
// wrong and what to do), never a stack trace; only a bug shows one, on request.

import { buildProgram } from './program.ts'
import { describeError } from './errors.ts'

// `crosscast events | head` closes the pipe early: that ends the command, it is no error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0)
  throw err
})

try {
  await buildProgram().parseAsync(process.argv)
} catch (err) {
  const { text, exitCode } = describeError(err, process.env.CROSSCAST_DEBUG === '1')
  process.stderr.write(text)
  process.exitCode = exitCode
}
