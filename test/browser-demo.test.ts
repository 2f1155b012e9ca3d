// The demo page in a real Chromium: two pages on one gateway see each other's changes.
import test from 'brittle'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { chromium, type Page } from 'playwright-core'
import { startGateway, post, ROOT } from './helpers/gateway.ts'

const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

const available = existsSync(CHROMIUM)
if (!available) {
  if (process.env.CI !== undefined && process.env.CI !== '') throw new Error(`${CHROMIUM} is missing: CI must run the browser test (apt-get install chromium)`)
  console.log('# SKIP: chromium not installed (apt-get install chromium)')
}

async function cardColumn (page: Page, id: string): Promise<string | null> {
  return await page.evaluate((featureId) => {
    const card = document.querySelector(`.card[data-id="${featureId}"]`)
    return card?.closest('.column')?.getAttribute('data-status') ?? null
  }, id)
}

test('two pages: an update made in one shows in the other within a second', { skip: !available, timeout: 60_000 }, async (t) => {
  const { url, gw } = await startGateway(t)
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
  t.teardown(() => browser.close())
  // One window each: a background tab would have its animation frames (and Playwright's clicks) throttled.
  const [a, b] = [
    await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage(),
    await (await browser.newContext({ viewport: { width: 1280, height: 720 } })).newPage()
  ]
  const errors: string[] = []
  for (const p of [a, b]) p.on('pageerror', (err) => errors.push(err.message))

  const existing = (await post(url, '/api/broadcast/features', { title: 'Existing before load', status: 'blocked' })).body.feature_id
  for (const p of [a, b]) {
    await p.goto(`${url}/static/broadcast-demo.html`)
    await p.waitForSelector('#connection[data-state="live"]', { timeout: 5000 })
  }
  t.is(await cardColumn(a, existing), 'blocked', 'the board loads the current state')

  // Page A creates a feature through its form; page B shows it.
  await a.fill('#create-title', 'Made in page A')
  await a.selectOption('#create-status', 'todo')
  await a.click('#create-form button[type=submit]')
  const created = await b.waitForFunction(() => [...document.querySelectorAll('.column[data-status="todo"] .card')].find(c => c.textContent?.includes('Made in page A'))?.getAttribute('data-id'), undefined, { timeout: 10_000 })
  const id = await created.jsonValue() as string
  t.ok(/^feat-[0-9a-f]{8}$/.test(id), 'page B shows the feature page A created')

  // Page A updates it (title and status); page B shows the change. The target
  // is "within a second"; the delay is printed, not asserted: timing belongs to
  // bench/ on this noisy 2-core machine, so the wait is only bounded.
  await a.waitForFunction((fid) => [...(document.querySelector('#update-id') as HTMLSelectElement).options].some(o => o.value === fid), id, { timeout: 10_000 })
  await a.selectOption('#update-id', id)
  await a.fill('#update-title', 'Renamed in page A')
  await a.selectOption('#update-status', 'in_progress')
  const started = Date.now()
  const posted = a.waitForResponse(r => r.request().method() === 'POST' && r.url().includes(`/api/broadcast/features/${id}`), { timeout: 10_000 })
  await a.click('#update-form button[type=submit]')
  const response = await posted.catch(async (err: Error) => {
    throw new Error(`page A sent no update (its message: "${await a.textContent('#message')}"): ${err.message}`)
  })
  t.is(response.status(), 200, 'page A\'s update was accepted')
  const clicked = Date.now()
  await b.waitForFunction((fid) => {
    const card = document.querySelector(`.column[data-status="in_progress"] .card[data-id="${fid}"]`)
    return card?.textContent?.includes('Renamed in page A') === true
  }, id, { timeout: 10_000, polling: 20 })
  const took = Date.now() - started
  t.pass(`page B showed the update ${took} ms after the click started (click took ${clicked - started} ms; target: under 1,000 ms)`)
  t.ok((await b.textContent('#feed'))?.includes('status_changed'), 'the event feed lists it')

  // A write that does not come from a page reaches both pages too.
  await post(url, `/api/broadcast/features/${id}/status`, { new_status: 'done' })
  for (const p of [a, b]) await p.waitForFunction((fid) => document.querySelector(`.column[data-status="done"] .card[data-id="${fid}"]`) !== null, id, { timeout: 10_000 })
  t.pass('a REST write moves the card on both pages')

  await mkdir(join(ROOT, 'test/artifacts'), { recursive: true })
  await b.screenshot({ path: join(ROOT, 'test/artifacts/broadcast-demo.png'), fullPage: true })
  t.alike(errors, [], 'no page errors')
  t.ok(gw.url)
})

test('the page reconnects and resumes from its last cursor, losing nothing', { skip: !available, timeout: 60_000 }, async (t) => {
  const storage = await t.tmp()
  const { Crosscast } = await import('../lib/index.ts')
  const { createGateway } = await import('../lib/gateway/index.ts')
  const cc = await Crosscast.open({ storage, room: 'browser', agent: 'gateway', sessionId: 'gateway', swarm: false, lan: false })
  t.teardown(() => cc.close(), { order: 2 })
  let gw = await createGateway(cc, { port: 0 })
  const port = gw.address.port
  t.teardown(() => gw.close(), { order: 1 })

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  await page.goto(`${gw.url}/static/broadcast-demo.html`)
  await page.waitForSelector('#connection[data-state="live"]', { timeout: 5000 })
  const first = (await post(gw.url, '/api/broadcast/features', { title: 'Before the outage' })).body.feature_id
  await page.waitForSelector(`.card[data-id="${first}"]`, { timeout: 10_000 })

  // The gateway goes away; writes continue on the node; a new gateway comes up on the same port.
  await gw.close()
  await page.waitForSelector('#connection[data-state="reconnecting"]', { timeout: 5000 })
  const missed = []
  for (let i = 0; i < 3; i++) missed.push((await cc.features.create(`Written during the outage ${i}`).setStatus('blocked').save()).id)
  gw = await createGateway(cc, { port })
  await page.waitForSelector('#connection[data-state="live"]', { timeout: 10_000 })
  for (const id of missed) await page.waitForSelector(`.column[data-status="blocked"] .card[data-id="${id}"]`, { timeout: 3000 })
  t.pass('every event written while disconnected arrived after the reconnect')
  const feedEntries = await page.$$eval('#feed li', (items) => items.map(li => li.textContent ?? ''))
  t.is(feedEntries.filter(text => text.includes('feature_created')).length, 4, 'each event once in the feed')
})
