// Network namespaces for LAN tests: a private switch (a bridge inside its own
// namespace) and hosts wired to it by veth pairs. Nothing is created in the
// test runner's own namespace, so no packet, multicast included, leaves the test.
// Needs root and iproute2.
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import type { Assert } from 'brittle'

export interface LanHost {
  index: number
  /** Namespace to run the host's processes in (`ip netns exec <ns> ...`). */
  ns: string
  /** The host's private address on the switch. */
  addr: string
  /** Switch-side end of the host's cable: set it down to cut the host off. */
  switchPort: string
}

export interface Lan {
  switchNs: string
  hosts: LanHost[]
  cut (host: LanHost): void
  restore (host: LanHost): void
}

/** Why namespaces cannot be made here, or null when they can. */
export function netnsUnavailable (): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux'
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'needs root to create network namespaces'
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' })
  } catch {
    return '`ip netns` (iproute2) is not available'
  }
  return null
}

/**
 * True when the test can go on. Otherwise says loudly what was not tested and
 * why; in CI (where it must run) that is a failure, not a skip.
 */
export function requireNetns (t: Assert, what: string): boolean {
  const reason = netnsUnavailable()
  if (reason === null) return true
  if (process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false') {
    t.fail(`${what} must run in CI but cannot: ${reason}`)
  } else {
    t.comment(`SKIP: ${reason}; ${what} was NOT tested`)
    t.pass('skipped')
  }
  return false
}

export function ip (...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** Unique per run, so parallel runs never share a namespace. */
export function uniquePrefix (): string {
  return `cc${process.pid.toString(36)}${randomBytes(3).toString('hex')}`
}

// Namespaces still alive. brittle skips teardowns when a test throws or times
// out, so the process exit hook is what guarantees none is left behind.
const alive = new Set<string>()
let hooked = false

function removeAll (): void {
  for (const ns of alive) deleteNamespace(ns)
}

function addNamespace (ns: string): void {
  if (!hooked) {
    hooked = true
    process.once('exit', removeAll)
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        removeAll()
        process.exit(128 + (signal === 'SIGINT' ? 2 : 15))
      })
    }
  }
  alive.add(ns)
  ip('netns', 'add', ns)
}

// Deleting a namespace deletes the links inside it; processes still in it keep
// it alive until they exit, then the kernel frees it.
function deleteNamespace (ns: string): void {
  alive.delete(ns)
  try { ip('netns', 'del', ns) } catch {}
}

// Runs after the teardowns of the children started in these namespaces (order 0).
const AFTER_CHILDREN = 10

/** One namespace whose loopback carries multicast: two nodes in it can find each other by mDNS. */
export function createLoopbackNamespace (t: Assert): string {
  const ns = `${uniquePrefix()}-lo`
  t.teardown(() => deleteNamespace(ns), { order: AFTER_CHILDREN })
  addNamespace(ns)
  ip('-n', ns, 'link', 'set', 'lo', 'multicast', 'on', 'up')
  ip('-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'lo')
  return ns
}

/** `hosts` namespaces, each with address `<subnet>.<index + 1>` on one private switch. */
export function createLan (t: Assert, opts: { hosts: number, subnet?: string }): Lan {
  const subnet = opts.subnet ?? '10.231.0'
  const prefix = uniquePrefix()
  const switchNs = `${prefix}-sw`
  const namespaces: string[] = []
  t.teardown(() => { for (const ns of namespaces) deleteNamespace(ns) }, { order: AFTER_CHILDREN })
  const add = (ns: string): void => {
    namespaces.push(ns)
    addNamespace(ns)
  }

  add(switchNs)
  ip('-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge')
  // Without an IGMP querier, snooping would eventually stop flooding mDNS.
  ip('-n', switchNs, 'link', 'set', 'br0', 'type', 'bridge', 'mcast_snooping', '0')
  ip('-n', switchNs, 'link', 'set', 'br0', 'up')
  const hosts: LanHost[] = []
  for (let i = 0; i < opts.hosts; i++) {
    const host: LanHost = { index: i, ns: `${prefix}-${i}`, addr: `${subnet}.${i + 1}`, switchPort: `h${i}` }
    add(host.ns)
    ip('-n', switchNs, 'link', 'add', host.switchPort, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns)
    ip('-n', switchNs, 'link', 'set', host.switchPort, 'master', 'br0')
    ip('-n', switchNs, 'link', 'set', host.switchPort, 'up')
    ip('-n', host.ns, 'link', 'set', 'lo', 'up')
    ip('-n', host.ns, 'addr', 'add', `${host.addr}/24`, 'dev', 'eth0')
    ip('-n', host.ns, 'link', 'set', 'eth0', 'multicast', 'on', 'up')
    ip('-n', host.ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0')
    hosts.push(host)
  }
  return {
    switchNs,
    hosts,
    cut: (host) => ip('-n', switchNs, 'link', 'set', host.switchPort, 'down'),
    restore: (host) => ip('-n', switchNs, 'link', 'set', host.switchPort, 'up')
  }
}

/** argv prefix that runs a command inside `ns`. */
export function inNamespace (ns: string): string[] {
  return ['ip', 'netns', 'exec', ns]
}

/**
 * How a home router translates: 'linux' is a bare MASQUERADE (the router's own
 * stack answers, and so records, whatever arrives unsolicited on its WAN side);
 * 'home' adds the home router's firewall (unsolicited inbound is dropped, never
 * recorded), which keeps a port mapping stable through a simultaneous open;
 * 'symmetric' maps every destination to a random port (--random-fully), as
 * carrier-grade and some corporate NATs do.
 */
export type NatKind = 'linux' | 'home' | 'symmetric'

export interface InternetHost {
  ns: string
  addr: string
}

export interface Home {
  router: string
  /** The router's public address: what the rest of the internet sees of this home. */
  publicAddr: string
  hosts: InternetHost[]
}

export interface Internet {
  /** The public network: every public address lives on one switch in this namespace. */
  publicNs: string
  /** Public addresses (in publicNs) for servers: a bootstrapper, DHT nodes, a relay. */
  publicAddrs: string[]
  homes: Home[]
}

// Not a bogon (hyperdht skips private and documentation ranges as peer
// addresses), and never leaves the namespaces: the test's own "internet".
const PUBLIC_SUBNET = '11.0.0'

/**
 * The internet in miniature: a public switch holding `publicAddrs` servers,
 * and `homes` home networks, each a router namespace that NATs its private
 * subnet (192.168.<home + 1>.0/24, `hostsPerHome` hosts) onto one public address.
 */
export function createInternet (t: Pick<Assert, 'teardown'>, opts: { publicAddrs: number, homes: number, hostsPerHome: number, nat: NatKind }): Internet {
  const prefix = uniquePrefix()
  const namespaces: string[] = []
  t.teardown(() => { for (const ns of namespaces) deleteNamespace(ns) }, { order: AFTER_CHILDREN })
  const add = (ns: string): string => {
    namespaces.push(ns)
    addNamespace(ns)
    ip('-n', ns, 'link', 'set', 'lo', 'up')
    return ns
  }
  const publicNs = add(`${prefix}-pub`)
  ip('-n', publicNs, 'link', 'add', 'br0', 'type', 'bridge')
  ip('-n', publicNs, 'link', 'set', 'br0', 'up')
  const publicAddrs = Array.from({ length: opts.publicAddrs }, (_, i) => `${PUBLIC_SUBNET}.${i + 1}`)
  for (const addr of publicAddrs) ip('-n', publicNs, 'addr', 'add', `${addr}/24`, 'dev', 'br0')

  const homes: Home[] = []
  for (let h = 0; h < opts.homes; h++) {
    const router = add(`${prefix}-r${h}`)
    const publicAddr = `${PUBLIC_SUBNET}.${101 + h}`
    const subnet = `192.168.${h + 1}`
    ip('-n', publicNs, 'link', 'add', `r${h}`, 'type', 'veth', 'peer', 'name', 'wan', 'netns', router)
    ip('-n', publicNs, 'link', 'set', `r${h}`, 'master', 'br0')
    ip('-n', publicNs, 'link', 'set', `r${h}`, 'up')
    ip('-n', router, 'addr', 'add', `${publicAddr}/24`, 'dev', 'wan')
    ip('-n', router, 'link', 'set', 'wan', 'up')
    ip('-n', router, 'link', 'add', 'lan0', 'type', 'bridge')
    ip('-n', router, 'addr', 'add', `${subnet}.1/24`, 'dev', 'lan0')
    ip('-n', router, 'link', 'set', 'lan0', 'up')
    inNs(router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1')
    for (const rule of natRules(opts.nat)) inNs(router, 'iptables', ...rule)
    const hosts: InternetHost[] = []
    for (let i = 0; i < opts.hostsPerHome; i++) {
      const host = add(`${prefix}-h${h}${i}`)
      const addr = `${subnet}.${10 + i}`
      ip('-n', router, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host)
      ip('-n', router, 'link', 'set', `p${i}`, 'master', 'lan0')
      ip('-n', router, 'link', 'set', `p${i}`, 'up')
      ip('-n', host, 'addr', 'add', `${addr}/24`, 'dev', 'eth0')
      ip('-n', host, 'link', 'set', 'eth0', 'up')
      ip('-n', host, 'route', 'add', 'default', 'via', `${subnet}.1`)
      hosts.push({ ns: host, addr })
    }
    homes.push({ router, publicAddr, hosts })
  }
  return { publicNs, publicAddrs, homes }
}

function natRules (nat: NatKind): string[][] {
  const masquerade = ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-j', 'MASQUERADE', ...(nat === 'symmetric' ? ['--random-fully'] : [])]
  if (nat === 'linux') return [masquerade]
  // Dropped in INPUT, an unsolicited packet's conntrack entry is never confirmed,
  // so it cannot take the port that the host's own packet to that peer maps to.
  return [
    masquerade,
    ['-A', 'INPUT', '-i', 'wan', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
    ['-A', 'INPUT', '-i', 'wan', '-j', 'DROP'],
    ['-A', 'FORWARD', '-i', 'wan', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'],
    ['-A', 'FORWARD', '-i', 'wan', '-j', 'DROP']
  ]
}

function inNs (ns: string, ...argv: string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** Why a NAT cannot be simulated here (no iptables), or null when it can. */
export function natUnavailable (): string | null {
  try {
    execFileSync('iptables', ['--version'], { stdio: 'ignore' })
    return null
  } catch {
    return 'iptables is not installed (apt-get install iptables)'
  }
}
