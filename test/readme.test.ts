// The README runs as written: every TypeScript block type-checks and runs, each
// in an empty directory of its own, with nothing added but the package name
// mapped to this checkout (as `npm install crosscast` would provide it). And the
// parts of README that restate code (error table, CLI reference) are what
// `npm run docs` generates from that code now.

import test from 'brittle'
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { generate, README } from '../scripts/docs.ts'
import { ROOT, freePort } from './helpers/gateway.ts'

const run = promisify(execFile)
const readme = readFileSync(README, 'utf8')
const BLOCK_TIMEOUT_MS = 60_000

test('README: the error table and the CLI reference are what npm run docs generates from the code', (t) => {
  const generated = generate(readme)
  t.ok(generated === readme, 'README.md matches lib/errors.ts and the commander definitions (if not: npm run docs)')
  if (generated !== readme) {
    const ours = readme.split('\n')
    const theirs = generated.split('\n')
    const at = ours.findIndex((line, i) => line !== theirs[i])
    t.comment(`first difference at README.md line ${at + 1}: ${JSON.stringify(ours[at])} vs generated ${JSON.stringify(theirs[at])}`)
  }
})

const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m, i) => ({ name: `block-${i + 1}`, code: m[1], line: readme.slice(0, m.index).split('\n').length + 1 }))

test('README: every TypeScript block type-checks and runs as written', { timeout: 300_000 }, async (t) => {
  t.ok(blocks.length >= 3, `${blocks.length} TypeScript blocks found`)
  const dir = await t.tmp()
  // What an installed package gives a reader: 'crosscast' and 'crosscast/gateway' resolve to this checkout.
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }))
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({
    extends: join(ROOT, 'tsconfig.json'),
    compilerOptions: {
      rootDir: '/',
      paths: { crosscast: [join(ROOT, 'lib/index.ts')], 'crosscast/gateway': [join(ROOT, 'lib/gateway/index.ts')] }
    },
    include: ['*/*.ts', join(ROOT, 'types/**/*.d.ts')]
  }))
  for (const b of blocks) {
    mkdirSync(join(dir, b.name))
    writeFileSync(join(dir, b.name, 'main.ts'), b.code)
  }
  const check = await run(join(ROOT, 'node_modules/.bin/tsc'), ['--noEmit', '-p', join(dir, 'tsconfig.json')], { cwd: dir }).then(() => '', (err: { stdout?: string }) => err.stdout ?? String(err))
  t.is(check, '', 'tsc --noEmit passes on every block')
  if (check !== '') t.comment(check.replaceAll(dir, '<README blocks>'))

  for (const b of blocks) {
    const port = await freePort()
    // tsx from this checkout: the block's directory has no node_modules of its own.
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), 'main.ts'], {
      cwd: join(dir, b.name),
      env: { ...process.env, TSX_TSCONFIG_PATH: join(dir, 'tsconfig.json'), PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    const exited = new Promise<number | null>(resolve => child.once('exit', resolve))
    t.teardown(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid!, 'SIGKILL')
        await exited
      }
    })
    let output = ''
    child.stdout.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr.on('data', (d: Buffer) => { output += d.toString() })
    const timer = setTimeout(() => process.kill(child.pid!, 'SIGKILL'), BLOCK_TIMEOUT_MS)
    const code = await exited
    clearTimeout(timer)
    t.is(code, 0, `README line ${b.line}: the block runs to its end and exits 0${code === 0 ? '' : ` (${code === null ? `killed after ${BLOCK_TIMEOUT_MS} ms` : `exit ${code}`}): ${output.trim().slice(-600)}`}`)
  }
})
