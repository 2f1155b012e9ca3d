// The runnable examples the README points to (examples/*.ts) run to their end
// and exit 0, each in its own process, as a reader would run them.

import test from 'brittle'
import { execFile } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const DIR = fileURLToPath(new URL('../examples/', import.meta.url))

for (const file of readdirSync(DIR).filter(name => name.endsWith('.ts')).sort()) {
  test(`examples/${file} runs to its end and exits 0`, { timeout: 120_000 }, async (t) => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', join(DIR, file)], { timeout: 100_000, killSignal: 'SIGKILL' })
    t.ok(stdout.trim().length > 0, `it prints what it shows (${stdout.trim().split('\n').length} lines)`)
  })
}
