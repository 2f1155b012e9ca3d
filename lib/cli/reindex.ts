// `crosscast reindex`: rebuild crosscast.db from the logs, with a progress bar
// on a terminal. cli-progress draws it: rate, ETA, redraw throttling and
// terminal-width handling are what it does well and a hand-written \r line did not.

import type { Command } from 'commander'
import cliProgress from 'cli-progress'
import { openOffline, storageOption } from './storage.ts'

export function registerReindex (program: Command): void {
  program.command('reindex')
    .description('rebuild crosscast.db from the logs (the database is a cache of them); needs the storage to itself')
    .addOption(storageOption())
    .action(async (opts: { storage: string }) => {
      const cc = await openOffline(opts.storage)
      // Drawn only on a terminal (cli-progress skips a non-TTY stream); stdout keeps the one result line.
      const bar = new cliProgress.SingleBar({
        stream: process.stderr,
        format: 'reindex [{bar}] {percentage}% | {value}/{total} blocks | ETA {eta_formatted}',
        hideCursor: true,
        barsize: 30
      }, cliProgress.Presets.shades_classic)
      let started = false
      const began = Date.now()
      try {
        await cc.reindex((done, total) => {
          if (!started) {
            bar.start(total, done)
            started = true
          } else {
            bar.update(done)
          }
        })
        const status = cc.status()
        const logs = status.writers.length
        process.stdout.write(`reindexed ${status.events.total} events from ${logs} log${logs === 1 ? '' : 's'} in ${Date.now() - began} ms\n`)
      } finally {
        if (started) bar.stop()
        await cc.close()
      }
    })
}
