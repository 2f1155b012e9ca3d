// `crosscast mcp` driven by the MCP SDK's own client over stdio, as separate
// processes: every tool, each error path, resources and notifications, and two
// servers of one project on a loopback testnet.
import test, { type Assert } from 'brittle'
import { mkdirSync, writeFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import { spawnMcp } from './helpers/mcp.ts'
import { createTestnet } from './helpers/testnet.ts'

const TOOLS: Record<string, string[]> = {
  create_item: ['kind', 'title', 'status', 'description', 'priority', 'track_id', 'findings'],
  update_item: ['id', 'title', 'description', 'status', 'priority', 'track_id', 'findings', 'if_version'],
  set_status: ['id', 'status'],
  link_items: ['id', 'linked_id', 'link_type'],
  comment: ['id', 'text'],
  delete_item: ['id'],
  get_item: ['id'],
  list_items: ['kind', 'status', 'track_id', 'claimed_by', 'limit'],
  ready: ['limit'],
  claim: ['id', 'ttl_s'],
  release: ['id'],
  changes: ['since', 'limit', 'include_own'],
  who: []
}

async function offline (t: Assert): Promise<Awaited<ReturnType<typeof spawnMcp>>> {
  const home = await t.tmp()
  return await spawnMcp(t, { args: ['--room', 'mcp-test', '--agent', 'claude', '--session', 'sess-a', '--no-swarm', '--no-lan'], env: { CROSSCAST_HOME: home } })
}

test('mcp: the tools of the issue, with exactly its argument names', { timeout: 60_000 }, async (t) => {
  const m = await offline(t)
  const { tools } = await m.client.listTools()
  const listed = Object.fromEntries(tools.map(tool => [tool.name, Object.keys((tool.inputSchema as { properties?: object }).properties ?? {})]))
  t.alike(listed, TOOLS, 'names and arguments')
  t.alike((tools.find(x => x.name === 'create_item')!.inputSchema as { required: string[] }).required, ['kind', 'title'])
})

test('mcp: every work-item tool, end to end', { timeout: 60_000 }, async (t) => {
  const m = await offline(t)
  const track = await m.ok('create_item', { kind: 'track', title: 'Auth', description: 'login work' })
  t.ok(/^trk-[0-9a-z]{16}$/.test(track.id))
  t.is(track.event_ids.length, 1)
  t.is(track.version, track.event_ids[0], 'version is the last event id')
  const a = await m.ok('create_item', { kind: 'feature', title: 'Login form', priority: 'high', track_id: track.id, description: 'email + password' })
  const b = await m.ok('create_item', { kind: 'feature', title: 'Session store', status: 'in_progress' })
  const spike = await m.ok('create_item', { kind: 'spike', title: 'Which KDF?', findings: 'argon2id' })

  const updated = await m.ok('update_item', { id: a.id, title: 'Login form v2', if_version: a.version })
  t.not(updated.version, a.version, 'a write moves the version')
  await m.ok('update_item', { id: spike.id, findings: 'argon2id, m=64MiB' })
  await m.ok('set_status', { id: a.id, status: 'in_progress' })
  await m.ok('link_items', { id: a.id, linked_id: b.id, link_type: 'depends_on' })
  await m.ok('comment', { id: a.id, text: 'started on the form' })
  await m.ok('comment', { id: track.id, text: 'track note' })

  const item = await m.ok('get_item', { id: a.id })
  t.is(item.title, 'Login form v2')
  t.is(item.status, 'in_progress')
  t.is(item.priority, 'high')
  t.is(item.track_id, track.id)
  t.alike(item.links.map((l: { linked_feature_id: string, link_type: string }) => [l.linked_feature_id, l.link_type]), [[b.id, 'depends_on']])
  t.alike(item.comments.map((c: { text: string, author: string }) => [c.text, c.author]), [['started on the form', 'claude']])
  t.ok(typeof item.version === 'string')
  t.is((await m.ok('get_item', { id: spike.id })).findings, 'argon2id, m=64MiB')

  t.is((await m.ok('list_items', {})).count, 4)
  t.alike((await m.ok('list_items', { kind: 'feature', status: 'in_progress' })).items.map((i: { id: string }) => i.id).sort(), [a.id, b.id].sort())
  t.alike((await m.ok('list_items', { track_id: track.id })).items.map((i: { id: string }) => i.id), [a.id])
  t.is((await m.ok('list_items', { kind: 'spike' })).items[0].id, spike.id)
  t.is((await m.ok('list_items', { limit: 1 })).items.length, 1)

  const stale = await m.call('update_item', { id: a.id, status: 'done', if_version: a.version })
  t.ok(stale.isError, 'a stale if_version is refused')
  t.is(stale.body.code, 'CONFLICT')
  t.is(stale.body.current.id, a.id, 'with the current item')
  t.is(stale.body.current.status, 'in_progress', 'and nothing changed')

  const own = await m.ok('changes', { include_own: true })
  t.is(own.events[0].event_type, 'track_updated')
  t.is(own.more, false)
  t.is((await m.ok('changes', {})).events.length, 0, 'by default a session does not see its own events')
  const page = await m.ok('changes', { since: 0, limit: 2, include_own: true })
  t.is(page.events.length, 2)
  t.is(page.more, true)
  const next = await m.ok('changes', { since: page.cursor, limit: 2, include_own: true })
  t.is(next.events[0].cursor, page.events[1].cursor + 1, 'the next page starts after the cursor')

  // ready: todo, dependencies done, unclaimed; by priority then age.
  const c1 = await m.ok('create_item', { kind: 'feature', title: 'low one', priority: 'low' })
  const c2 = await m.ok('create_item', { kind: 'feature', title: 'critical one', priority: 'critical' })
  const blocked = await m.ok('create_item', { kind: 'feature', title: 'waits for c1' })
  await m.ok('link_items', { id: blocked.id, linked_id: c1.id, link_type: 'depends_on' })
  t.alike((await m.ok('ready', {})).items.map((i: { id: string }) => i.id), [c2.id, c1.id], 'ready: by priority, without the one whose dependency is not done')
  const claimed = await m.ok('claim', { id: c2.id, ttl_s: 60 })
  t.is(claimed.won, true)
  t.is(claimed.holder.session_id, 'sess-a')
  t.ok(typeof claimed.expires_at === 'string')
  t.alike((await m.ok('ready', { limit: 5 })).items.map((i: { id: string }) => i.id), [c1.id], 'a claimed feature is not ready')
  t.is((await m.ok('get_item', { id: c2.id })).claim.session_id, 'sess-a', 'get_item carries the claim')
  t.alike((await m.ok('list_items', { claimed_by: 'claude' })).items.map((i: { id: string }) => i.id), [c2.id], 'list_items by claimer (agent)')
  t.alike((await m.ok('list_items', { claimed_by: 'sess-a' })).items.map((i: { id: string }) => i.id), [c2.id], 'list_items by claimer (session)')
  await m.ok('set_status', { id: c1.id, status: 'done' })
  t.alike((await m.ok('ready', {})).items.map((i: { id: string }) => i.id), [blocked.id], 'its dependency done, the blocked one is ready')
  const released = await m.ok('release', { id: c2.id })
  t.is(released.released, true)
  t.is((await m.ok('get_item', { id: c2.id })).claim, null)
  const who = await m.ok('who', {})
  t.alike(who.sessions.map((s: { agent_id: string, session_id: string, self: boolean }) => [s.agent_id, s.session_id, s.self]), [['claude', 'sess-a', true]], 'who: this session')

  const deleted = await m.ok('delete_item', { id: b.id })
  t.is(deleted.deleted, true)
  t.is((await m.call('get_item', { id: b.id })).body.code, 'NOT_FOUND')
})

test('mcp: errors are tool errors carrying crosscast\'s code and message', { timeout: 60_000 }, async (t) => {
  const m = await offline(t)
  const f = await m.ok('create_item', { kind: 'feature', title: 'x' })
  const track = await m.ok('create_item', { kind: 'track', title: 't' })
  const cases: Array<[string, Record<string, unknown>, string, string?]> = [
    ['create_item', { kind: 'feature' }, 'MISSING_FIELD', 'title'],
    ['create_item', { kind: 'epic', title: 'x' }, 'INVALID_FIELD', 'kind'],
    ['create_item', { kind: 'feature', title: 'x', status: 'later' }, 'INVALID_STATUS', 'status'],
    ['create_item', { kind: 'feature', title: 'x', priority: 'urgent' }, 'INVALID_FIELD', 'priority'],
    ['create_item', { kind: 'track', title: 'x', status: 'todo' }, 'INVALID_FIELD', 'status'],
    ['create_item', { kind: 'feature', title: 'x', colour: 'red' }, 'INVALID_FIELD', 'colour'],
    ['create_item', { kind: 'feature', title: 42 }, 'INVALID_FIELD', 'title'],
    ['update_item', { id: 'feat-no spaces' }, 'INVALID_ID', 'id'],
    ['update_item', { id: 'feat-00000000', title: 'y' }, 'NOT_FOUND', 'id'],
    ['set_status', { id: f.id, status: 'finished' }, 'INVALID_STATUS', 'status'],
    ['set_status', { id: track.id, status: 'done' }, 'INVALID_ID', 'id'],
    ['link_items', { id: f.id, linked_id: f.id, link_type: 'parent' }, 'INVALID_LINK_TYPE', 'link_type'],
    ['link_items', { id: f.id, linked_id: 'feat-00000000', link_type: 'blocks' }, 'NOT_FOUND', 'linked_id'],
    ['comment', { id: 'spk-00000000', text: 'hi' }, 'NOT_FOUND', 'id'],
    ['comment', { id: f.id }, 'MISSING_FIELD', 'text'],
    ['delete_item', { id: track.id }, 'INVALID_ID', 'id'],
    ['get_item', {}, 'MISSING_FIELD', 'id'],
    ['list_items', { limit: 0 }, 'INVALID_FIELD', 'limit'],
    ['list_items', { kind: 'track', status: 'todo' }, 'INVALID_FIELD', 'status'],
    ['changes', { since: 'yesterday' }, 'INVALID_CURSOR', 'since'],
    ['changes', { include_own: 'yes' }, 'INVALID_FIELD', 'include_own'],
    ['claim', { id: 'feat-00000000' }, 'NOT_FOUND', 'id'],
    ['claim', { id: f.id, ttl_s: 0 }, 'INVALID_FIELD', 'ttl_s'],
    ['release', { id: 'x' }, 'INVALID_ID', 'id'],
    ['ready', { limit: 'many' }, 'INVALID_FIELD', 'limit'],
    ['who', { everyone: true }, 'INVALID_FIELD', 'everyone']
  ]
  for (const [tool, args, code, field] of cases) {
    const res = await m.call(tool, args)
    t.ok(res.isError, `${tool} ${JSON.stringify(args)} is a tool error`)
    t.is(res.body.code, code, `${tool} ${JSON.stringify(args)} -> ${code}`)
    if (field !== undefined) t.is(res.body.field, field)
    t.ok(typeof res.body.message === 'string' && res.body.message.length > 0)
  }
  t.is((await m.ok('get_item', { id: f.id })).title, 'x', 'nothing refused was stored')
  t.is((await m.ok('list_items', {})).count, 2)
})

test('mcp: the board and items are resources; a subscribed item notifies on change', { timeout: 60_000 }, async (t) => {
  const m = await offline(t)
  const f = await m.ok('create_item', { kind: 'feature', title: 'watched' })
  const { resources } = await m.client.listResources()
  t.ok(resources.some(r => r.uri === 'crosscast://board'))
  t.ok(resources.some(r => r.uri === `crosscast://items/${f.id}`))
  const board = JSON.parse(((await m.client.readResource({ uri: 'crosscast://board' })).contents[0] as { text: string }).text)
  t.is(board.items[0].id, f.id)
  const item = JSON.parse(((await m.client.readResource({ uri: `crosscast://items/${f.id}` })).contents[0] as { text: string }).text)
  t.is(item.title, 'watched')

  const updated: string[] = []
  m.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => { updated.push(n.params.uri) })
  await m.client.subscribeResource({ uri: `crosscast://items/${f.id}` })
  await m.ok('set_status', { id: f.id, status: 'done' })
  for (let i = 0; i < 100 && !updated.includes(`crosscast://items/${f.id}`); i++) await new Promise(resolve => setTimeout(resolve, 20))
  t.ok(updated.includes(`crosscast://items/${f.id}`), 'resources/updated for the subscribed item')
  t.absent(updated.includes('crosscast://board'), 'not for the unsubscribed board')
})

test('mcp: two sessions of one project on a loopback testnet see each other\'s items through changes within 2 s', { timeout: 120_000 }, async (t) => {
  const { bootstrap } = await createTestnet(t)
  const home = await t.tmp()
  // A project with a git remote: both sessions derive the same room and share this machine's key.
  const project = await t.tmp()
  mkdirSync(join(project, '.git'))
  writeFileSync(join(project, '.git', 'config'), '[remote "origin"]\n\turl = git@github.com:example/shared-board.git\n')
  const args = ['--no-lan', ...bootstrap.flatMap(b => ['--bootstrap', `${b.host}:${b.port}`])]
  const env = { CROSSCAST_HOME: home }
  const a = await spawnMcp(t, { args: [...args, '--agent', 'claude'], env, cwd: project })
  const b = await spawnMcp(t, { args: [...args, '--agent', 'codex'], env, cwd: project })

  // First contact includes discovery; after that, every item must arrive within 2 s.
  const seen = async (id: string, deadlineMs: number): Promise<number | null> => {
    const started = Date.now()
    while (Date.now() - started < deadlineMs) {
      const res = await b.ok('changes', {})
      if (res.events.some((e: { resource_id: string }) => e.resource_id === id)) return Date.now() - started
      await new Promise(resolve => setTimeout(resolve, 25))
    }
    return null
  }
  const first = await a.ok('create_item', { kind: 'feature', title: 'first contact' })
  t.ok((await seen(first.id, 60_000)) !== null, 'B sees A once they have found each other')
  for (let i = 0; i < 3; i++) {
    const created = await a.ok('create_item', { kind: 'feature', title: `live ${i}` })
    const ms = await seen(created.id, 2000)
    t.ok(ms !== null, `create_item on A visible in changes on B within 2 s (${String(ms)} ms)`)
  }
  // Claims and presence across the two processes.
  const contested = await a.ok('create_item', { kind: 'feature', title: 'contested' })
  t.ok((await seen(contested.id, 2000)) !== null)
  t.is((await a.ok('claim', { id: contested.id })).won, true)
  let refused: { isError: boolean, body: any } | null = null
  for (let i = 0; i < 200; i++) {
    refused = await b.call('claim', { id: contested.id })
    if (refused.isError) break
    await b.ok('release', { id: contested.id })
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  t.is(refused?.body.code, 'CLAIMED', 'B is refused the item A holds')
  t.ok(/claude/.test(refused?.body.message), `the refusal names the holder: ${String(refused?.body.message)}`)
  let others: Array<{ agent_id: string, claims: string[] }> = []
  for (let i = 0; i < 200 && !others.some(s => s.agent_id === 'claude' && s.claims.includes(contested.id)); i++) {
    others = (await b.ok('who', {})).sessions
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  t.ok(others.some(s => s.agent_id === 'claude' && s.claims.includes(contested.id)), 'who on B shows A\'s session and what it holds')
  t.ok(others.some(s => s.agent_id === 'codex'), 'and B itself')

  const fromB = await b.ok('changes', { include_own: true, since: 0 })
  t.ok(fromB.events.filter((e: { event_type: string }) => e.event_type === 'feature_created').every((e: { agent_id: string }) => e.agent_id === 'claude'), 'events carry the writer\'s agent')
  const item = await b.ok('get_item', { id: first.id })
  t.is(item.created_by, 'claude')

  const rooms = readdirSync(join(home, 'data', 'rooms'))
  t.is(rooms.length, 1, 'one room')
  t.alike(readdirSync(join(home, 'data', 'rooms', rooms[0])).filter(n => /^\d+$/.test(n)).sort(), ['0', '1'], 'each session took its own slot of the pool')
  t.is(readdirSync(join(home, 'config', 'keys')).length, 1, 'the first session created the room key in the config directory, the second used it')
  t.absent(/STORAGE_LOCKED/.test(a.stderr() + b.stderr()))
})
