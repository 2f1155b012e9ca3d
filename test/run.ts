// Runs every test file in its own process (a crash or a leaked handle in one
// cannot take others down), with a time limit each, and ends with the line CI
// reads: "N passed, N failed".
//
//   npm test                     every file
//   npm test -- core replication only files whose name contains one of the words

import { spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))
const FILE_TIMEOUT_MS = Number(process.env.TEST_FILE_TIMEOUT_MS ?? 5 * 60_000)

interface Result { file: string, passed: number, failed: number, skipped: number, ms: number, note: string }

function findFiles (): string[] {
  const words = process.argv.slice(2)
  return readdirSync(HERE)
    .filter(name => name.endsWith('.test.ts'))
    .filter(name => words.length === 0 || words.some(w => name.includes(w)))
    .sort()
    .map(name => join(HERE, name))
}

function runFile (file: string): Promise<Result> {
  const started = Date.now()
  return new Promise(resolve => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, FORCE_COLOR: '0' } })
    let passed = 0
    let failed = 0
    let skipped = 0
    let buffered = ''
    let timedOut = false
    const onLine = (line: string): void => {
      // Top-level tests only: brittle indents subtests and assertions.
      const m = /^(not ok|ok) \d+ - .*?(# (SKIP|TODO).*)?$/.exec(line)
      if (m === null) return
      if (m[3] !== undefined) skipped++
      else if (m[1] === 'ok') passed++
      else failed++
    }
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk)
      buffered += chunk.toString()
      const lines = buffered.split('\n')
      buffered = lines.pop() ?? ''
      for (const line of lines) onLine(line)
    })
    child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk))
    const timer = setTimeout(() => {
      timedOut = true
      try { process.kill(-(child.pid as number), 'SIGKILL') } catch {}
    }, FILE_TIMEOUT_MS)
    child.on('close', (code) => {
      clearTimeout(timer)
      onLine(buffered)
      let note = ''
      if (timedOut) {
        failed++
        note = `timed out after ${FILE_TIMEOUT_MS} ms`
      } else if (code !== 0 && failed === 0) {
        failed++
        note = `exited with code ${code} without a failing test line`
      } else if (code === 0 && passed + failed + skipped === 0) {
        failed++
        note = 'ran no test'
      }
      // Kill whatever the file left behind in its process group.
      try { process.kill(-(child.pid as number), 'SIGKILL') } catch {}
      resolve({ file, passed, failed, skipped, ms: Date.now() - started, note })
    })
  })
}

const files = findFiles()
const results: Result[] = []
for (const file of files) {
  console.log(`\n# ---- ${file.slice(HERE.length + 1)}`)
  results.push(await runFile(file))
}
console.log('\n# ---- summary')
for (const r of results) {
  const name = r.file.slice(HERE.length + 1)
  console.log(`# ${r.failed > 0 ? 'FAIL' : 'ok  '} ${name}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped, ${(r.ms / 1000).toFixed(1)} s${r.note === '' ? '' : ' (' + r.note + ')'}`)
}
const passed = results.reduce((n, r) => n + r.passed, 0)
const failed = results.reduce((n, r) => n + r.failed, 0)
const skipped = results.reduce((n, r) => n + r.skipped, 0)
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`)
process.exitCode = failed > 0 || files.length === 0 ? 1 : 0
