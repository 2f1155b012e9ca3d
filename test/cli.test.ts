import test, { type Assert } from 'brittle'
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Crosscast, contentHash } from '../lib/index.ts'
import { createTestnet } from './helpers/testnet.ts'

const run = promisify(execFile)
const CLI = fileURLToPath(new URL('../lib/cli/main.ts', import.meta.url))

function cli (...args: string[]): Promise<{ stdout: string, stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', CLI, ...args], { timeout: 60_000 })
}

async function seeded (t: Assert): Promise<{ storage: string, featureId: string, hash: string }> {
  const storage = await t.tmp()
  const cc = await Crosscast.open({ storage, agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })
  const f = await cc.features.create('CLI feature').save()
  f.status = 'done'
  await f.save()
  await cc.features.create('Another').save()
  await f.comment('shipped')
  const hash = contentHash(cc.db)
  await cc.close()
  return { storage, featureId: f.id, hash }
}

test('crosscast events prints the audit trail, filtered by type and resource, as text or JSON', { timeout: 180_000 }, async (t) => {
  const { storage, featureId } = await seeded(t)
  const all = await cli('events', '--storage', storage)
  const lines = all.stdout.trim().split('\n')
  t.is(lines.length, 5)
  t.ok(lines[0].includes('feature_created') && lines[0].includes(featureId))

  const json = await cli('events', '--storage', storage, '--type', 'status_changed', '--json')
  const events = json.stdout.trim().split('\n').map(l => JSON.parse(l))
  t.is(events.length, 1)
  t.alike(events[0].payload, { old_status: 'todo', new_status: 'done' })
  t.is(events[0].agent_id, 'claude')

  const byResource = await cli('events', '--storage', storage, '--resource', featureId, '--json')
  t.alike(byResource.stdout.trim().split('\n').map(l => JSON.parse(l).event_type), ['feature_created', 'feature_updated', 'status_changed', 'comment_added'])

  await t.exception(cli('events', '--storage', storage, '--type', 'bogus'), /Allowed choices|status_changed/)
  await t.exception(cli('events', '--storage', storage, '--resource', 'feat-1.2'), /INVALID_ID/)
})

test('crosscast reindex rebuilds the database with the same content', { timeout: 180_000 }, async (t) => {
  const { storage, hash } = await seeded(t)
  const out = await cli('reindex', '--storage', storage)
  t.ok(/reindexed 5 events from 1 log in/.test(out.stdout), out.stdout.trim())
  const cc = await Crosscast.open({ storage, agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })
  t.teardown(() => cc.close())
  t.is(contentHash(cc.db), hash)
})

test('crosscast status prints writers and counts', { timeout: 180_000 }, async (t) => {
  const { storage } = await seeded(t)
  const out = await cli('status', '--storage', storage, '--json')
  const status = JSON.parse(out.stdout)
  t.is(status.events.total, 5)
  t.ok(status.writers.some((w: { sessionId: string, lag: number }) => w.sessionId === 'sess-1' && w.lag === 0))
})

test('crosscast status and tail work beside a node that holds the storage', { timeout: 180_000 }, async (t) => {
  const { storage } = await seeded(t)
  const cc = await Crosscast.open({ storage, agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })
  t.teardown(() => cc.close())
  const out = await cli('status', '--storage', storage, '--json')
  const status = JSON.parse(out.stdout)
  t.is(status.live, true, 'reports that a running node holds the storage')
  t.is(status.events.total, 5)
  t.ok(status.writers.some((w: { sessionId: string, indexed: number }) => w.sessionId === 'sess-1' && w.indexed === 4))
  const text = await cli('status', '--storage', storage)
  t.ok(text.stdout.includes('in use by a running node'), text.stdout.split('\n')[0])

  // tail follows new events while the node keeps writing.
  const tail = spawn(process.execPath, ['--import', 'tsx', CLI, 'tail', '--storage', storage, '--json', '--interval', '20', '-n', '0'], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { tail.kill('SIGKILL') })
  let printed = ''
  tail.stdout.on('data', (d: Buffer) => { printed += d.toString() })
  // Keep writing until tail (which starts at the newest event) prints one of them.
  let written = 0
  const deadline = Date.now() + 60_000
  while (!printed.includes('tailed')) {
    if (Date.now() > deadline) break
    await cc.features.create(`tailed ${written++}`).save()
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  const lines = printed.trim().split('\n').map(l => JSON.parse(l))
  t.ok(lines.length > 0 && lines.every(e => e.event_type === 'feature_created' && e.payload.title.startsWith('tailed')), `tail -n 0 printed ${lines.length} new events and nothing older`)
  const exited = new Promise(resolve => tail.once('exit', (code) => resolve(code)))
  tail.kill('SIGINT')
  t.is(await exited, 0, 'tail exits cleanly on SIGINT')
})

/** Runs the CLI and returns what it printed and how it exited, whether or not it failed. */
async function attempt (args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise(resolve => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { timeout: 60_000, env }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (err as { code?: number }).code ?? -1, stdout, stderr })
    })
  })
}

function oneLineError (t: Assert, r: { code: number, stderr: string }, pattern: RegExp, what: string): void {
  t.not(r.code, 0, `${what}: exits non-zero`)
  const lines = r.stderr.trimEnd().split('\n')
  t.is(lines.length, 1, `${what}: one line: ${r.stderr.trim()}`)
  t.ok(lines[0].startsWith('crosscast: ') && pattern.test(lines[0]), `${what}: says what is wrong`)
  t.absent(/^\s+at /m.test(r.stderr), `${what}: no stack trace`)
}

test('crosscast --version prints the package version', async (t) => {
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  const [long, short] = await Promise.all([cli('--version'), cli('-V')])
  t.is(long.stdout.trim(), version)
  t.is(short.stdout.trim(), version)
})

test('every user error is one clear line: bad flags, a missing database, a locked storage naming its holder', { timeout: 180_000 }, async (t) => {
  const { storage } = await seeded(t)
  const cases: Array<[string[], RegExp, string]> = [
    [['events', '--storage', storage, '--bogus'], /unknown option '--bogus'/, 'unknown option'],
    [['events', '--storage', storage, '--limit', 'abc'], /--limit must be a non-negative integer.*INVALID_OPTION/, 'bad --limit'],
    [['events', '--storage', storage, '--type', 'bogus'], /Allowed choices/, 'bad --type'],
    [['events', '--storage', join(storage, 'nothing-here')], /does not exist.*NOT_FOUND/, 'no database'],
    [['serve', '--storage', storage, '--port', 'http'], /--port must be an integer.*INVALID_OPTION/, 'bad --port'],
    [['nonsense'], /unknown command 'nonsense'/, 'unknown command']
  ]
  const results = await Promise.all(cases.map(([args]) => attempt(args)))
  cases.forEach(([, pattern, what], i) => oneLineError(t, results[i], pattern, what))

  const cc = await Crosscast.open({ storage, agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })
  t.teardown(() => cc.close())
  const locked = await attempt(['reindex', '--storage', storage])
  oneLineError(t, locked, /STORAGE_LOCKED/, 'locked storage')
  t.ok(locked.stderr.includes(`open in another process: pid ${process.pid} (`), 'names the process that holds it')
  t.ok(/stop that process or use another storage directory/.test(locked.stderr), 'and says what to do')

  // More output than a pipe holds, read by a reader that stops early: the command just ends.
  for (let b = 0; b < 10; b++) await cc.append(Array.from({ length: 400 }, (_, i) => ({ event_type: 'feature_created' as const, resource_id: `feat-bulk-${b}-${i}`, payload: { title: `bulk ${i}`, status: 'todo' as const } })))
  const piped = await run('bash', ['-c', `"${process.execPath}" --import tsx "${CLI}" events --storage "${storage}" | head -1; exit \${PIPESTATUS[0]}`], { timeout: 60_000 })
  t.is(piped.stdout.split('\n').length, 2, 'head printed its one line')
  t.is(piped.stderr, '', 'crosscast events | head: no EPIPE error, exit 0')
})

test('tail prints the last -n events first (or everything after --since), then follows', { timeout: 180_000 }, async (t) => {
  const { storage } = await seeded(t)
  const cc = await Crosscast.open({ storage, agent: 'claude', sessionId: 'sess-1', swarm: false, lan: false })
  t.teardown(() => cc.close())
  const sinceCursor = cc.listEvents({ limit: 2 }).events[1].cursor
  for (const args of [['-n', '2'], ['--since', String(sinceCursor)], []]) {
    const all = cc.listEvents({ limit: 1000 }).events
    const expected = args[0] === '-n' ? all.slice(-2) : args[0] === '--since' ? all.filter(e => e.cursor > sinceCursor) : all.slice(-10)
    const tail = spawn(process.execPath, ['--import', 'tsx', CLI, 'tail', '--storage', storage, '--json', '--interval', '20', ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    t.teardown(() => { tail.kill('SIGKILL') })
    let printed = ''
    tail.stdout.on('data', (d: Buffer) => { printed += d.toString() })
    const lines = (): any[] => printed.trim() === '' ? [] : printed.trim().split('\n').map(l => JSON.parse(l))
    const deadline = Date.now() + 30_000
    while (lines().length < expected.length && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    t.alike(lines().map(e => e.event_id), expected.map(e => e.event_id), `tail ${args.join(' ') || '(default -n 10)'} prints ${expected.length} events first`)
    const f = await cc.features.create(`followed ${args.join(' ')}`).save()
    while (!printed.includes(f.id) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 50))
    t.is(lines().at(-1)?.resource_id, f.id, 'then follows new events')
    const exited = new Promise(resolve => tail.once('exit', (code) => resolve(code)))
    tail.kill('SIGINT')
    t.is(await exited, 0)
  }
})

/** Runs a command in a pseudo-terminal (util-linux script), as a user at a terminal would. */
async function inTerminal (command: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const line = command.map(a => `'${a.replaceAll("'", "'\\''")}'`).join(' ')
  const { stdout } = await run('script', ['-qec', line, '/dev/null'], { env, timeout: 60_000 })
  return stdout
}

const hasScript = await run('script', ['--version']).then(() => true, () => false)
const inCi = process.env.CI === 'true'
if (!hasScript) console.log(`# ${inCi ? 'FAILING' : 'SKIPPING'} the terminal tests: no script(1) to make a pseudo-terminal (apt-get install bsdutils)`)

test('colors on a terminal; none when piped or with NO_COLOR; reindex draws a progress bar on a terminal', { timeout: 180_000, skip: !hasScript && !inCi }, async (t) => {
  const { storage } = await seeded(t)
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.FORCE_COLOR // the test runner sets FORCE_COLOR=0, which (as it should) turns colors off
  delete env.NO_COLOR
  const ESC = '\u001b['
  const events = [process.execPath, '--import', 'tsx', CLI, 'events', '--storage', storage]
  const [tty, piped, noColor] = await Promise.all([
    inTerminal(events, env),
    run(events[0], events.slice(1), { env }),
    inTerminal(events, { ...env, NO_COLOR: '1' })
  ])
  t.ok(tty.includes(ESC + '32m') && tty.includes('feature_created'), 'a terminal gets colors (feature_created in green)')
  t.absent(piped.stdout.includes(ESC), 'piped: no escape codes')
  t.ok(piped.stdout.includes('feature_created'))
  t.absent(noColor.includes(ESC), 'NO_COLOR: no escape codes on a terminal either')
  t.ok(noColor.includes('feature_created'))

  const reindex = await inTerminal([process.execPath, '--import', 'tsx', CLI, 'reindex', '--storage', storage], env)
  t.ok(/reindex \[.*\] 100% \| 4\/4 blocks/.test(reindex), `a progress bar: ${JSON.stringify(reindex.slice(-160))}`)
  t.ok(reindex.includes('reindexed 5 events from 1 log'))
  const quiet = await cli('reindex', '--storage', storage)
  t.absent(quiet.stderr.includes('reindex ['), 'no bar when stderr is not a terminal')
})

test('serve on a terminal shows a catch-up bar while it downloads a room\'s history, none when piped', { timeout: 180_000, skip: !hasScript && !inCi }, async (t) => {
  const { bootstrap } = await createTestnet(t)
  const room = `catch-up-${process.pid}`
  const writer = await Crosscast.open({ storage: await t.tmp(), room, bootstrap, lan: false })
  t.teardown(() => writer.close())
  // One event per block, so the reader has many blocks to fetch and project.
  const BLOCKS = 1500
  for (let i = 0; i < BLOCKS; i++) await writer.features.create(`feature ${i}`).save()

  const storage = await t.tmp()
  const args = [process.execPath, '--import', 'tsx', CLI, 'serve', '--storage', storage, '--room', room, '--port', '0', '--no-lan', ...bootstrap.flatMap(b => ['--bootstrap', `${b.host}:${b.port}`])]
  const line = args.map(a => `'${a.replaceAll("'", "'\\''")}'`).join(' ')
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.FORCE_COLOR
  const child = spawn('script', ['-qec', line, '/dev/null'], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { try { process.kill(-(child.pid as number), 'SIGKILL') } catch {} })
  let screen = ''
  child.stdout.on('data', (chunk: Buffer) => { screen += chunk.toString() })
  const deadline = Date.now() + 90_000
  while (!/catching up \[.*\] 100% \| (\d+)\/\1 blocks/.test(screen) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
  t.ok(/catching up \[.*\] \d+% \| \d+\/\d+ blocks/.test(screen), 'a bar is drawn while the history comes in')
  t.ok(/catching up \[.*\] 100% \| (\d+)\/\1 blocks/.test(screen), `and it reaches 100%: ${JSON.stringify(screen.slice(-200))}`)
  process.kill(-(child.pid as number), 'SIGINT')
})
