import test, { type Assert } from 'brittle'
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'
import { fileURLToPath } from 'node:url'
import { Crosscast, contentHash } from '../lib/index.ts'

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
  const tail = spawn(process.execPath, ['--import', 'tsx', CLI, 'tail', '--storage', storage, '--json', '--interval', '20'], { stdio: ['ignore', 'pipe', 'inherit'] })
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
  t.ok(lines.length > 0 && lines.every(e => e.event_type === 'feature_created' && e.payload.title.startsWith('tailed')), `tail printed ${lines.length} new events and nothing older`)
  const exited = new Promise(resolve => tail.once('exit', (code) => resolve(code)))
  tail.kill('SIGINT')
  t.is(await exited, 0, 'tail exits cleanly on SIGINT')
})
