// `npm start`: build only when a source is newer than the build, then run the
// CLI in this same process (one node start, not two). Plain JavaScript on
// purpose: it runs before anything is compiled, and plain node answers in tens
// of milliseconds where tsx (or tsc's own up-to-date check) would cost most of
// the 1.5 s start budget.
//
//   node scripts/start.mjs serve --port 8000     what npm start runs

import { readdirSync, statSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { execSync } from 'node:child_process'
import { pathToFileURL } from 'node:url'

const root = new URL('..', import.meta.url).pathname
const SOURCES = ['lib', 'types', 'tsconfig.json', 'tsconfig.build.json', 'package.json']
const ENTRY = join(root, 'dist/cli/main.js')

/** Newest (or oldest) modification time over files under `paths`. */
function mtimes (paths, pick) {
  let result = null
  const visit = (path) => {
    const stat = statSync(path, { throwIfNoEntry: false })
    if (stat === undefined) return
    if (stat.isDirectory()) {
      for (const name of readdirSync(path)) visit(join(path, name))
    } else {
      result = result === null ? stat.mtimeMs : pick(result, stat.mtimeMs)
    }
  }
  for (const p of paths) visit(join(root, p))
  return result ?? 0
}

const stale = !existsSync(ENTRY) || mtimes(SOURCES, Math.max) > mtimes(['dist'], Math.min)
if (stale) {
  process.stderr.write('crosscast: dist/ is older than the sources; building (npm run build)\n')
  execSync('npm run build', { cwd: root, stdio: 'inherit' })
}
// process.argv stays [node, this script, ...arguments]: the CLI reads its arguments from index 2 on.
await import(pathToFileURL(ENTRY).href)
