import { isIP } from 'node:net'
import { CrosscastError } from '../errors.ts'

export interface BootstrapAddress { host: string, port: number }

// Turns user input ('host:port' strings or objects) into addresses hyperdht
// accepts, failing early with the option named rather than deep inside the DHT.
export function parseBootstrap (entries: unknown, option = 'bootstrap'): BootstrapAddress[] {
  if (!Array.isArray(entries)) {
    throw new CrosscastError('INVALID_OPTION', `${option} must be an array of 'host:port' strings or { host, port } objects`, { field: option })
  }
  return entries.map((entry, i) => parseEntry(entry, `${option}[${i}]`))
}

function parseEntry (entry: unknown, option: string): BootstrapAddress {
  let host: unknown
  let port: unknown
  if (typeof entry === 'string') {
    const trimmed = entry.trim()
    // '[::1]:49737' for IPv6, 'host:port' otherwise
    const match = /^\[([^\]]+)\]:(\d+)$/.exec(trimmed) ?? /^([^:\s]+):(\d+)$/.exec(trimmed)
    if (match === null) {
      throw new CrosscastError('INVALID_OPTION', `${option} must look like 'host:port', got ${JSON.stringify(entry)}`, { field: option })
    }
    host = match[1]
    port = Number(match[2])
  } else if (entry !== null && typeof entry === 'object') {
    host = (entry as { host?: unknown }).host
    port = (entry as { port?: unknown }).port
  } else {
    throw new CrosscastError('INVALID_OPTION', `${option} must be a 'host:port' string or a { host, port } object`, { field: option })
  }
  if (typeof host !== 'string' || host.length === 0 || /\s/.test(host)) {
    throw new CrosscastError('INVALID_OPTION', `${option} has an empty or malformed host`, { field: option })
  }
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new CrosscastError('INVALID_OPTION', `${option} port must be an integer from 1 to 65535`, { field: option })
  }
  return { host, port }
}

export function isLoopbackHost (host: string): boolean {
  if (host === 'localhost' || host === '::1') return true
  return isIP(host) === 4 && host.startsWith('127.')
}

export function formatAddress ({ host, port }: BootstrapAddress): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`
}
