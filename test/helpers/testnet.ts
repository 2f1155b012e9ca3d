// A private DHT on 127.0.0.1 for tests: nothing ever reaches the public bootstrap.
import createHyperTestnet from 'hyperdht/testnet'
import type { Assert } from 'brittle'

export async function createTestnet (t: Pick<Assert, 'teardown'>, size = 3): Promise<{ bootstrap: Array<{ host: string, port: number }> }> {
  const testnet = await createHyperTestnet(size, { host: '127.0.0.1' })
  // Last, after the nodes that use it have closed.
  t.teardown(() => testnet.destroy(), { order: Infinity })
  return { bootstrap: testnet.bootstrap.map(({ host, port }) => ({ host, port })) }
}
