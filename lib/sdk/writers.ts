// Every log this node knows, its own and its peers', and the loop that feeds
// each one's new blocks to the projector in order.

import { readFile, writeFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import type Hypercore from 'hypercore'
import type { Projector, BlockInput } from '../projection/projector.ts'
import type { Logger } from '../logger.ts'

export interface KnownWriter { key: string, sessionId: string, agentId: string, local: boolean }

/** Blocks read per projector transaction while catching up: large enough to amortize the commit, small enough to keep the thread responsive. */
const BLOCKS_PER_TRANSACTION = 128
/** How often a writer whose next block is held (clock far ahead) is looked at again. */
const HOLD_RETRY_MS = 10_000

/**
 * The list of known writers is kept beside the logs, not only in SQLite: the
 * database is a cache that may be deleted, and reindex needs to know which
 * logs to replay.
 */
export class WriterFile {
  private readonly path: string
  private writing: Promise<void> = Promise.resolve()

  constructor (storage: string) {
    this.path = join(storage, 'writers.json')
  }

  async read (): Promise<KnownWriter[]> {
    try {
      const parsed = JSON.parse(await readFile(this.path, 'utf8')) as unknown
      if (!Array.isArray(parsed)) return []
      return parsed.filter((w): w is KnownWriter => typeof w?.key === 'string' && /^[0-9a-f]{64}$/.test(w.key))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
  }

  /** Atomic replace, serialized, so a crash leaves either the old list or the new one. */
  save (writers: KnownWriter[]): Promise<void> {
    const snapshot = JSON.stringify(writers, null, 2)
    this.writing = this.writing.then(async () => {
      const tmp = this.path + '.tmp'
      await writeFile(tmp, snapshot)
      await rename(tmp, this.path)
    })
    return this.writing
  }
}

/** Feeds one core's blocks to the projector, from its checkpoint to its contiguous length. */
export class WriterFeed {
  readonly core: Hypercore
  readonly info: KnownWriter
  private readonly projector: Projector
  private readonly logger: Logger
  private running: Promise<void> | null = null
  private again = false
  private retry: NodeJS.Timeout | null = null
  stopped = false

  constructor (core: Hypercore, info: KnownWriter, projector: Projector, logger: Logger) {
    this.core = core
    this.info = info
    this.projector = projector
    this.logger = logger
  }

  /** Its writer forked or truncated the log: stop reading it for good; what was projected stays. */
  distrust (reason: string): void {
    if (this.stopped) return
    this.stopped = true
    this.logger.warn({ writer: this.info.key, reason }, 'a writer forked or truncated its log; it is no longer trusted, what was projected stays')
    try {
      this.projector.markWriterError(this.info.key, reason)
    } catch (err) {
      this.logger.warn({ writer: this.info.key, err: (err as Error).message }, 'could not record the distrusted writer')
    }
  }

  /** Catches up; concurrent calls coalesce into one more pass. */
  drain (): Promise<void> {
    if (this.running !== null) {
      this.again = true
      return this.running
    }
    this.running = this.loop().finally(() => { this.running = null })
    return this.running
  }

  private retryLater (): void {
    if (this.retry !== null || this.stopped) return
    this.retry = setTimeout(() => {
      this.retry = null
      this.drain().catch(() => {})
    }, HOLD_RETRY_MS)
    this.retry.unref()
  }

  private async loop (): Promise<void> {
    do {
      this.again = false
      let indexed = this.projector.indexedLength(this.info.key)
      while (!this.stopped && indexed < this.core.contiguousLength) {
        const end = Math.min(this.core.contiguousLength, indexed + BLOCKS_PER_TRANSACTION)
        const reads: Array<Promise<Buffer | null>> = []
        for (let seq = indexed; seq < end; seq++) reads.push(this.core.get(seq, { wait: false }))
        let blocks: Array<Buffer | null>
        try {
          blocks = await Promise.all(reads)
        } catch (err) {
          if (!this.stopped) this.logger.warn({ writer: this.info.key, err: (err as Error).message }, 'reading a log failed')
          return
        }
        if (this.stopped) return
        const inputs: BlockInput[] = []
        for (let i = 0; i < blocks.length; i++) {
          const block = blocks[i]
          if (block === null) break
          inputs.push({ seq: indexed + i, block })
        }
        if (inputs.length === 0) return
        this.projector.applyBlocks(this.info.key, inputs)
        const reached = this.projector.indexedLength(this.info.key)
        if (reached < indexed + inputs.length) {
          // The projector held a block back (its clock is far ahead): look again later.
          this.retryLater()
          return
        }
        indexed = reached
      }
    } while (this.again && !this.stopped)
  }
}
