// `crosscast serve` as a child process, driven by the seed's own curl commands.
import test from 'brittle'
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { join } from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import { spawnServe, post, get, openWs, ROOT } from './helpers/gateway.ts'

const run = promisify(execFile)

/** The seed's three curl commands, verbatim except the feature ids and the port. */
function seedCurls (port: number, feature: string, other: string): string[] {
  return [
    `curl -X POST http://localhost:8000/api/broadcast/features/feat-123 \\
  -H "X-Agent-ID: claude-1" \\
  -H "X-Session-ID: sess-1" \\
  -H "Content-Type: application/json" \\
  -d '{
    "title": "Updated Title",
    "status": "in_progress",
    "description": "New description"
  }'`,
    `curl -X POST http://localhost:8000/api/broadcast/features/feat-123/status \\
  -H "X-Agent-ID: claude-1" \\
  -H "X-Session-ID: sess-1" \\
  -H "Content-Type: application/json" \\
  -d '{"new_status": "done"}'`,
    `curl -X POST http://localhost:8000/api/broadcast/features/feat-123/links \\
  -H "X-Agent-ID: claude-1" \\
  -H "X-Session-ID: sess-1" \\
  -H "Content-Type: application/json" \\
  -d '{
    "linked_feature_id": "feat-456",
    "link_type": "depends_on"
  }'`
  ].map(cmd => cmd.replaceAll('localhost:8000', `localhost:${port}`).replaceAll('feat-123', feature).replaceAll('feat-456', other))
}

test('the seed curl commands against crosscast serve, then the seed audit query', async (t) => {
  await run('which', ['curl']).catch(() => { throw new Error('curl is required for this test (apt-get install curl)') })
  const storage = await t.tmp()
  const serve = await spawnServe(t, ['--port', '0', '--storage', storage, '--no-swarm', '--no-lan'])
  const port = Number(new URL(serve.url).port)
  t.ok(serve.lines.every(l => typeof l === 'object'), 'logs are JSON lines when stdout is not a terminal')

  const watcher = await openWs(t, serve.url)
  watcher.send('subscribe')
  await watcher.waitFor(f => f.type === 'subscribed')

  const headers = { 'x-agent-id': 'claude-1', 'x-session-id': 'sess-1' }
  const feature = (await post(serve.url, '/api/broadcast/features', { title: 'User Authentication' }, headers)).body.feature_id
  const other = (await post(serve.url, '/api/broadcast/features', { title: 'Sessions' }, headers)).body.feature_id

  const responses = []
  for (const cmd of seedCurls(port, feature, other)) {
    const { stdout } = await run('bash', ['-c', cmd + ' --silent --show-error'])
    responses.push(JSON.parse(stdout))
  }
  for (const r of responses) {
    t.is(r.success, true)
    t.is(r.feature_id, feature)
    t.is(r.clients_notified, 1, 'the one WebSocket client was notified')
    t.ok(typeof r.event_id === 'string' && typeof r.timestamp === 'string')
  }
  const f = await get(serve.url, `/api/features/${feature}`)
  t.is(f.body.title, 'Updated Title')
  t.is(f.body.status, 'done')
  t.is(f.body.description, 'New description')
  t.alike(f.body.links.map((l: { linked_feature_id: string, link_type: string }) => [l.linked_feature_id, l.link_type]), [[other, 'depends_on']])
  const seen = await watcher.waitForEvents(6)
  t.alike(seen.map(e => e.event_type), ['feature_created', 'feature_created', 'feature_updated', 'status_changed', 'status_changed', 'link_added'])

  serve.child.kill('SIGTERM')
  t.is(await serve.exited, 0, 'SIGTERM: exits 0')
  t.ok(serve.lines.some(l => l.msg === 'stopped'), 'logged its shutdown')

  // The seed's audit-trail query, verbatim, on the storage's database.
  const db = new BetterSqlite3(join(storage, 'crosscast.db'), { readonly: true })
  t.teardown(() => db.close())
  const rows = db.prepare(`SELECT
    event_id, agent_id, event_type,
    resource_id, timestamp
FROM broadcast_events
ORDER BY timestamp DESC
LIMIT 100;`).all() as Array<{ event_id: string, agent_id: string, event_type: string, resource_id: string }>
  t.is(rows.length, 6)
  for (const r of responses) t.ok(rows.some(row => row.event_id === r.event_id && row.agent_id === 'claude-1' && row.resource_id === feature), `audit trail holds ${r.event_id}`)
  t.alike(rows.filter(r => r.resource_id === feature).map(r => r.event_type).sort(), ['feature_created', 'feature_updated', 'link_added', 'status_changed', 'status_changed'])
})

test('SIGINT stops serve cleanly too', async (t) => {
  const serve = await spawnServe(t, ['--port', '0', '--storage', await t.tmp(), '--no-swarm', '--no-lan', '--log-level', 'debug'])
  t.is((await get(serve.url, '/healthz')).status, 200)
  serve.child.kill('SIGINT')
  t.is(await serve.exited, 0)
})

test('serve refuses a non-loopback host without a token', async (t) => {
  const storage = await t.tmp()
  const child = spawn(process.execPath, ['--import', 'tsx', 'lib/cli/main.ts', 'serve', '--host', '0.0.0.0', '--port', '0', '--storage', storage, '--no-swarm', '--no-lan'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number | null>(resolve => child.once('exit', resolve))
  t.not(code, 0, 'exits with an error')
  t.ok(/without a token/.test(stderr) && /INVALID_OPTION/.test(stderr), `a clear message: ${stderr.trim()}`)
})

test('serve with --token requires it', async (t) => {
  const serve = await spawnServe(t, ['--port', '0', '--storage', await t.tmp(), '--no-swarm', '--no-lan', '--token', 'cli-token'])
  t.is((await get(serve.url, '/healthz')).status, 401)
  t.is((await get(serve.url, '/healthz', { authorization: 'Bearer cli-token' })).status, 200)
  t.absent(serve.lines.some(l => JSON.stringify(l).includes('cli-token')), 'the token is never logged')
})
