import test from 'brittle'
import http from 'node:http'
import { Crosscast } from '../lib/index.ts'
import { createGateway } from '../lib/gateway/index.ts'
import { CrosscastError } from '../lib/errors.ts'
import { startGateway, post, get, openWs, WsClient } from './helpers/gateway.ts'

const TOKEN = 's3cret-token-for-tests'

/** A raw request: fetch would normalize `..` and set its own Host. */
function raw (url: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number, body: string }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path, method: 'GET', headers }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

test('binding beyond loopback without a token is refused', async (t) => {
  const cc = await Crosscast.open({ storage: await t.tmp(), room: 'sec', agent: 'gateway', sessionId: 'gateway', swarm: false, lan: false })
  t.teardown(() => cc.close())
  for (const host of ['0.0.0.0', '192.168.1.10', '::']) {
    const err = await createGateway(cc, { host, port: 0 }).then(() => null, (e: unknown) => e)
    t.ok(err instanceof CrosscastError, `${host}: a CrosscastError`)
    t.is((err as CrosscastError).code, 'INVALID_OPTION')
    t.ok(/token/.test((err as CrosscastError).message), 'the message says a token is needed')
  }
  const gw = await createGateway(cc, { host: '127.0.0.2', port: 0 })
  t.is(gw.address.host, '127.0.0.2', 'any loopback address is fine without a token')
  await gw.close()
})

test('with a token every route and the WebSocket need it', async (t) => {
  const { url } = await startGateway(t, { token: TOKEN })
  const auth = { authorization: `Bearer ${TOKEN}` }
  for (const path of ['/healthz', '/api/features', '/api/metrics', '/metrics', '/docs/json', '/api/events']) {
    const none = await get(url, path)
    t.is(none.status, 401, `${path} without a token`)
    t.is(none.body.code, 'UNAUTHORIZED')
    t.is(none.headers.get('www-authenticate'), 'Bearer')
    t.is((await get(url, path, { authorization: 'Bearer wrong' })).status, 401, `${path} with a wrong token`)
    t.is((await get(url, path, auth)).status, 200, `${path} with the token`)
  }
  t.is((await get(url, `/api/features?token=${TOKEN}`)).status, 401, 'the query token is for browsers\' page and WebSocket only')
  const write = await post(url, '/api/broadcast/features', { title: 'x' }, { 'x-agent-id': 'a', 'x-session-id': 's' })
  t.is(write.status, 401)
  t.is((await post(url, '/api/broadcast/features', { title: 'x' }, { 'x-agent-id': 'a', 'x-session-id': 's', ...auth })).status, 201)

  t.is(await WsClient.open(url).then(() => 'open', (e: Error) => e.message), 'upgrade refused: 401')
  t.is(await WsClient.open(url, '?token=nope').then(() => 'open', (e: Error) => e.message), 'upgrade refused: 401')
  const byQuery = await openWs(t, url, `?token=${TOKEN}`)
  byQuery.send('ping')
  await byQuery.waitFor(f => f.type === 'pong')
  const byHeader = await openWs(t, url, '', { headers: auth })
  byHeader.send('ping')
  await byHeader.waitFor(f => f.type === 'pong')
  t.pass('the WebSocket accepts the token as a header or as ?token=')
  t.is((await get(url, `/static/broadcast-demo.html?token=${TOKEN}`)).status, 200, 'the demo page takes ?token=')
  t.is((await get(url, '/static/broadcast-demo.html')).status, 401)
})

test('the static directory cannot be escaped', async (t) => {
  const { url } = await startGateway(t)
  t.is((await raw(url, '/static/broadcast-demo.html')).status, 200)
  for (const path of ['/static/../index.ts', '/static/..%2Findex.ts', '/static/%2e%2e%2f%2e%2e%2fpackage.json', '/static/..%5c..%5cpackage.json', '/static/.%2e/errors.ts', '/static//etc/passwd', '/static/%2Fetc%2Fpasswd', '/static/nothing.html', '/static/', '/static/broadcast-demo.html%00.png']) {
    const res = await raw(url, path)
    t.ok(res.status === 404 || res.status === 400, `${path} → ${res.status}`)
    t.absent(/import|root:|"name"/.test(res.body), `${path}: no file content leaked`)
  }
})

test('DNS rebinding: a loopback gateway answers only loopback host names', async (t) => {
  const { url } = await startGateway(t)
  const res = await raw(url, '/api/features', { host: 'evil.example:8000' })
  t.is(res.status, 403)
  t.is(JSON.parse(res.body).code, 'INVALID_HEADER')
  t.is((await raw(url, '/api/features', { host: `localhost:${new URL(url).port}` })).status, 200)
})

test('CORS is off by default, on with cors: true', async (t) => {
  const off = await startGateway(t)
  const plain = await get(off.url, '/api/features', { origin: 'http://other.example' })
  t.is(plain.headers.get('access-control-allow-origin'), null)
  const preflight = await fetch(off.url + '/api/broadcast/features', { method: 'OPTIONS', headers: { origin: 'http://other.example', 'access-control-request-method': 'POST' } })
  t.not(preflight.status, 204, 'no preflight answer')
  t.is(await WsClient.open(off.url, '', { origin: 'http://other.example' }).then(() => 'open', (e: Error) => e.message), 'upgrade refused: 403', 'another site\'s page cannot open the WebSocket')
  const same = await openWs(t, off.url, '', { origin: off.url })
  same.send('ping')
  await same.waitFor(f => f.type === 'pong')

  const on = await startGateway(t, { cors: true })
  const allowed = await get(on.url, '/api/features', { origin: 'http://other.example' })
  t.is(allowed.headers.get('access-control-allow-origin'), '*')
  const pre = await fetch(on.url + '/api/broadcast/features', { method: 'OPTIONS', headers: { origin: 'http://other.example', 'access-control-request-method': 'POST' } })
  t.is(pre.status, 204)
  t.ok(pre.headers.get('access-control-allow-headers')?.includes('x-agent-id'))
  const cross = await openWs(t, on.url, '', { origin: 'http://other.example' })
  cross.send('ping')
  await cross.waitFor(f => f.type === 'pong')
})

test('invalid gateway options are refused', async (t) => {
  const cc = await Crosscast.open({ storage: await t.tmp(), room: 'sec', agent: 'gateway', sessionId: 'gateway', swarm: false, lan: false })
  t.teardown(() => cc.close())
  for (const opts of [{ port: -1 }, { port: 70000 }, { token: 'has space' }, { token: '' }, { wsMaxLag: -5 }]) {
    const err = await createGateway(cc, { ...opts, host: '127.0.0.1' }).then(() => null, (e: unknown) => e)
    t.is((err as CrosscastError | null)?.code, 'INVALID_OPTION', JSON.stringify(opts))
  }
})
