// Every error the gateway sends is one JSON shape with a stable code, whether it
// came from the SDK (a CrosscastError) or from fastify itself (schema validation,
// JSON parsing, body size, unknown route), so clients branch on `code` only.

import { CrosscastError, ERROR_CODES, type ErrorCode } from '../errors.ts'
import { STATUSES, LINK_TYPES } from '../events/types.ts'

export interface ErrorBody {
  code: ErrorCode
  message: string
  field?: string
  allowed?: readonly string[]
  /** CONFLICT: the item as it is now. */
  current?: unknown
}

export interface HttpError { status: number, body: ErrorBody }

interface AjvError {
  keyword: string
  instancePath: string
  params: Record<string, unknown>
  message?: string
}

interface FastifyLikeError {
  code?: string
  statusCode?: number
  message: string
  validation?: AjvError[]
  validationContext?: string
}

const HEADER_NAMES: Record<string, string> = {
  'x-agent-id': 'X-Agent-ID',
  'x-session-id': 'X-Session-ID',
  authorization: 'Authorization'
}

function fromCrosscast (err: CrosscastError): HttpError {
  return { status: err.httpStatus, body: err.toJSON() }
}

function fieldOf (context: string, error: AjvError): string {
  const missing = error.params.missingProperty ?? error.params.additionalProperty
  const path = error.instancePath.replace(/^\//, '').replaceAll('/', '.')
  const parts = [path, typeof missing === 'string' ? missing : ''].filter(p => p !== '')
  const field = parts.join('.')
  if (context === 'headers') return HEADER_NAMES[field] ?? field
  return field === '' ? context : field
}

/** The field's last path segment decides which vocabulary a bad value violated. */
function vocabularyError (field: string): { code: ErrorCode, allowed: readonly string[] } | null {
  const leaf = field.split('.').pop() ?? ''
  if (leaf === 'status' || leaf === 'new_status' || leaf === 'old_status') return { code: 'INVALID_STATUS', allowed: STATUSES }
  if (leaf === 'link_type') return { code: 'INVALID_LINK_TYPE', allowed: LINK_TYPES }
  return null
}

function fromValidation (err: FastifyLikeError): HttpError {
  const context = err.validationContext ?? 'body'
  const first = (err.validation ?? [])[0]
  if (first === undefined) return { status: 400, body: { code: 'INVALID_FIELD', message: err.message } }
  const field = fieldOf(context, first)
  const where = context === 'body' ? 'body' : context === 'querystring' ? 'query parameter' : context === 'params' ? 'path parameter' : 'header'

  if (context === 'headers') {
    const problem = first.keyword === 'required' ? 'is required on writes' : 'must be 1 to 128 characters of letters, digits and . _ : @ + - (starting with a letter or digit)'
    return { status: 400, body: { code: 'INVALID_HEADER', message: `header ${field} ${problem}`, field } }
  }
  if (first.keyword === 'required') {
    return { status: 400, body: { code: 'MISSING_FIELD', message: `${where} field ${field} is required`, field } }
  }
  if (first.keyword === 'additionalProperties') {
    return { status: 400, body: { code: 'INVALID_FIELD', message: `${where} field ${field} is not accepted by this route`, field } }
  }
  const allowedValues = first.params.allowedValues
  if (first.keyword === 'enum' && Array.isArray(allowedValues)) {
    const allowed = allowedValues.map(String)
    const vocabulary = vocabularyError(field)
    const code = vocabulary?.code ?? 'INVALID_FIELD'
    return { status: 400, body: { code, message: `${field} must be one of ${allowed.join(', ')}`, field, allowed } }
  }
  if (first.keyword === 'pattern' && /(^|\.)(id|feature_id|linked_feature_id|resource_id|track_id|track)$/.test(field)) {
    return { status: 400, body: { code: 'INVALID_ID', message: `${field} must be a resource id like feat-xxxxxxxx, trk-xxxxxxxx or spk-xxxxxxxx (8 lowercase hex digits)`, field } }
  }
  if (context === 'querystring' && (field === 'since' || field === 'cursor')) {
    return { status: 400, body: { code: 'INVALID_CURSOR', message: `${field} must be a non-negative integer`, field } }
  }
  return { status: 400, body: { code: 'INVALID_FIELD', message: `${where} field ${field} ${first.message ?? 'is invalid'}`, field } }
}

const FASTIFY_CODES: Record<string, (err: FastifyLikeError) => HttpError> = {
  FST_ERR_CTP_INVALID_JSON_BODY: err => ({ status: 400, body: { code: 'DECODE_FAILED', message: `request body is not valid JSON: ${err.message}`, field: 'body' } }),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => ({ status: 400, body: { code: 'MISSING_FIELD', message: 'request body is empty but Content-Type is application/json', field: 'body' } }),
  FST_ERR_CTP_BODY_TOO_LARGE: () => ({ status: 413, body: { code: 'PAYLOAD_TOO_LARGE', message: 'request body is over the gateway\'s maxBodyBytes', field: 'body' } }),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => ({ status: 400, body: { code: 'INVALID_HEADER', message: 'Content-Length does not match the body', field: 'Content-Length' } }),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => ({ status: 415, body: { code: 'INVALID_HEADER', message: 'Content-Type must be application/json', field: 'Content-Type', allowed: ['application/json'] } })
}

/** Turns anything a handler or fastify threw into a status and a JSON error body. */
export function toHttpError (err: unknown): HttpError {
  if (err instanceof CrosscastError) return fromCrosscast(err)
  const e = err as FastifyLikeError
  if (e !== null && typeof e === 'object') {
    if (Array.isArray(e.validation)) return fromValidation(e)
    const mapped = e.code === undefined ? undefined : FASTIFY_CODES[e.code]
    if (mapped !== undefined) return mapped(e)
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      return { status: e.statusCode, body: { code: 'INVALID_FIELD', message: e.message } }
    }
  }
  return { status: ERROR_CODES.INTERNAL.status, body: { code: 'INTERNAL', message: 'internal error in the crosscast gateway; see its log' } }
}

export function notFoundRoute (method: string, url: string): HttpError {
  const path = url.split('?')[0]
  return { status: 404, body: { code: 'NOT_FOUND', message: `no route ${method} ${path}` } }
}
