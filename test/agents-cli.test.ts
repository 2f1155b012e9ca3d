// The agent set-up on one machine: project rooms, room keys, the storage pool,
// the work-item CLI (on its own node, and through a running `crosscast mcp`'s
// socket), the hook and `setup claude`. Commands run as separate processes.
import test, { type Assert } from 'brittle'
import { execFile, spawn } from 'node:child_process'
import { request } from 'node:http'
import { promisify } from 'node:util'
import { mkdirSync, writeFileSync, readFileSync, statSync, existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { CLI, TSX, spawnMcp } from './helpers/mcp.ts'
import { normalizeRemote, projectRoom } from '../lib/agents/room.ts'
import { openInPool } from '../lib/agents/pool.ts'
import { liveNodes, type NodeInfo } from '../lib/agents/nodes.ts'
import { resolveIdentity } from '../lib/agents/identity.ts'
import { isCrosscastError } from '../lib/errors.ts'
import type { Crosscast } from '../lib/index.ts'
import { createTestnet } from './helpers/testnet.ts'

const exec = promisify(execFile)

async function cli (args: string[], opts: { env?: Record<string, string>, cwd?: string, input?: string } = {}): Promise<{ stdout: string, stderr: string, code: number }> {
  const child = exec(process.execPath, ['--import', TSX, CLI, ...args], { env: { ...process.env, NO_COLOR: '1', ...opts.env }, cwd: opts.cwd, timeout: 60_000 })
  if (opts.input !== undefined) { child.child.stdin?.end(opts.input) } else child.child.stdin?.end()
  try {
    const { stdout, stderr } = await child
    return { stdout, stderr, code: 0 }
  } catch (err) {
    const e = err as { stdout: string, stderr: string, code: number }
    return { stdout: e.stdout, stderr: e.stderr, code: e.code }
  }
}

async function project (t: Assert, remote: string | null): Promise<string> {
  const dir = await t.tmp()
  mkdirSync(join(dir, '.git'))
  writeFileSync(join(dir, '.git', 'config'), remote === null ? '[core]\n\tbare = false\n' : `[core]\n\tbare = false\n[remote "upstream"]\n\turl = https://example.org/other.git\n[remote "origin"]\n\turl = ${remote}\n`)
  return dir
}

test('room: derived from the git remote (normalized), else the main working tree\'s path', async (t) => {
  for (const url of ['git@github.com:Acme/Board.git', 'https://github.com/Acme/Board.git', 'ssh://git@GitHub.com/Acme/Board', 'https://user:token@github.com/Acme/Board/']) {
    t.is(normalizeRemote(url), 'github.com/Acme/Board', url)
  }
  const withRemote = await project(t, 'git@github.com:acme/board.git')
  mkdirSync(join(withRemote, 'src', 'deep'), { recursive: true })
  t.is(projectRoom(join(withRemote, 'src', 'deep')), 'git:github.com/acme/board', 'origin wins, from any subdirectory')
  const local = await project(t, null)
  t.is(projectRoom(local), `path:${local}`)
  // A linked worktree: .git is a file pointing into the main repository's .git.
  const worktree = await t.tmp()
  mkdirSync(join(local, '.git', 'worktrees', 'wt'), { recursive: true })
  writeFileSync(join(local, '.git', 'worktrees', 'wt', 'commondir'), '../..\n')
  writeFileSync(join(worktree, '.git'), `gitdir: ${join(local, '.git', 'worktrees', 'wt')}\n`)
  t.is(projectRoom(worktree), `path:${local}`, 'worktrees of one repository share its room')
})

test('keys: init creates the room key in the config directory, invite and join carry it to another machine', { timeout: 120_000 }, async (t) => {
  const repo = await project(t, 'git@github.com:acme/keys.git')
  const home = await t.tmp()
  const other = await t.tmp()
  // Two sessions starting at once on a fresh machine must end up with one key.
  const inits = await Promise.all([1, 2].map(async () => JSON.parse((await cli(['init', '--json'], { env: { CROSSCAST_HOME: home }, cwd: repo })).stdout)))
  t.is(inits[0].key_fingerprint, inits[1].key_fingerprint, 'concurrent first sessions share one key')
  t.alike(inits.map(i => i.created).sort(), [false, true], 'one of them created it')
  const made = inits[0]
  t.is(made.room, 'git:github.com/acme/keys')
  t.is(made.keys, join(home, 'config', 'keys'))
  t.is(statSync(made.keys).mode & 0o777, 0o700, 'the key directory is the user\'s only')
  const files = readdirSync(made.keys)
  t.is(files.length, 1)
  t.is(statSync(join(made.keys, files[0])).mode & 0o777, 0o600, 'the key file too')
  t.absent(existsSync(join(repo, '.crosscast')), 'nothing in the repository')
  t.is(JSON.parse((await cli(['init', '--json'], { env: { CROSSCAST_HOME: home }, cwd: repo })).stdout).created, false, 'init again keeps the key')

  const token = (await cli(['invite'], { env: { CROSSCAST_HOME: home }, cwd: repo })).stdout.trim()
  t.ok(token.startsWith('ccinv1_'))
  const joined = JSON.parse((await cli(['join', token, '--json'], { env: { CROSSCAST_HOME: other } })).stdout)
  t.is(joined.room, made.room)
  t.is(joined.key_fingerprint, made.key_fingerprint, 'the other machine now has the same key')
  const bad = await cli(['join', 'not-a-token'], { env: { CROSSCAST_HOME: other } })
  t.is(bad.code, 2)
  t.ok(/not a crosscast invite token.*INVALID_OPTION/s.test(bad.stderr), bad.stderr.trim())
})

test('pool: sessions of one room on one machine take separate slots, never STORAGE_LOCKED; a later one reuses a slot and its history', { timeout: 120_000 }, async (t) => {
  const home = await t.tmp()
  const env = { CROSSCAST_HOME: home }
  const open = (sessionId: string): Promise<Crosscast> => openInPool({ room: 'pool-room', sessionId, agent: 'a', swarm: false, lan: false }, env)
  const nodes = await Promise.all([open('s1'), open('s2'), open('s3')])
  t.alike(nodes.map(n => n.storage.slice(-1)).sort(), ['0', '1', '2'], 'three slots for three concurrent sessions')
  const inSlot = (i: string): Crosscast => nodes.find(n => n.storage.endsWith(`/${i}`))!
  await inSlot('0').features.create('kept in slot').save()
  const lastSession = inSlot('2').sessionId
  await Promise.all(nodes.map(n => n.close()))
  const again = await open('s4')
  t.teardown(() => again.close())
  t.is(again.storage, inSlot('0').storage, 'the first free slot, which holds the history')
  t.alike((await again.features.list()).map(f => f.title), ['kept in slot'], 'history there without any network')
  const back = await open(lastSession)
  t.teardown(() => back.close())
  t.is(back.storage, inSlot('2').storage, 'a returning session prefers the slot that holds its log over a lower free one')
  t.is(readdirSync(join(home, 'data', 'rooms')).length, 1)
})

test('keys: a room whose data here was made with a key is not opened without one, and says how to join', async (t) => {
  const home = await t.tmp()
  const env = { CROSSCAST_HOME: home, CROSSCAST_SECRET: 's3cret' }
  const cc = await openInPool({ room: 'keyed', sessionId: 's1', secret: 's3cret', swarm: false, lan: false }, env)
  await cc.close()
  try {
    resolveIdentity({ room: 'keyed' }, { CROSSCAST_HOME: home })
    t.fail('opened without a key')
  } catch (err) {
    t.ok(isCrosscastError(err) && err.code === 'INVALID_OPTION' && err.field === 'secret')
    t.ok(/has a secret.*crosscast join TOKEN/.test((err as Error).message), (err as Error).message)
  }
  t.is(resolveIdentity({ room: 'keyed' }, env).secret, 's3cret', 'with the secret it opens')
})

test('cli: work-item commands on a node of their own, JSON and aligned plain text', { timeout: 180_000 }, async (t) => {
  const home = await t.tmp()
  const base = ['--room', 'cli-room', '--agent', 'tester', '--session', 'cli-1', '--no-swarm', '--no-lan']
  const env = { CROSSCAST_HOME: home }
  const created = JSON.parse((await cli(['feature', 'create', 'Write docs', '--priority', 'high', '--json', ...base], { env })).stdout)
  t.ok(/^feat-[0-9a-z]{16}$/.test(created.id))
  const other = JSON.parse((await cli(['feature', 'create', 'Ship it', '--json', ...base], { env })).stdout)
  t.is((await cli(['feature', 'status', created.id, 'in_progress', ...base], { env })).code, 0)
  await cli(['feature', 'link', other.id, created.id, '--type', 'depends_on', ...base], { env })
  await cli(['feature', 'comment', created.id, 'halfway', ...base], { env })
  const shown = JSON.parse((await cli(['feature', 'show', created.id, '--json', ...base], { env })).stdout)
  t.is(shown.status, 'in_progress')
  t.alike(shown.comments.map((c: { text: string, author: string }) => [c.text, c.author]), [['halfway', 'tester']])

  const plain = (await cli(['feature', 'list', ...base], { env })).stdout
  t.absent(plain.includes('\x1b['), 'no color when piped')
  const lines = plain.trimEnd().split('\n')
  t.is(lines.length, 3)
  t.is(lines[0].indexOf('STATUS'), lines[1].indexOf('in_progress'), 'columns aligned')
  t.is(lines[0].indexOf('TITLE'), lines[1].indexOf('Write docs'))

  const stale = await cli(['feature', 'update', created.id, '--title', 'x', '--if-version', created.version, ...base], { env })
  t.is(stale.code, 2)
  t.ok(stale.stderr.includes('(CONFLICT)'), stale.stderr.trim())
  const bad = await cli(['feature', 'show', 'trk-00000000', ...base], { env })
  t.ok(bad.stderr.includes('INVALID_ID'), bad.stderr.trim())
  const track = JSON.parse((await cli(['track', 'create', 'Docs', '--description', 'all docs', '--json', ...base], { env })).stdout)
  const changes = JSON.parse((await cli(['changes', '--include-own', '--json', ...base], { env })).stdout)
  t.alike(changes.events.map((e: { event_type: string }) => e.event_type), ['feature_created', 'feature_created', 'status_changed', 'link_added', 'comment_added', 'track_updated'])
  t.is(changes.events[5].payload.description, 'all docs')
  t.is(changes.events[5].resource_id, track.id)
  await cli(['spike', 'create', 'later', ...base], { env })
  const next = JSON.parse((await cli(['changes', '--include-own', '--json', ...base], { env })).stdout)
  t.alike(next.events.map((e: { event_type: string }) => e.event_type), ['spike_updated'], 'the next changes call goes on from where the last one stopped')
})

test('cli: beside a running crosscast mcp, commands go through its socket and writes are live on it at once', { timeout: 180_000 }, async (t) => {
  const home = await t.tmp()
  const env = { CROSSCAST_HOME: home }
  const m = await spawnMcp(t, { args: ['--room', 'sock-room', '--agent', 'claude', '--session', 'mcp-1', '--no-swarm', '--no-lan'], env })
  const held = await m.ok('create_item', { kind: 'feature', title: 'held by mcp' })
  await m.ok('claim', { id: held.id })
  const base = ['--room', 'sock-room', '--agent', 'tester', '--session', 'cli-2', '--no-swarm', '--no-lan']
  const created = JSON.parse((await cli(['feature', 'create', 'from the cli', '--json', ...base], { env })).stdout)
  t.is((await m.ok('get_item', { id: created.id })).created_by, 'tester', 'the running node has the write at once')
  t.alike(JSON.parse((await cli(['feature', 'list', '--json', ...base], { env })).stdout).items.map((i: { title: string }) => i.title).sort(), ['from the cli', 'held by mcp'])
  const refused = await cli(['claim', held.id, ...base], { env })
  t.is(refused.code, 2)
  t.ok(/claude.*\(CLAIMED\)/.test(refused.stderr), refused.stderr.trim())
  const who = JSON.parse((await cli(['who', '--json', ...base], { env })).stdout)
  t.alike(who.sessions.map((s: { session_id: string, claims: string[] }) => [s.session_id, s.claims]), [['mcp-1', [held.id]]])
  const slots = readdirSync(join(home, 'data', 'rooms', readdirSync(join(home, 'data', 'rooms'))[0])).filter(n => /^\d+$/.test(n))
  t.alike(slots, ['0'], 'the CLI opened no storage of its own')
})

test('serve --pool: the gateway serves its API on a unix socket too, and commands use it', { timeout: 180_000 }, async (t) => {
  const home = await t.tmp()
  const env = { CROSSCAST_HOME: home }
  const serve = spawn(process.execPath, ['--import', TSX, CLI, 'serve', '--pool', '--room', 'served', '--port', '0', '--no-swarm', '--no-lan', '--log-level', 'warn'], { env: { ...process.env, ...env }, stdio: 'ignore' })
  const exited = new Promise(resolve => serve.once('exit', resolve))
  t.teardown(async () => { if (serve.exitCode === null) { process.kill(serve.pid!, 'SIGKILL'); await exited } })
  let node: NodeInfo | undefined
  for (let i = 0; i < 600 && node === undefined; i++) {
    node = liveNodes('served', env)[0]
    if (node === undefined) await new Promise(resolve => setTimeout(resolve, 50))
  }
  t.is(node?.kind, 'serve', 'serve --pool announces itself in its slot')
  const base = ['--room', 'served', '--agent', 'tester', '--no-swarm', '--no-lan']
  const created = JSON.parse((await cli(['feature', 'create', 'through serve', '--json', ...base], { env })).stdout)
  // The REST API itself on the socket, as on TCP.
  const rest = await new Promise<{ features: Array<{ id: string }> }>((resolve, reject) => {
    request({ socketPath: node!.socket, path: '/api/features', headers: { host: 'localhost' } }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve(JSON.parse(body)))
    }).on('error', reject).end()
  })
  t.alike(rest.features.map(f => f.id), [created.id], 'the write is on the running node')
  t.is(statSync(node!.socket).mode & 0o777, 0o600, 'the socket is the user\'s only')
  process.kill(serve.pid!, 'SIGTERM')
  t.is(await exited, 0, 'stops cleanly')
  t.absent(existsSync(node!.socket), 'and removes its socket')
  t.is(liveNodes('served', env).length, 0)
})

test('gateway /api/agents routes: malformed requests are refused with a code, never a 500', { timeout: 60_000 }, async (t) => {
  const { Crosscast } = await import('../lib/index.ts')
  const { createGateway } = await import('../lib/gateway/index.ts')
  const cc = await Crosscast.open({ storage: await t.tmp(), swarm: false, lan: false })
  const gw = await createGateway(cc, { port: 0 })
  t.teardown(async () => { await gw.close(); await cc.close() })
  const headers = { 'content-type': 'application/json', 'x-agent-id': 'a', 'x-session-id': 's' }
  const cases: Array<[string, RequestInit, number, string]> = [
    ['create_item', { headers, body: '[1,2]' }, 400, 'INVALID_FIELD'],
    ['create_item', { headers, body: '"text"' }, 400, 'INVALID_FIELD'],
    ['create_item', { headers, body: '{"kind":"feature","title":"x"' }, 400, ''],
    ['create_item', { headers: { 'content-type': 'application/json' }, body: '{"kind":"feature","title":"x"}' }, 400, 'INVALID_HEADER'],
    ['get_item', { headers, body: '{"id":{"$ne":1}}' }, 400, 'INVALID_FIELD'],
    ['get_item', { headers, body: '{"id":"feat-"}' }, 400, 'INVALID_ID'],
    ['changes', { headers, body: '{"since":-1}' }, 400, 'INVALID_CURSOR'],
    ['list_items', { headers, body: '{"limit":1e9}' }, 400, 'INVALID_FIELD'],
    ['nope', { headers, body: '{}' }, 404, 'NOT_FOUND']
  ]
  for (const [op, init, status, code] of cases) {
    const res = await fetch(`${gw.url}/api/agents/${op}`, { method: 'POST', ...init })
    const body = await res.json() as { code: string }
    t.is(res.status, status, `${op} ${String(init.body)} -> ${status}`)
    if (code !== '') t.is(body.code, code)
  }
  const ok = await fetch(`${gw.url}/api/agents/create_item`, { method: 'POST', headers, body: '{"kind":"spike","title":"over tcp"}' })
  t.is(ok.status, 200)
  t.is((await cc.spikes.list())[0].title, 'over tcp')
})

test('cli: with no running node here, a write waits until a peer has it', { timeout: 180_000 }, async (t) => {
  const { bootstrap } = await createTestnet(t)
  const net = ['--room', 'far-room', '--secret', 'far-secret', '--no-lan', ...bootstrap.flatMap(b => ['--bootstrap', `${b.host}:${b.port}`])]
  // The peer runs under another data directory: to the CLI it is another machine.
  const m = await spawnMcp(t, { args: [...net, '--agent', 'claude'], env: { CROSSCAST_HOME: await t.tmp() } })
  const home = await t.tmp()
  // A loaded machine may take more than the default 3 s to connect: the test waits for the peer, not the clock.
  const out = await cli(['feature', 'create', 'from afar', '--json', '--agent', 'tester', ...net], { env: { CROSSCAST_HOME: home, CROSSCAST_SYNC_TIMEOUT_MS: '60000' } })
  const created = JSON.parse(out.stdout)
  // The command returns once the peer's log holds the block; the peer projects it into SQLite a moment later.
  let item: { title?: string } | undefined
  for (let i = 0; i < 100 && item === undefined; i++) {
    item = await m.ok('get_item', { id: created.id }).catch(() => undefined)
    if (item === undefined) await new Promise(resolve => setTimeout(resolve, 20))
  }
  t.is(item?.title, 'from afar', 'the peer has the write when the command returns (readable there within 2 s)')
  t.is(readdirSync(join(home, 'data', 'rooms')).length, 1, 'the command opened a node in its own pool')
})

test('hook: what other sessions changed since this session last looked, nothing when nothing changed', { timeout: 180_000 }, async (t) => {
  const home = await t.tmp()
  const env = { CROSSCAST_HOME: home }
  const other = await openInPool({ room: 'hook-room', sessionId: 'other', agent: 'codex', swarm: false, lan: false }, env)
  await other.features.create('before first look').save()
  const hook = (input = ''): Promise<{ stdout: string }> => cli(['hook', '--room', 'hook-room'], { env: { ...env, CROSSCAST_SESSION: 'me' }, input })
  const first = await hook()
  t.ok(/1 todo features/.test(first.stdout), `first look: the board in one line (${first.stdout.trim()})`)
  t.is((await hook()).stdout, '', 'nothing changed: nothing printed')
  const f = await other.features.create('Parser rewrite').save()
  f.status = 'in_progress'
  await f.save()
  const mine = await other.session({ sessionId: 'me', agent: 'claude' })
  await mine.features.create('my own').save()
  const summary = (await hook()).stdout
  t.ok(summary.includes(`${f.id} "Parser rewrite"`), summary)
  t.ok(summary.includes('todo -> in_progress') && summary.includes('codex/other'), 'what changed and who')
  t.absent(summary.includes('my own'), 'this session\'s own changes are left out')
  t.is((await hook()).stdout, '')
  await other.features.create('after a tool call').save()
  const post = JSON.parse((await hook(JSON.stringify({ session_id: 'x', hook_event_name: 'PostToolUse' }))).stdout)
  t.ok(post.hookSpecificOutput.additionalContext.includes('after a tool call'), 'PostToolUse gets it as additional context')
  await other.close()
})

test('setup claude: writes the MCP entry and hooks once, showing what changed', { timeout: 60_000 }, async (t) => {
  const repo = await project(t, null)
  writeFileSync(join(repo, '.mcp.json'), JSON.stringify({ mcpServers: { other: { command: 'x' } } }))
  const first = JSON.parse((await cli(['setup', 'claude', '--json'], { cwd: repo })).stdout)
  t.alike(first.changes.map((c: { action: string }) => c.action), ['added', 'added', 'added', 'added'])
  const mcp = JSON.parse(readFileSync(join(repo, '.mcp.json'), 'utf8'))
  t.alike(mcp.mcpServers.crosscast, { type: 'stdio', command: 'crosscast', args: ['mcp'], env: { CROSSCAST_AGENT: 'claude' } })
  t.ok(mcp.mcpServers.other !== undefined, 'other servers kept')
  const settings = JSON.parse(readFileSync(join(repo, '.claude', 'settings.json'), 'utf8'))
  t.alike(Object.keys(settings.hooks), ['SessionStart', 'UserPromptSubmit', 'PostToolUse'])
  t.is(settings.hooks.SessionStart[0].hooks[0].command, 'crosscast hook')
  const second = await cli(['setup', 'claude'], { cwd: repo })
  t.is(second.stdout.trim().split('\n').filter(l => l.startsWith('unchanged')).length, 4, 'idempotent')
  t.alike(JSON.parse(readFileSync(join(repo, '.claude', 'settings.json'), 'utf8')), settings)
})
