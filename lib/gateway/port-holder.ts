// Who listens on a TCP port, so "port in use" can name the process to stop.
// Linux only (/proc); elsewhere, or for another user's process, it says nothing.

import { readFileSync, readdirSync, readlinkSync } from 'node:fs'

const LISTEN = '0A'
/** Bounded: a machine with a huge process table is not scanned to the end for an error message. */
const MAX_PROCESSES = 4096

function listeningInodes (port: number): Set<string> {
  const inodes = new Set<string>()
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try { text = readFileSync(table, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      if (cols.length < 10 || cols[3] !== LISTEN) continue
      if (parseInt(cols[1].split(':')[1], 16) === port) inodes.add(cols[9])
    }
  }
  return inodes
}

/** "pid 1234 (node server.js)", or null when it cannot tell. */
export function describePortHolder (port: number): string | null {
  const inodes = listeningInodes(port)
  if (inodes.size === 0) return null
  let pids: string[]
  try { pids = readdirSync('/proc').filter(name => /^\d+$/.test(name)).slice(0, MAX_PROCESSES) } catch { return null }
  for (const pid of pids) {
    let fds: string[]
    try { fds = readdirSync(`/proc/${pid}/fd`) } catch { continue }
    for (const fd of fds) {
      let target: string
      try { target = readlinkSync(`/proc/${pid}/fd/${fd}`) } catch { continue }
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1]
      if (inode === undefined || !inodes.has(inode)) continue
      let command = ''
      try { command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ') } catch {}
      return `pid ${pid}${command === '' ? '' : ` (${command.length > 120 ? command.slice(0, 120) + '…' : command})`}`
    }
  }
  return null
}
