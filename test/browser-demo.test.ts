// The demo board in a real Chromium: layout at phone and desktop widths, two pages
// on one gateway seeing each other's changes, errors next to their controls, the
// conflict path, claims and presence, and resuming after the gateway restarts.
import test from 'brittle'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import type { Crosscast } from '../lib/index.ts'
import { createGateway } from '../lib/gateway/index.ts'
import { EventsResponse } from '../lib/gateway/schemas.ts'
import { startGateway, post, get, request, ROOT, WRITER } from './helpers/gateway.ts'

const CHROMIUM = '/usr/bin/chromium'
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const ARTIFACTS = join(ROOT, 'test/artifacts')
// 300 characters and not one space: the title that used to make the page 5,000 px wide.
const LONG_TITLE = ('Unbreakable' + 'x'.repeat(289)).slice(0, 300)

const available = existsSync(CHROMIUM)
if (!available) {
  if (process.env.CI !== undefined && process.env.CI !== '') throw new Error(`${CHROMIUM} is missing: CI must run the browser test (apt-get install chromium)`)
  console.log('# SKIP: chromium not installed (apt-get install chromium)')
}

/** A gateway that goes away and comes back on the same port, over the same node. */
async function restartableGateway (t: Parameters<typeof startGateway>[0]): Promise<{ cc: Crosscast, url: string, stop: () => Promise<void>, restart: () => Promise<void> }> {
  const node = await startGateway(t)
  let gw = node.gw
  t.teardown(() => gw.close(), { order: 1 })
  return {
    cc: node.cc,
    url: node.url,
    stop: () => gw.close(),
    restart: async () => { gw = await createGateway(node.cc, { port: node.gw.address.port }) }
  }
}

interface Board { page: Page, errors: string[], failed: string[] }

async function launch (t: { teardown: (fn: () => unknown) => void }): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS })
  t.teardown(() => browser.close())
  return browser
}

/** One window per page: a background tab would have its timers and Playwright's clicks throttled. */
async function openBoard (browser: Browser, url: string, width = 1280, query = ''): Promise<Board> {
  const context = await browser.newContext({ viewport: { width, height: 800 } })
  const page = await context.newPage()
  const board: Board = { page, errors: [], failed: [] }
  page.on('pageerror', (err) => board.errors.push(err.message))
  page.on('response', (r) => { if (r.status() >= 400) board.failed.push(`${r.status()} ${r.request().method()} ${r.url()}`) })
  await page.goto(`${url}/static/broadcast-demo.html${query}`)
  await page.waitForSelector('#connection[data-state="live"]', { timeout: 10_000 })
  return board
}

async function setAgent (page: Page, name: string): Promise<void> {
  await page.fill('#agent-name', name)
  await page.press('#agent-name', 'Enter')
  await page.waitForFunction(() => document.querySelector('#agent-error')?.textContent === '')
}

async function cardColumn (page: Page, id: string): Promise<string | null> {
  return await page.evaluate((featureId) => document.querySelector(`.card[data-id="${featureId}"]`)?.closest('.column')?.getAttribute('data-status') ?? null, id)
}

interface CardCheck {
  /** the status column the card must be in */
  column?: string
  /** text the card (or its `within` part) must contain */
  has?: string
  /** text the card must not contain */
  lacks?: string
  within?: string
  /** the card must not exist */
  gone?: boolean
}

async function waitCard (page: Page, id: string, check: CardCheck): Promise<void> {
  await page.waitForFunction(([fid, c]) => {
    const card = document.querySelector(`.card[data-id="${fid}"]`)
    if (c.gone === true) return card === null
    if (card === null) return false
    if (c.column !== undefined && card.closest('.column')?.getAttribute('data-status') !== c.column) return false
    const text = (c.within === undefined ? card : card.querySelector(c.within))?.textContent ?? ''
    if (c.has !== undefined && !text.includes(c.has)) return false
    return c.lacks === undefined || !(card.textContent ?? '').includes(c.lacks)
  }, [id, check] as const, { timeout: 10_000, polling: 20 })
}

async function select (page: Page, id: string): Promise<void> {
  await page.waitForFunction((fid) => [...(document.querySelector('#update-id') as HTMLSelectElement).options].some(o => o.value === fid), id, { timeout: 10_000 })
  await page.selectOption('#update-id', id)
  await page.waitForFunction((fid) => (document.querySelector('#update-id') as HTMLSelectElement).value === fid && !document.querySelector('#item-panel')?.hasAttribute('data-empty'), id)
}

/** A gateway with one feature, and two pages (1280 and 375 px wide) both editing it. */
async function twoPagesOnOneFeature (t: Parameters<typeof startGateway>[0] & { teardown: (fn: () => unknown) => void }, title: string, agents: [string, string]): Promise<{ url: string, id: string, a: Board, b: Board }> {
  const { url } = await startGateway(t)
  const id = (await post(url, '/api/broadcast/features', { title })).body.feature_id
  const browser = await launch(t)
  const a = await openBoard(browser, url, 1280)
  const b = await openBoard(browser, url, 375)
  await setAgent(a.page, agents[0])
  await setAgent(b.page, agents[1])
  await select(a.page, id)
  await select(b.page, id)
  return { url, id, a, b }
}

async function errorTexts (page: Page): Promise<Record<string, string>> {
  return await page.$$eval('.error', (nodes) => Object.fromEntries(nodes.map(n => [n.id, n.textContent ?? ''])))
}

async function seedBoard (url: string): Promise<{ shipping: string, long: string, blocked: string }> {
  const shipping = (await post(url, '/api/broadcast/features', { title: 'Ship the onboarding flow', status: 'in_progress', priority: 'high' })).body.feature_id
  const long = (await post(url, '/api/broadcast/features', { title: LONG_TITLE })).body.feature_id
  const blocked = (await post(url, '/api/broadcast/features', { title: 'Waiting on the auth service', status: 'blocked' })).body.feature_id
  await post(url, `/api/broadcast/features/${shipping}/links`, { linked_feature_id: blocked, link_type: 'depends_on' })
  await post(url, `/api/broadcast/features/${shipping}/comments`, { comment_text: 'Copy reviewed; waiting for the last screenshot.' })
  await post(url, `/api/broadcast/features/${long}/status`, { new_status: 'todo' })
  await post(url, `/api/broadcast/features/${shipping}/claim`, { ttl_s: 600 })
  return { shipping, long, blocked }
}

test('layout: no sideways scroll at 360, 375 and 1280 px with a 300-character unbroken title; history on load; favicon', { skip: !available, timeout: 90_000 }, async (t) => {
  const { url } = await startGateway(t)
  const { shipping, long } = await seedBoard(url)
  const browser = await launch(t)
  await mkdir(ARTIFACTS, { recursive: true })

  const icon = await get(url, '/favicon.ico')
  t.is(icon.status, 200, 'GET /favicon.ico answers 200')
  t.ok(icon.headers.get('content-type')?.startsWith('image/svg+xml'), 'with an image')

  for (const width of [360, 375, 1280]) {
    const { page, errors, failed } = await openBoard(browser, url, width)
    await waitCard(page, long, {})
    await select(page, long)
    const size = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth, body: document.body.scrollWidth }))
    t.ok(size.scroll <= size.client && size.body <= size.client, `${width} px: no horizontal scroll (scrollWidth ${size.scroll}, body ${size.body}, clientWidth ${size.client})`)
    const box = await page.locator(`.card[data-id="${long}"]`).boundingBox()
    t.ok(box !== null && box.x >= 0 && box.x + box.width <= width, `${width} px: the long title's card fits the window (${box?.x}..${(box?.x ?? 0) + (box?.width ?? 0)})`)
    const columnWidths = await page.$$eval('.column', (cols) => cols.map(c => c.getBoundingClientRect().width))
    t.ok(columnWidths.every(w => w >= Math.min(200, width - 40)), `${width} px: every column is wide enough to read (${columnWidths.map(Math.round).join(', ')} px)`)

    const feed = await page.$$eval('#feed li', (items) => items.map(li => li.textContent ?? ''))
    t.is(feed.length, 7, `${width} px: the feed shows the history on load: ${JSON.stringify(feed)}`)
    t.ok(feed[0].includes('claim_added') && feed[0].includes(WRITER['x-agent-id']), 'newest first, with who did it')
    t.ok(feed.some(line => line.includes('commented on “Ship the onboarding flow”')), 'in words a reader understands')

    const card = await page.textContent(`.card[data-id="${shipping}"]`)
    t.ok(card?.includes('depends on') && card.includes('Waiting on the auth service'), 'the card shows its link by the other feature\'s title')
    t.ok(card?.includes('1 comment'), 'and its comments')
    t.ok(card?.includes(`claimed by ${WRITER['x-agent-id']}`), 'and who holds it')
    t.ok((await page.$$('#presence li')).length >= 1, 'who is online lists at least the gateway\'s own session')
    const iconHref = await page.$eval('link[rel=icon]', (l) => (l as HTMLLinkElement).href)
    t.is((await page.request.get(iconHref)).status(), 200, 'the page\'s icon link answers 200')
    const unlabelled = await page.$$eval('input, select, textarea, button', (els) => els.filter(e => ((e as HTMLInputElement).labels?.length ?? 0) === 0 && (e.getAttribute('aria-label') ?? e.textContent ?? '').trim() === '').map(e => e.id || e.outerHTML.slice(0, 60)))
    t.alike(unlabelled, [], `${width} px: every control has a label or a name`)
    if (width !== 360) await page.screenshot({ path: join(ARTIFACTS, `board-${width}.png`), fullPage: true })
    // The keyboard path: a card's title is a button; Enter opens it in the editor, with focus on its title.
    await page.focus(`.card[data-id="${shipping}"] .title`)
    await page.keyboard.press('Enter')
    t.is(await page.evaluate(() => document.activeElement?.id), 'update-title', `${width} px: Enter on a card moves focus to the editor`)
    t.is(await page.inputValue('#update-title'), 'Ship the onboarding flow', 'with that card in it')
    t.alike(failed, [], `${width} px: no failed request (favicon, logo, API)`)
    t.alike(errors, [], `${width} px: no page errors`)
    await page.context().close()
  }
})

test('two pages see each other\'s changes: create, update, status, link, comment, delete; agent names are per tab and remembered', { skip: !available, timeout: 90_000 }, async (t) => {
  const { url } = await startGateway(t)
  const other = (await post(url, '/api/broadcast/features', { title: 'Existing before load', status: 'blocked' })).body.feature_id
  const browser = await launch(t)
  const a = await openBoard(browser, url, 1280)
  const b = await openBoard(browser, url, 375)
  t.is(await cardColumn(a.page, other), 'blocked', 'the board loads the current state')
  await setAgent(a.page, 'alice')
  await setAgent(b.page, 'bob')

  // Create on A: B shows it, and the feed says alice did it.
  await a.page.fill('#create-title', 'Made in page A')
  await a.page.selectOption('#create-status', 'todo')
  await a.page.click('#create-form button[type=submit]')
  const created = await b.page.waitForFunction(() => [...document.querySelectorAll('.column[data-status="todo"] .card')].find(c => c.textContent?.includes('Made in page A'))?.getAttribute('data-id'), undefined, { timeout: 10_000 })
  const id = await created.jsonValue() as string
  t.ok(/^feat-/.test(id), 'page B shows the feature page A created')
  await b.page.waitForFunction(() => document.querySelector('#feed li')?.textContent?.includes('alice') === true, undefined, { timeout: 10_000 })
  t.pass('page B\'s feed names page A\'s agent')

  // Update on A (title and status): B moves the card. Timing is printed, not asserted (bench/ owns timing).
  await select(a.page, id)
  await a.page.fill('#update-title', 'Renamed in page A')
  await a.page.selectOption('#update-status', 'in_progress')
  const started = Date.now()
  const posted = a.page.waitForResponse(r => r.request().method() === 'POST' && r.url().endsWith(`/api/broadcast/features/${id}`), { timeout: 10_000 })
  await a.page.click('#update-form button[type=submit]')
  t.is((await posted).status(), 200, 'page A\'s update was accepted')
  await waitCard(b.page, id, { column: 'in_progress', has: 'Renamed in page A' })
  t.pass(`page B showed the update ${Date.now() - started} ms after the click (target: under 1,000 ms)`)

  // Link on B: A's card shows it.
  await select(b.page, id)
  await b.page.selectOption('#link-type', 'depends_on')
  await b.page.selectOption('#link-target', other)
  await b.page.click('#link-form button[type=submit]')
  await waitCard(a.page, id, { within: '.links', has: 'depends on Existing before load' })
  t.pass('a link made in page B shows on page A\'s card')

  // Comment on A: B's card shows it with its author.
  await a.page.fill('#comment-text', 'Looks right to me')
  await a.page.click('#comment-form button[type=submit]')
  await waitCard(b.page, id, { within: 'details', has: 'alice: Looks right to me' })
  t.is(await a.page.inputValue('#comment-text'), '', 'the comment box empties after a comment')

  // A status change from outside the pages reaches both.
  await post(url, `/api/broadcast/features/${id}/status`, { new_status: 'done' })
  for (const p of [a.page, b.page]) await waitCard(p, id, { column: 'done' })
  t.pass('a REST write moves the card on both pages')

  // Delete on B (two clicks: arm, confirm): the card leaves A.
  await b.page.click('#delete-button')
  t.is(await b.page.textContent('#delete-button'), 'Click again to delete', 'the first click only arms the delete')
  await b.page.click('#delete-button')
  await waitCard(a.page, id, { gone: true })
  t.is((await get(url, `/api/features/${id}`)).status, 404, 'the feature is deleted')
  t.ok((await a.page.textContent('#feed'))?.includes('bob'), 'page A\'s feed names bob')

  // Names: per tab, remembered for this tab and offered to the next one.
  const sessions = await Promise.all([a.page, b.page].map(p => p.textContent('#session-id')))
  t.not(sessions[0], sessions[1], 'each tab writes in its own session')
  await a.page.reload()
  await a.page.waitForSelector('#connection[data-state="live"]')
  t.is(await a.page.inputValue('#agent-name'), 'alice', 'a reload keeps the tab\'s agent name')
  t.is(await a.page.textContent('#session-id'), sessions[0], 'and its session')
  const next = await a.page.context().newPage()
  await next.goto(`${url}/static/broadcast-demo.html`)
  t.is(await next.inputValue('#agent-name'), 'alice', 'a new tab starts with the last name used')
  t.not(await next.textContent('#session-id'), sessions[0], 'in a new session')
  t.alike([...a.errors, ...b.errors], [], 'no page errors')
})

test('each error shows next to the control that caused it and clears on success', { skip: !available, timeout: 90_000 }, async (t) => {
  const { url, stop, restart } = await restartableGateway(t)
  const feature = (await post(url, '/api/broadcast/features', { title: 'Something to comment on' })).body.feature_id
  const browser = await launch(t)
  const { page } = await openBoard(browser, url, 375)
  await select(page, feature)

  await page.fill('#agent-name', 'not a valid name!')
  await page.press('#agent-name', 'Enter')
  t.ok((await errorTexts(page))['agent-error'].includes('Agent name'), 'a bad agent name is refused next to the name field')
  await setAgent(page, 'carol')
  t.is((await errorTexts(page))['agent-error'], '', 'and the error clears once the name is valid')

  await page.click('#comment-form button[type=submit]')
  let shown = await errorTexts(page)
  t.ok(shown['comment-error'] !== '', 'an empty comment is refused next to the comment box')
  t.is(shown['create-error'] + shown['update-error'] + shown['board-error'], '', 'and nowhere else')

  // The gateway goes away: the create form's request fails, and says so under the create form.
  await stop()
  await page.fill('#create-title', 'Written while the gateway is down')
  await page.click('#create-form button[type=submit]')
  await page.waitForFunction(() => document.querySelector('#create-error')?.textContent !== '', undefined, { timeout: 10_000 })
  shown = await errorTexts(page)
  t.pass(`the failed create is reported under the create form: "${shown['create-error']}"`)
  t.is(shown['update-error'], '', 'not under the update form')

  await restart()
  await page.waitForSelector('#connection[data-state="live"]', { timeout: 15_000 })
  await page.click('#create-form button[type=submit]')
  await page.waitForFunction(() => [...document.querySelectorAll('.card')].some(c => c.textContent?.includes('Written while the gateway is down')), undefined, { timeout: 10_000 })
  t.is((await errorTexts(page))['create-error'], '', 'the create error clears when the retry succeeds')

  await select(page, feature)
  await page.fill('#comment-text', 'Back online')
  await page.click('#comment-form button[type=submit]')
  await waitCard(page, feature, { has: 'carol: Back online' })
  t.is((await errorTexts(page))['comment-error'], '', 'the comment error clears on a comment that succeeds')
})

test('a stale update form shows the conflict instead of overwriting another tab\'s change (If-Match)', { skip: !available, timeout: 60_000 }, async (t) => {
  const { url, id, a, b } = await twoPagesOnOneFeature(t, 'The original title', ['alice', 'bob'])

  // A starts typing; B saves first.
  await a.page.fill('#update-title', 'Title from page A')
  await b.page.fill('#update-title', 'Title from page B')
  await b.page.click('#update-form button[type=submit]')
  await waitCard(a.page, id, { has: 'Title from page B' })
  t.is(await a.page.inputValue('#update-title'), 'Title from page A', 'page A\'s typing is not overwritten by B\'s change')

  const posted = a.page.waitForResponse(r => r.request().method() === 'POST' && r.url().endsWith(`/api/broadcast/features/${id}`))
  await a.page.click('#update-form button[type=submit]')
  const response = await posted
  t.is(response.status(), 409, 'the stale save is refused (409)')
  t.ok(response.request().headers()['if-match'] !== undefined, 'because it carried If-Match')
  await a.page.waitForSelector('#update-conflict:not([hidden])', { timeout: 5000 })
  t.ok((await a.page.textContent('#update-conflict'))?.includes('Title from page B'), 'page A shows the current title')
  t.is((await get(url, `/api/features/${id}`)).body.title, 'Title from page B', 'page B\'s change stands')
  await mkdir(ARTIFACTS, { recursive: true })
  await a.page.locator('#item-panel').screenshot({ path: join(ARTIFACTS, 'board-conflict.png') })

  await a.page.click('#conflict-load')
  t.is(await a.page.inputValue('#update-title'), 'Title from page B', '"Load current values" puts them in the form')
  await a.page.fill('#update-title', 'Title from page A, on top of B')
  await a.page.click('#update-form button[type=submit]')
  await waitCard(b.page, id, { has: 'Title from page A, on top of B' })
  t.is(await a.page.isHidden('#update-conflict'), true, 'a save over the current version goes through')
  t.alike([...a.errors, ...b.errors], [], 'no page errors')
})

test('claims and presence: a claim shows on every page, a second claim is refused next to the button, release frees it', { skip: !available, timeout: 60_000 }, async (t) => {
  const { url, id, a, b } = await twoPagesOnOneFeature(t, 'Only one of us should do this', ['alice', 'bob'])

  await a.page.click('#claim-button')
  await waitCard(b.page, id, { has: 'claimed by alice' })
  t.pass('page B\'s card shows alice holds it')
  // Page A re-reads the item after its own claim; page B may render first.
  await a.page.waitForFunction(() => document.querySelector('#claim-button')?.textContent === 'Release', undefined, { timeout: 5000 }).catch(() => {})
  t.is(await a.page.textContent('#claim-button'), 'Release', 'page A offers to release its own claim')
  await b.page.waitForFunction(() => document.querySelector('#claim-state')?.textContent?.includes('alice') === true)

  await b.page.click('#claim-button')
  await b.page.waitForFunction(() => document.querySelector('#claim-error')?.textContent !== '', undefined, { timeout: 5000 })
  const refused = await errorTexts(b.page)
  t.ok(refused['claim-error'].includes('CLAIMED'), `page B's claim is refused next to its button: "${refused['claim-error']}"`)

  const presence = await get(url, '/api/presence')
  t.is(presence.status, 200, 'GET /api/presence answers')
  await a.page.waitForFunction((n) => document.querySelectorAll('#presence li').length === n, presence.body.sessions.length, { timeout: 5000 })
  t.pass(`the "who is online" panel lists the ${presence.body.sessions.length} session(s) the gateway reports`)

  await a.page.click('#claim-button')
  await waitCard(b.page, id, { lacks: 'claimed by' })
  t.pass('after page A releases, page B\'s card is unclaimed')
  await b.page.click('#claim-button')
  await waitCard(a.page, id, { has: 'claimed by bob' })
  t.is((await errorTexts(b.page))['claim-error'], '', 'page B\'s claim error clears when its claim succeeds')
})

test('the page reconnects and resumes from its last cursor, losing nothing', { skip: !available, timeout: 60_000 }, async (t) => {
  const { cc, url, stop, restart } = await restartableGateway(t)

  const browser = await launch(t)
  const { page } = await openBoard(browser, url)
  const first = (await post(url, '/api/broadcast/features', { title: 'Before the outage' })).body.feature_id
  await page.waitForSelector(`.card[data-id="${first}"]`, { timeout: 10_000 })

  // The gateway goes away; writes continue on the node; a new gateway comes up on the same port.
  await stop()
  await page.waitForSelector('#connection[data-state="reconnecting"]', { timeout: 5000 })
  const missed = []
  for (let i = 0; i < 3; i++) missed.push((await cc.features.create(`Written during the outage ${i}`).setStatus('blocked').save()).id)
  await restart()
  await page.waitForSelector('#connection[data-state="live"]', { timeout: 15_000 })
  for (const id of missed) await page.waitForSelector(`.column[data-status="blocked"] .card[data-id="${id}"]`, { timeout: 5000 })
  t.pass('every event written while disconnected arrived after the reconnect')
  const feedEntries = await page.$$eval('#feed li', (items) => items.map(li => li.textContent ?? ''))
  t.is(feedEntries.filter(text => text.includes('feature_created')).length, 4, 'each event once in the feed')
  t.is((await request(url, 'GET', '/api/features')).body.count, 4)
})

test('behind a token (?token= in the page URL): icon, reads, writes and the WebSocket all pass it', { skip: !available, timeout: 60_000 }, async (t) => {
  const { url } = await startGateway(t, { token: 's3cret-token' })
  const browser = await launch(t)
  const { page, errors, failed } = await openBoard(browser, url, 375, '?token=s3cret-token')
  await page.fill('#create-title', 'Written through a token')
  await page.click('#create-form button[type=submit]')
  await page.waitForFunction(() => [...document.querySelectorAll('.card')].some(c => c.textContent?.includes('Written through a token')), undefined, { timeout: 10_000 })
  t.pass('the page reads, writes and hears its own write over the WebSocket')
  t.ok(await page.$eval('#logo', (img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0), 'the logo (the icon) loaded')
  t.alike(failed, [], 'no request was refused (the icon carries the token from its first request)')
  t.alike(errors, [], 'no page errors')
})

// Cursor epochs come with the core stream (CONTRACT.md "Cursors"); until it is merged there is no reset to react to.
const hasEpochs = 'epoch' in (EventsResponse.properties as Record<string, unknown>)
if (!hasEpochs) console.log('# SKIP: the reset test waits for cursor epochs (core stream not merged)')

test('a reset frame (the gateway\'s database was rebuilt: a new epoch) makes the page read everything again', { skip: !available || !hasEpochs, timeout: 60_000 }, async (t) => {
  const { url, cc } = await startGateway(t)
  const epochOf = (): string | undefined => (cc as { epoch?: string }).epoch
  const before = (await post(url, '/api/broadcast/features', { title: 'Before the reindex', status: 'in_progress' })).body.feature_id
  const browser = await launch(t)
  const { page, errors } = await openBoard(browser, url)
  const sockets: string[] = []
  page.on('websocket', (ws) => sockets.push(ws.url()))
  await waitCard(page, before, { column: 'in_progress' })

  const epochBefore = epochOf()
  await cc.reindex()
  t.not(epochOf(), epochBefore, 'the reindex started a new epoch')
  await page.waitForSelector('#feed li.marker', { timeout: 10_000 })
  await page.waitForSelector('#connection[data-state="live"]', { timeout: 10_000 })
  t.pass('the page says it reloaded')
  t.ok(sockets.some(u => new URL(u).searchParams.get('epoch') === epochOf()), 'and subscribes again in the new epoch')

  const after = (await post(url, '/api/broadcast/features', { title: 'After the reindex' })).body.feature_id
  await waitCard(page, after, { column: 'todo' })
  t.is(await cardColumn(page, before), 'in_progress', 'the state from before the rebuild is still shown')
  const feed = await page.$$eval('#feed li', (items) => items.map(li => li.textContent ?? ''))
  t.is(feed.filter(line => line.includes('After the reindex')).length, 1, 'a new event shows once in the feed')
  t.is(feed.filter(line => line.includes('created “Before the reindex”')).length, 1, 'and history is not doubled')
  t.alike(errors, [], 'no page errors')
})
