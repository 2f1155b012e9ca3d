// `crosscast tail`: the last events of the audit trail, then every new one as
// it is projected. Read-only, so it runs beside `crosscast serve`.

import type { Command } from 'commander'
import { openReadOnly, storageOption } from './storage.ts'
import { colorsFor, formatEvent, parseCount, waitForSignal } from './output.ts'

const PAGE = 1000

export function registerTail (program: Command): void {
  program.command('tail')
    .description('print the last events, then follow the audit trail as events are projected (works beside a running serve)')
    .addOption(storageOption())
    .option('-n, --lines <n>', 'how many of the latest events to print first (0: only new ones)', '10')
    .option('--since <cursor>', 'print every event after this cursor first, instead of the last -n')
    .option('--interval <ms>', 'how often to look for new events', '100')
    .option('--json', 'one JSON object per line')
    .action(async (opts: { storage: string, lines: string, since?: string, interval: string, json?: boolean }) => {
      const lines = parseCount(opts.lines, '--lines')
      const interval = Math.max(10, parseCount(opts.interval, '--interval'))
      const colors = colorsFor(process.stdout)
      const reader = openReadOnly(opts.storage)
      let since = opts.since === undefined ? reader.cursorBeforeLast(lines) : parseCount(opts.since, '--since')
      let stopped = false
      waitForSignal().then(() => { stopped = true }).catch(() => {})
      while (!stopped) {
        const page = reader.page({}, since, PAGE)
        for (const event of page) process.stdout.write((opts.json === true ? JSON.stringify(event) : formatEvent(event, colors)) + '\n')
        if (page.length > 0) since = page[page.length - 1].cursor
        else await new Promise(resolve => setTimeout(resolve, interval))
      }
      reader.close()
    })
}
