import test from 'brittle'
import { CrosscastError, ERROR_CODES, type ErrorCode } from '../lib/index.ts'
import { encodeBlock, decodeBlock, COMPRESS_THRESHOLD } from '../lib/events/codec.ts'
import { HybridLogicalClock, hlcToIso } from '../lib/events/hlc.ts'
import { eventIdOf } from '../lib/events/ids.ts'
import type { WireEvent } from '../lib/events/types.ts'
import { isResourceId, validateId, resourceTypeOf } from '../lib/events/validate.ts'
import { openNode, countEvents } from './helpers/node.ts'

async function rejects (t: any, promise: Promise<unknown> | (() => unknown), code: ErrorCode, field: string | RegExp): Promise<CrosscastError | null> {
  try {
    if (typeof promise === 'function') promise()
    else await promise
  } catch (err) {
    t.ok(err instanceof CrosscastError, `a CrosscastError (${(err as Error).message})`)
    t.is((err as CrosscastError).code, code, `code ${code}`)
    if (typeof field === 'string') t.is((err as CrosscastError).field, field, `names ${field}`)
    else t.ok(field.test((err as Error).message), `message ${(err as Error).message} matches ${field}`)
    return err as CrosscastError
  }
  t.fail(`expected ${code}`)
  return null
}

test('every validation error code is thrown before anything is written, and names the field and allowed values', async (t) => {
  const cc = await openNode(t, { maxPayloadBytes: 2048 })
  const f = await cc.features.create('Existing').save()
  const before = countEvents(cc)

  const badType = await rejects(t, cc.append([{ event_type: 'feature_exploded' as never, resource_id: f.id, payload: {} as never }]), 'INVALID_EVENT_TYPE', 'event_type')
  t.ok(badType?.message.includes('feature_created'), 'lists the allowed event types')
  const badStatus = await rejects(t, cc.append([{ event_type: 'status_changed', resource_id: f.id, payload: { old_status: 'todo', new_status: 'finished' as never } }]), 'INVALID_STATUS', 'payload.new_status')
  t.alike(badStatus?.allowed, ['todo', 'in_progress', 'blocked', 'done'], 'allowed statuses')
  await rejects(t, () => cc.features.create('x').setStatus('later' as never), 'INVALID_STATUS', 'status')
  const badLink = await rejects(t, cc.append([{ event_type: 'link_added', resource_id: f.id, payload: { linked_feature_id: 'feat-00000001', link_type: 'likes' as never } }]), 'INVALID_LINK_TYPE', 'payload.link_type')
  t.alike(badLink?.allowed, ['depends_on', 'blocks', 'related'])
  await rejects(t, cc.append([{ event_type: 'feature_updated', resource_id: 'feat-12 3', payload: { title: 'x' } }]), 'INVALID_ID', 'resource_id')
  await rejects(t, cc.append([{ event_type: 'track_updated', resource_id: f.id, payload: { title: 'x' } }]), 'INVALID_ID', 'resource_id')
  await rejects(t, () => f.blocks('feat-X/Y'), 'INVALID_ID', 'linked_feature_id')
  await rejects(t, cc.features.create('').save(), 'MISSING_FIELD', 'payload.title')
  await rejects(t, cc.features.create('   ').save(), 'MISSING_FIELD', 'payload.title')
  await rejects(t, cc.append([{ event_type: 'feature_updated', resource_id: f.id, payload: { title: 42 as never } }]), 'INVALID_FIELD', 'payload.title')
  await rejects(t, cc.append([{ event_type: 'feature_updated', resource_id: f.id, payload: { colour: 'red' } as never }]), 'INVALID_FIELD', 'payload.colour')
  await rejects(t, cc.append([{ event_type: 'feature_updated', resource_id: f.id, payload: { title: 'half an emoji \ud83d' } }]), 'INVALID_FIELD', 'payload.title')
  await rejects(t, cc.append([{ event_type: 'feature_updated', resource_id: f.id, payload: { tags: ['ok', '\udc00'] } }]), 'INVALID_FIELD', 'payload.tags[1]')
  await rejects(t, cc.append([{ event_type: 'feature_updated', resource_id: f.id, payload: { description: 'x'.repeat(3000) } }]), 'PAYLOAD_TOO_LARGE', 'payload')
  // One bad draft in a batch: none of the batch is written.
  await rejects(t, cc.append([
    { event_type: 'feature_updated', resource_id: f.id, payload: { title: 'fine' } },
    { event_type: 'status_changed', resource_id: f.id, payload: { old_status: 'todo', new_status: 'nope' as never } }
  ]), 'INVALID_STATUS', 'payload.new_status')
  await rejects(t, cc.features.delete('feat-0000abcd'), 'NOT_FOUND', 'id')
  await rejects(t, cc.session({ sessionId: 'bad id with spaces' }), 'INVALID_FIELD', 'sessionId')

  t.is(countEvents(cc), before, 'nothing was written by any failed call')
  t.is((await cc.features.get(f.id))?.title, 'Existing', 'the stored feature is unchanged')
  for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) t.ok(ERROR_CODES[code].status >= 400, `${code} maps to an HTTP error status`)
})

test('open() rejects bad options with INVALID_OPTION naming the option', async (t) => {
  const { Crosscast } = await import('../lib/index.ts')
  const storage = await t.tmp()
  await rejects(t, Crosscast.open({ storage, swarm: false, lan: false, colour: 'red' } as never), 'INVALID_OPTION', 'colour')
  await rejects(t, Crosscast.open({ storage, swarm: false, lan: false, maxPayloadBytes: -1 }), 'INVALID_OPTION', 'maxPayloadBytes')
  await rejects(t, Crosscast.open({ storage, swarm: false, lan: false, writers: ['nothex'] }), 'INVALID_OPTION', 'writers[0]')
  await rejects(t, Crosscast.open({ storage: '', swarm: false, lan: false }), 'INVALID_OPTION', 'storage')
})

const sample: WireEvent[] = [
  { event_type: 'feature_created', resource_id: 'feat-0000beef', agent_id: 'claude', hlc: 1_700_000_000_000_000, parent: null, payload: { title: 'T', status: 'todo' } },
  { event_type: 'status_changed', resource_id: 'feat-0000beef', agent_id: 'copilot', hlc: 1_700_000_000_000_001, parent: 'a'.repeat(32), payload: { old_status: 'todo', new_status: 'done' } },
  { event_type: 'spike_updated', resource_id: 'spk-ffffffff', agent_id: 'claude', hlc: 1_700_000_000_000_002, parent: null, payload: { findings: 'z'.repeat(COMPRESS_THRESHOLD * 4) } }
]

test('codec: round trip, compression of big payloads, compact small events', (t) => {
  const block = encodeBlock('sess-1', sample)
  const decoded = decodeBlock(block)
  t.is(decoded.sessionId, 'sess-1')
  t.alike(decoded.events, sample)
  t.ok(block.byteLength < COMPRESS_THRESHOLD * 2, `a 4 KiB repetitive payload is compressed (${block.byteLength} bytes)`)
  const one = encodeBlock('sess-1', [sample[1]])
  t.ok(one.byteLength <= 120, `a status_changed block is ${one.byteLength} bytes`)
})

test('ids: the seed\'s shape (prefix, dash, a short label) is accepted everywhere; anything else is INVALID_ID', async (t) => {
  for (const id of ['feat-123', 'feat-456', 'feat-auth', 'feat-User_Auth-2', 'feat-0000abcd', `feat-${'a'.repeat(64)}`, 'trk-123', 'spk-x']) t.ok(isResourceId(id), `${id} is an id`)
  for (const id of ['feat-', 'feat--1', 'feat-_1', 'feat-a b', 'feat-a.b', 'feat-é', `feat-${'a'.repeat(65)}`, 'task-1', 'FEAT-1', 'feat_1', 'feat-1\n']) t.absent(isResourceId(id), `${JSON.stringify(id)} is not`)
  const err = await rejects(t, () => validateId('feat-a b', 'id'), 'INVALID_ID', 'id')
  t.ok(err?.message.includes('letters, digits, _ or -'), 'the message states the rule')

  // The seed's SDK examples: set_track("trk-123"), blocked_by("feat-auth").
  const cc = await openNode(t)
  const f = await cc.features.create('User Authentication', { id: 'feat-123' }).setStatus('in_progress').setTrack('trk-123').save()
  await f.blockedBy('feat-auth').save()
  const stored = await cc.features.get('feat-123')
  t.is(stored?.trackId, 'trk-123')
  t.alike(stored?.links.map(l => [l.linked_feature_id, l.link_type]), [['feat-auth', 'depends_on']])
  t.is((await cc.features.list({ track: 'trk-123' })).length, 1, 'indexed by track')
  t.alike(cc.listEvents({ resourceId: 'feat-123' }).events.map(e => e.event_type), ['feature_created', 'link_added'])
  t.is(resourceTypeOf('trk-123'), 'track')
  t.ok(/^feat-[0-9a-z]{16}$/.test(cc.features.create('generated').id), 'generated ids are the prefix and 16 base32 digits')
})

test('codec: chosen ids travel as labels, generated ids keep the 4-byte form; both round trip', (t) => {
  const events: WireEvent[] = ['feat-123', 'feat-auth', 'feat-0000beef', 'feat-0000BEEF', `feat-${'z'.repeat(64)}`].map((id, i) => ({ ...sample[0], resource_id: id, hlc: sample[0].hlc + i }))
  t.alike(decodeBlock(encodeBlock('sess-1', events)).events, events)
  const generated = encodeBlock('sess-1', [sample[0]]).byteLength
  const chosen = encodeBlock('sess-1', [{ ...sample[0], resource_id: 'feat-12' }]).byteLength
  t.is(chosen, generated - 4 + 3, 'a short label costs its length plus one byte')
  // A hand-made block whose label is not an id, or is a generated id spelled as a label, is refused.
  for (const label of ['a b', '', 'x'.repeat(65), '0000beef']) {
    const block = encodeBlock('sess-1', [{ ...sample[0], resource_id: 'feat-placeholder' }])
    const at = block.indexOf(Buffer.from('placeholder')) - 1
    const forged = Buffer.concat([block.subarray(0, at), Buffer.from([label.length]), Buffer.from(label), block.subarray(at + 1 + 'placeholder'.length)])
    t.exception(() => decodeBlock(forged), /invalid resource id/, `label ${JSON.stringify(label.slice(0, 10))} refused`)
  }
})

test('codec: the decoder rejects every malformed block with DECODE_FAILED', (t) => {
  const good = encodeBlock('sess-1', sample.slice(0, 2))
  const cases: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['unknown version', Buffer.concat([Buffer.from([9]), good.subarray(1)])],
    ['truncated', good.subarray(0, good.byteLength - 3)],
    ['trailing bytes', Buffer.concat([good, Buffer.from([0])])],
    ['random bytes', Buffer.from('00112233445566778899aabbccddeeff', 'hex')]
  ]
  // An unknown event type index in an otherwise good block.
  const badType = Buffer.from(good)
  const typeOffset = 1 + 1 + 'sess-1'.length + 1
  badType[typeOffset] = 200
  cases.push(['unknown event type', badType])
  // A valid shape whose payload breaks the schema.
  cases.push(['invalid status in payload', encodeBlock('sess-1', [{ ...sample[1], payload: { old_status: 'todo', new_status: 'sideways' } as never }])])
  cases.push(['invalid agent label', encodeBlock('bad session', [sample[0]])])
  for (const [name, block] of cases) {
    try {
      decodeBlock(block)
      t.fail(`${name}: decoded`)
    } catch (err) {
      t.is((err as CrosscastError).code, 'DECODE_FAILED', `${name}: ${(err as Error).message}`)
    }
  }
  const bomb = encodeBlock('sess-1', [sample[2]])
  t.exception(() => decodeBlock(bomb, 1024), /over the cap|inflates past/, 'a compressed payload may not inflate past the cap')
})

test('hybrid logical clock: monotonic, bounded skew, ISO timestamps', (t) => {
  let wall = 1_000_000
  const clock = new HybridLogicalClock(() => wall)
  const a = clock.now()
  const b = clock.now()
  t.ok(b > a, 'strictly increasing within a millisecond')
  wall -= 500 // the wall clock steps back
  t.ok(clock.now() > b, 'never goes back with the wall clock')
  clock.observe((wall + 10) * 1000)
  t.ok(clock.now() > (wall + 10) * 1000, 'moves past an observed remote clock')
  const far = (wall + 3_600_000) * 1000
  clock.observe(far)
  t.ok(clock.now() < far, 'a remote clock an hour ahead is not adopted')
  t.is(hlcToIso(1_700_000_000_123_005), '2023-11-14T22:13:20.123Z')
})

test('event ids: identical for the same position, different otherwise', (t) => {
  const key = Buffer.alloc(32, 7)
  t.is(eventIdOf(key, 5, 1), eventIdOf(Buffer.alloc(32, 7), 5, 1))
  const ids = new Set([eventIdOf(key, 5, 1), eventIdOf(key, 5, 2), eventIdOf(key, 6, 1), eventIdOf(Buffer.alloc(32, 8), 5, 1), eventIdOf(key, 2 ** 40, 1)])
  t.is(ids.size, 5)
  t.ok(/^[0-9a-f]{32}$/.test(eventIdOf(key, 0, 0)))
})
