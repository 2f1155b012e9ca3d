import test from 'brittle'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Crosscast } from '../lib/index.ts'
import { decodeBlock } from '../lib/events/codec.ts'

const WRITER = fileURLToPath(new URL('./fixtures/burst-writer.ts', import.meta.url))

test('a writer SIGKILLed mid-burst loses no acknowledged event and duplicates none', async (t) => {
  const storage = await t.tmp()
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, storage], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const acked: string[] = []
  let buffered = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the writer did not acknowledge 3,000 events in 60 s')), 60_000)
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      const lines = buffered.split('\n')
      buffered = lines.pop() ?? ''
      for (const line of lines) if (line.startsWith('ack ')) acked.push(line.slice(4))
      if (acked.length >= 3000) {
        clearTimeout(timer)
        child.kill('SIGKILL') // in the middle of the burst: more saves are in flight
        resolve()
      }
    })
    child.on('exit', () => { clearTimeout(timer); resolve() })
  })
  await new Promise(resolve => child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve))
  t.is(child.signalCode, 'SIGKILL', 'the writer was killed, not finished')

  const cc = await Crosscast.open({ storage, agent: 'claude', sessionId: 'sess-crash', swarm: false, lan: false })
  t.teardown(() => cc.close())
  const count = cc.db.prepare('SELECT count(*) AS n FROM broadcast_events WHERE event_id = ?')
  const missing = acked.filter(id => (count.get(id) as { n: number }).n !== 1)
  t.is(missing.length, 0, `all ${acked.length} acknowledged events are present exactly once`)

  // Everything in the log is projected once, the checkpoint is at the log's end, and state agrees with events.
  const writer = cc.status().writers.find(w => w.sessionId === 'sess-crash')
  t.ok(writer !== undefined)
  t.is(writer?.indexed, writer?.length, 'checkpoint equals the log length')
  const core = (cc as unknown as { feeds: Map<string, { core: { get (i: number): Promise<Buffer> } }> }).feeds.get(writer!.key)!.core
  let inLog = 0
  for (let i = 0; i < writer!.length; i++) inLog += decodeBlock(await core.get(i)).events.length
  const total = (cc.db.prepare('SELECT count(*) AS n FROM broadcast_events').get() as { n: number }).n
  t.is(total, inLog, `every event in the log (${inLog}) is projected once`)
  t.ok(total >= acked.length, 'unacknowledged events that reached the log are kept too')
  const features = (cc.db.prepare('SELECT count(*) AS n FROM features').get() as { n: number }).n
  t.is(features, total, 'one feature row per feature_created event')
  const distinct = (cc.db.prepare('SELECT count(DISTINCT seq || \':\' || idx) AS n FROM broadcast_events').get() as { n: number }).n
  t.is(distinct, total, 'no position projected twice')

  const f = await cc.features.create('after the crash').save()
  t.is(f.lastEvents[0].seq, writer!.length, 'the log continues after the crash')
})
