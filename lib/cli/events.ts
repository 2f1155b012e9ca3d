// `crosscast events`: the audit trail, oldest first, read-only.

import { Option, type Command } from 'commander'
import { EVENT_TYPES, type EventType } from '../events/types.ts'
import { validateEventType, validateId } from '../events/validate.ts'
import { openReadOnly, storageOption } from './storage.ts'
import { colorsFor, formatEvent, parseCount } from './output.ts'

const PAGE = 1000

export function registerEvents (program: Command): void {
  program.command('events')
    .description('print the audit trail (broadcast_events), oldest first; works beside a running serve')
    .addOption(storageOption())
    .addOption(new Option('--type <type>', 'only this event type').choices(EVENT_TYPES))
    .option('--resource <id>', 'only this feature, track or spike')
    .option('--since <cursor>', 'only events after this cursor', '0')
    .option('--limit <n>', 'at most this many events (0: all)', '0')
    .option('--json', 'one JSON object per line')
    .action(async (opts: { storage: string, type?: string, resource?: string, since: string, limit: string, json?: boolean }) => {
      const type: EventType | undefined = opts.type === undefined ? undefined : validateEventType(opts.type, '--type')
      const resourceId = opts.resource === undefined ? undefined : validateId(opts.resource, '--resource')
      const limit = parseCount(opts.limit, '--limit')
      let since = parseCount(opts.since, '--since')
      const colors = colorsFor(process.stdout)
      const reader = openReadOnly(opts.storage)
      try {
        let printed = 0
        for (;;) {
          const page = reader.page({ type, resourceId }, since, PAGE)
          for (const event of page) {
            if (limit > 0 && printed >= limit) return
            process.stdout.write((opts.json === true ? JSON.stringify(event) : formatEvent(event, colors)) + '\n')
            printed++
          }
          if (page.length < PAGE) return
          since = page[page.length - 1].cursor
        }
      } finally {
        reader.close()
      }
    })
}
