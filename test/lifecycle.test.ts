import test from 'brittle'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Crosscast, CrosscastError } from '../lib/index.ts'
import { createTestnet } from './helpers/testnet.ts'

const SCRIPT = fileURLToPath(new URL('./fixtures/open-close.ts', import.meta.url))

test('a script that opens a networked node and closes it exits by itself', { timeout: 60_000 }, async (t) => {
  const { bootstrap } = await createTestnet(t)
  const storage = await t.tmp()
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, storage, `${bootstrap[0].host}:${bootstrap[0].port}`], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const code = await new Promise<number | null>(resolve => child.once('exit', (c) => resolve(c)))
  clearTimeout(killer)
  t.is(out.trim(), 'closed')
  t.is(code, 0, 'exited on its own with code 0 (not killed after 30 s)')
})

test('close() is idempotent and later calls fail with CLOSED, not a crash', async (t) => {
  const cc = await Crosscast.open({ storage: await t.tmp(), swarm: false, lan: false })
  const f = await cc.features.create('x').save()
  await Promise.all([cc.close(), cc.close()])
  await cc.close()
  t.ok(cc.closed)
  try {
    await cc.features.create('after close').save()
    t.fail('wrote after close')
  } catch (err) {
    t.is((err as CrosscastError).code, 'CLOSED')
  }
  try {
    f.status = 'done'
    await f.save()
    t.fail('saved after close')
  } catch (err) {
    t.is((err as CrosscastError).code, 'CLOSED')
  }
  await t.exception(cc.session({ sessionId: 'other' }), /closed/)
})

test('open() never waits on the network: an unreachable bootstrap still opens at once and works offline', async (t) => {
  const started = Date.now()
  // A loopback port nobody listens on: discovery can never succeed.
  const cc = await Crosscast.open({ storage: await t.tmp(), lan: false, bootstrap: ['127.0.0.1:9'] })
  t.teardown(() => cc.close())
  t.ok(Date.now() - started < 3000, `opened in ${Date.now() - started} ms`)
  const f = await cc.features.create('offline write').save()
  t.is((await cc.features.get(f.id))?.title, 'offline write')
  t.is(cc.status().peers.length, 0)
})
