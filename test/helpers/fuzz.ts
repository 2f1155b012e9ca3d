// Tools for fuzzing the gateway with hostile clients: case generators driven by
// fast-check (seeded, so FUZZ_SEED replays a run, and a failure is shrunk to a
// simpler case), raw HTTP over node:net (fetch and http.request refuse or repair
// the malformed requests we want to send), raw WebSocket frames, and a bounded
// worker pool.

import net from 'node:net'
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'

/** The choices a case generator makes. Every one is a fast-check draw, so it shrinks. */
export interface Rng {
  next: () => number
  int: (n: number) => number
  pick: <T>(list: readonly T[]) => T
  chance: (p: number) => boolean
}

// Uniform (no bias toward the ends), as the cases were tuned for; shrinking still
// moves every pick toward the first choice and every number toward 0.
// (fc.double is uniform over representations, not values: nearly all draws would be ~0.)
const index = (max: number): fc.Arbitrary<number> => fc.noBias(fc.nat({ max }))
const UNIT_STEPS = 2 ** 31

export function rngFrom (g: fc.GeneratorValue): Rng {
  const next = (): number => g(index, UNIT_STEPS - 1) / UNIT_STEPS
  const int = (n: number): number => n <= 1 ? 0 : g(index, n - 1)
  // Shrinks toward false: an optional extra breaker is the first thing a shrunk case sheds.
  return { next, int, pick: (list) => list[int(list.length)], chance: (p) => next() >= 1 - p }
}

export function seedFromEnv (): number {
  const env = process.env.FUZZ_SEED
  if (env !== undefined && /^\d+$/.test(env)) return Number(env) >>> 0
  return randomBytes(4).readUInt32BE(0)
}

export interface Verdict { category: string, label: string, ok: boolean, detail: string }

export interface RoundsResult {
  /** Verdicts of the generation phase only (shrinking re-runs rounds; those are not counted). */
  verdicts: Verdict[]
  /** null when every round passed; else the shrunk failing round's failures and how to replay it. */
  failure: string | null
}

// Shrinking re-runs a round many times; past this the smallest failure found so far is reported.
const SHRINK_BUDGET_MS = 30_000

/**
 * `runs` rounds of a fast-check property with `seed`; each round draws its cases from
 * its Rng and returns one verdict per case. The first failing round is shrunk.
 */
export async function fuzzRounds (seed: number, runs: number, round: (r: Rng) => Promise<Verdict[]>): Promise<RoundsResult> {
  const verdicts: Verdict[] = []
  let shrinking = false
  let smallest: Verdict[] = []
  let started = 0
  const details = await fc.check(fc.asyncProperty(fc.gen(), async (g) => {
    if (shrinking && Date.now() - started > SHRINK_BUDGET_MS) return true
    const got = await round(rngFrom(g))
    const failed = got.filter(v => !v.ok)
    if (!shrinking) verdicts.push(...got)
    if (failed.length === 0) return true
    if (!shrinking) started = Date.now()
    shrinking = true
    smallest = failed
    return false
  }), { seed, numRuns: runs })
  if (!details.failed) return { verdicts, failure: null }
  const cases = smallest.map(v => `[${v.category}] ${v.label}: ${v.detail}`).join('; ')
  return { verdicts, failure: `${cases} (after ${details.numShrinks} shrinks; fast-check seed ${details.seed}, path ${details.counterexamplePath ?? '-'})` }
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
