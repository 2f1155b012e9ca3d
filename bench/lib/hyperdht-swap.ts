// Preloaded (node --import) into a bench or test peer to run it on another hyperdht
// than the pinned one, e.g. the 6.34.0 with the same-host race, for a side-by-side
// figure: `HYPERDHT_DIR=/tmp/hd634` names a directory where `npm i hyperdht@6.34.0`
// was run. Only bare `hyperdht` imports move; everything else resolves as usual.
import { register } from 'node:module'
import { pathToFileURL } from 'node:url'

const dir = process.env.HYPERDHT_DIR
if (dir !== undefined && dir !== '') {
  const hooks = `
    const parentURL = ${JSON.stringify(pathToFileURL(`${dir}/`).href)}
    export async function resolve (specifier, context, next) {
      if (specifier === 'hyperdht' || specifier.startsWith('hyperdht/')) return next(specifier, { ...context, parentURL })
      return next(specifier, context)
    }`
  register(`data:text/javascript,${encodeURIComponent(hooks)}`)
}
