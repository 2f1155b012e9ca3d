// The one error class of crosscast. Every failure a caller can act on carries a
// code from this closed set; the gateway maps each code to an HTTP status, so a
// new failure mode means a new row here; README "Error codes" is generated from
// this table (npm run docs). `also` lists the other HTTP statuses a code is sent with.

export const ERROR_CODES = {
  INVALID_EVENT_TYPE: { status: 400, description: 'event_type is not one of the ten event types (the seed eight, claim_added, claim_released)' },
  INVALID_STATUS: { status: 400, description: 'status is not one of todo, in_progress, blocked, done' },
  INVALID_LINK_TYPE: { status: 400, description: 'link_type is not one of depends_on, blocks, related' },
  INVALID_ID: { status: 400, description: 'a resource id is not its prefix (feat-, trk-, spk-) followed by 1 to 64 letters, digits, _ or - (e.g. feat-123; generated ids are the prefix and 16 base32 digits)' },
  MISSING_FIELD: { status: 400, description: 'a required field (a title, a comment text, ...) is absent or empty' },
  INVALID_FIELD: { status: 400, description: 'a field has the wrong type, length or value, or is not a field of that event or route' },
  PAYLOAD_TOO_LARGE: { status: 413, description: 'an event payload or a request body is over the configured cap' },
  INVALID_HEADER: { status: 400, description: 'a required header (X-Agent-ID, X-Session-ID) is missing or malformed', also: { 415: 'a request body whose Content-Type is not application/json', 403: 'a Host header that does not name this machine (gateway on loopback)' } },
  INVALID_CURSOR: { status: 400, description: 'a cursor is not a non-negative integer' },
  INVALID_OPTION: { status: 400, description: 'an option passed to open(), a CLI flag or a query parameter is invalid' },
  NOT_FOUND: { status: 404, description: 'the feature, track or spike does not exist (or was deleted)' },
  CONFLICT: { status: 409, description: 'the item changed since the version the caller read (if_version / If-Match)' },
  CLAIMED: { status: 409, description: 'another session holds a live claim on the item' },
  LIMIT_REACHED: { status: 429, description: 'a configured cap (sessions on a gateway, clients, ...) is reached; retry later' },
  UNAUTHORIZED: { status: 401, description: 'the gateway token is missing or wrong', also: { 403: 'a WebSocket from another site\'s page (Origin) while CORS is off' } },
  STORAGE_LOCKED: { status: 409, description: 'another process has this storage directory open' },
  CLOSED: { status: 503, description: 'the node is closing or closed' },
  DECODE_FAILED: { status: 400, description: 'a block or frame could not be decoded; it came from an untrusted source' },
  WRITE_FAILED: { status: 500, description: 'appending to the session log failed; nothing of that save was kept' },
  INTERNAL: { status: 500, description: 'a bug in crosscast; please report it with the log' }
} as const

export type ErrorCode = keyof typeof ERROR_CODES

export interface CrosscastErrorDetails {
  field?: string
  allowed?: readonly string[]
  cause?: unknown
  /** CONFLICT: the item as it is now, so the caller can merge and retry without another read. */
  current?: unknown
}

export class CrosscastError extends Error {
  readonly code: ErrorCode
  readonly field: string | undefined
  readonly allowed: readonly string[] | undefined
  readonly current: unknown

  constructor (code: ErrorCode, message: string, details: CrosscastErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.name = 'CrosscastError'
    this.code = code
    this.field = details.field
    this.allowed = details.allowed
    this.current = details.current
  }

  get httpStatus (): number {
    return ERROR_CODES[this.code].status
  }

  toJSON (): { code: ErrorCode, message: string, field?: string, allowed?: readonly string[], current?: unknown } {
    const body: { code: ErrorCode, message: string, field?: string, allowed?: readonly string[], current?: unknown } = { code: this.code, message: this.message }
    if (this.field !== undefined) body.field = this.field
    if (this.allowed !== undefined) body.allowed = this.allowed
    if (this.current !== undefined) body.current = this.current
    return body
  }
}

export function isCrosscastError (err: unknown): err is CrosscastError {
  return err instanceof CrosscastError
}
