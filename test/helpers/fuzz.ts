// Tools for fuzzing the gateway with hostile clients: a seeded PRNG (so a failing
// run can be replayed with FUZZ_SEED), raw HTTP over node:net (fetch and http.request
// refuse or repair the malformed requests we want to send), raw WebSocket frames,
// and a bounded worker pool.

import net from 'node:net'
import { randomBytes } from 'node:crypto'

export interface Rng {
  readonly seed: number
  next: () => number
  int: (n: number) => number
  pick: <T>(list: readonly T[]) => T
  chance: (p: number) => boolean
}

/** mulberry32: tiny, fast and good enough to spread cases; the same seed gives the same cases. */
export function rng (seed: number): Rng {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n: number): number => Math.floor(next() * n)
  return { seed, next, int, pick: (list) => list[int(list.length)], chance: (p) => next() < p }
}

export function seedFromEnv (): number {
  const env = process.env.FUZZ_SEED
  if (env !== undefined && /^\d+$/.test(env)) return Number(env) >>> 0
  return randomBytes(4).readUInt32BE(0)
}

export type HeaderList = Array<[string, string | Buffer]>

/** One HTTP/1.1 request as bytes, exactly as given: nothing is normalized, encoded or added. */
export function httpBytes (requestLine: string | Buffer, headers: HeaderList, body: string | Buffer = '', eol = '\r\n'): Buffer {
  const parts: Buffer[] = [typeof requestLine === 'string' ? Buffer.from(requestLine, 'latin1') : requestLine, Buffer.from(eol)]
  for (const [name, value] of headers) {
    parts.push(Buffer.from(name, 'latin1'), Buffer.from(': '), typeof value === 'string' ? Buffer.from(value, 'utf8') : value, Buffer.from(eol))
  }
  parts.push(Buffer.from(eol), typeof body === 'string' ? Buffer.from(body, 'utf8') : body)
  return Buffer.concat(parts)
}

export interface RawResult {
  /** Status of the first response, null when none arrived. */
  status: number | null
  head: string
  /** Bytes after the first response head (e.g. WebSocket frames after a 101). */
  rest: Buffer
  closedByServer: boolean
  timedOut: boolean
  error: string | null
}

/**
 * Writes `chunks` on a fresh connection and reads until the first response head
 * is complete (with `untilWsClose`, after a 101 until a close frame, after
 * anything else until the server hangs up; with `untilClose`, until it hangs up).
 * Always destroys the socket before resolving.
 */
export function rawExchange (port: number, chunks: Buffer | Buffer[], opts: { timeoutMs: number, untilClose?: boolean, untilWsClose?: boolean, host?: string }): Promise<RawResult> {
  return new Promise(resolve => {
    const socket = net.connect(port, opts.host ?? '127.0.0.1')
    let buf = Buffer.alloc(0)
    let settled = false
    const result: RawResult = { status: null, head: '', rest: Buffer.alloc(0), closedByServer: false, timedOut: false, error: null }
    const finish = (): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      const end = buf.indexOf('\r\n\r\n')
      if (end !== -1) {
        result.head = buf.subarray(0, end).toString('latin1')
        result.rest = buf.subarray(end + 4)
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(result.head)
        if (m !== null) result.status = Number(m[1])
      }
      socket.destroy()
      resolve(result)
    }
    const timer = setTimeout(() => { result.timedOut = true; finish() }, opts.timeoutMs)
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      if (opts.untilClose === true) return
      const end = buf.indexOf('\r\n\r\n')
      if (end === -1) return
      // With untilWsClose: after a 101 wait for the server's close frame; after a refusal, for it to hang up.
      if (opts.untilWsClose === true && (buf.subarray(0, 13).toString('latin1') !== 'HTTP/1.1 101 ' || !serverOpcodes(buf.subarray(end + 4)).includes(8))) return
      finish()
    })
    socket.on('error', (err: NodeJS.ErrnoException) => { result.error = err.code ?? err.message; finish() })
    socket.on('close', () => { result.closedByServer = true; finish() })
    socket.on('connect', () => {
      for (const c of Array.isArray(chunks) ? chunks : [chunks]) socket.write(c)
    })
  })
}

/** A client-to-server WebSocket frame; every field can be made wrong on purpose. */
export function wsFrame (opts: { opcode: number, payload?: Buffer, fin?: boolean, rsv?: number, masked?: boolean }): Buffer {
  const payload = opts.payload ?? Buffer.alloc(0)
  const masked = opts.masked ?? true
  const b0 = ((opts.fin ?? true) ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | (opts.opcode & 0x0f)
  let lenBytes: Buffer
  if (payload.length < 126) lenBytes = Buffer.from([(masked ? 0x80 : 0) | payload.length])
  else if (payload.length < 65536) { lenBytes = Buffer.alloc(3); lenBytes[0] = (masked ? 0x80 : 0) | 126; lenBytes.writeUInt16BE(payload.length, 1) } else { lenBytes = Buffer.alloc(9); lenBytes[0] = (masked ? 0x80 : 0) | 127; lenBytes.writeBigUInt64BE(BigInt(payload.length), 1) }
  if (!masked) return Buffer.concat([Buffer.from([b0]), lenBytes, payload])
  const mask = randomBytes(4)
  const body = Buffer.from(payload)
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3]
  return Buffer.concat([Buffer.from([b0]), lenBytes, mask, body])
}

/** Opcodes of the (unmasked) frames a server sent, in order; stops at a truncated frame. */
export function serverOpcodes (data: Buffer): number[] {
  const out: number[] = []
  let i = 0
  while (i + 2 <= data.length) {
    const opcode = data[i] & 0x0f
    let len = data[i + 1] & 0x7f
    let at = i + 2
    if (len === 126) { if (at + 2 > data.length) break; len = data.readUInt16BE(at); at += 2 } else if (len === 127) { if (at + 8 > data.length) break; len = Number(data.readBigUInt64BE(at)); at += 8 }
    if (at + len > data.length) break
    out.push(opcode)
    i = at + len
  }
  return out
}

/** Runs `fn` over `items` with at most `concurrency` in flight. */
export async function pool<T> (items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      await fn(items[i], i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker))
}
