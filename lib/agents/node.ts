// Opening a node for an agent session: identity and room key (identity.ts),
// a storage slot from the pool (or --storage), and, for long-lived nodes, the
// gateway's HTTP API on a unix socket plus node.json so that short-lived
// commands on this machine use this node instead of opening storage.

import { Crosscast } from '../sdk/crosscast.ts'
import type { Logger } from '../logger.ts'
import { createGateway, type Gateway } from '../gateway/index.ts'
import { resolveIdentity, type Identity, type IdentityFlags } from './identity.ts'
import { openInPool } from './pool.ts'
import { owners, socketPathFor, writeNodeFile, removeNodeFile } from './nodes.ts'
import { keysPath } from './keys.ts'

export interface NodeFlags extends IdentityFlags {
  storage?: string
  bootstrap?: string[]
  swarm?: boolean
  lan?: boolean
}

export interface AgentNode {
  cc: Crosscast
  identity: Identity
  gateway: Gateway | null
  close: () => Promise<void>
}

export async function openAgentNode (flags: NodeFlags, logger: Logger, opts: { serveSocket: boolean, kind?: 'mcp' | 'serve' } = { serveSocket: false }): Promise<AgentNode> {
  const identity = resolveIdentity(flags)
  if (identity.keyCreated) {
    logger.warn({ room: identity.room, keys: keysPath() }, 'created this machine\'s key for the room: sessions on this machine share it; to add another machine run `crosscast invite` here and `crosscast join TOKEN` there')
  }
  const options = {
    room: identity.room,
    secret: identity.secret,
    agent: identity.agent,
    sessionId: identity.sessionId,
    bootstrap: flags.bootstrap,
    swarm: flags.swarm ?? true,
    lan: flags.lan ?? true,
    logger
  }
  const cc = flags.storage !== undefined ? await Crosscast.open({ ...options, storage: flags.storage }) : await openInPool(options)
  let gateway: Gateway | null = null
  if (opts.serveSocket) {
    try {
      gateway = await createGateway(cc, { port: null, socketPath: socketPathFor(cc.storage), logger })
      writeNodeFile({
        pid: process.pid,
        owners: owners(),
        room: identity.room,
        storage: cc.storage,
        socket: gateway.socketPath!,
        session_id: cc.sessionId,
        agent: cc.agent,
        writer: cc.writerKey,
        kind: opts.kind ?? 'mcp',
        started_at: new Date().toISOString()
      })
    } catch (err) {
      await cc.close()
      throw err
    }
  }
  let closing: Promise<void> | null = null
  return {
    cc,
    identity,
    gateway,
    close: () => {
      closing ??= (async () => {
        removeNodeFile(cc.storage)
        await gateway?.close()
        await cc.close()
      })()
      return closing
    }
  }
}
