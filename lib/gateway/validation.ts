// Route schemas are checked with TypeBox's own compiler rather than fastify's
// default ajv: bodies are checked strictly (ajv's default coercion would turn
// "tags": "x" into ["x"]), while query strings, which are text by nature, are
// converted first ("?since=12" → 12). Errors keep ajv's shape, which fastify
// and errors.ts understand.

import type { FastifySchemaCompiler } from 'fastify'
import type { TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { Value } from 'typebox/value'

interface AjvLikeError {
  keyword: string
  instancePath: string
  params: Record<string, unknown>
  message?: string
}

interface ValidatorFn {
  (data: unknown): boolean | { value: unknown }
  errors?: AjvLikeError[]
}

/** TypeBox lists every missing or extra key; fastify's error formatter expects ajv's one-per-error form. */
function normalize (errors: Iterable<AjvLikeError>): AjvLikeError[] {
  const out: AjvLikeError[] = []
  for (const e of errors) {
    if (e.keyword === 'boolean') continue // "schema is false": restated by the additionalProperties error
    const required = e.params.requiredProperties
    const extra = e.params.additionalProperties
    if (e.keyword === 'required' && Array.isArray(required)) {
      out.push({ ...e, params: { missingProperty: required[0] }, message: `must have required property '${String(required[0])}'` })
    } else if (e.keyword === 'additionalProperties' && Array.isArray(extra)) {
      out.push({ ...e, params: { additionalProperty: extra[0] }, message: 'must NOT have additional properties' })
    } else {
      out.push(e)
    }
  }
  return out
}

/** Value.Convert rounds and guesses ("1.5" → 1, "" → 0, "true" → 1): a query number must convert exactly. */
function inexactNumbers (data: unknown, value: unknown): AjvLikeError[] {
  if (data === null || typeof data !== 'object' || value === null || typeof value !== 'object') return []
  const out: AjvLikeError[] = []
  for (const [key, raw] of Object.entries(data)) {
    const converted = (value as Record<string, unknown>)[key]
    if (typeof raw === 'string' && typeof converted === 'number' && (raw.trim() === '' || Number(raw) !== converted)) {
      out.push({ keyword: 'type', instancePath: `/${key}`, params: { type: 'number' }, message: `must be a number written out exactly, got ${JSON.stringify(raw.slice(0, 40))}` })
    }
  }
  return out
}

/** An object schema whose every property is a plain string: text converts to itself, so nothing needs converting. */
function onlyStrings (schema: TSchema): boolean {
  const s = schema as { type?: unknown, properties?: Record<string, Record<string, unknown>> }
  if (s.type !== 'object' || s.properties === undefined) return false
  return Object.values(s.properties).every(p => p.type === 'string' && p.anyOf === undefined && p.oneOf === undefined && p.allOf === undefined)
}

function allStrings (data: unknown): boolean {
  if (data === null || typeof data !== 'object') return false
  for (const key in data) if (typeof (data as Record<string, unknown>)[key] !== 'string') return false
  return true
}

export const typeboxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const validator = Compile(schema)
  const convert = httpPart === 'querystring' || httpPart === 'params'
  // Value.Convert walks the schema generically (about 50 µs for one path id, on every write route):
  // skipped where it could change nothing, strings checked against string properties.
  const stringsAsSent = convert && onlyStrings(schema)
  const fn: ValidatorFn = (data: unknown) => {
    if (stringsAsSent && allStrings(data)) {
      if (validator.Check(data)) return true
      fn.errors = normalize(validator.Errors(data) as Iterable<AjvLikeError>)
      return false
    }
    // Convert works in place: keep what the client sent to compare against.
    const sent = convert && data !== null && typeof data === 'object' ? { ...data } : data
    const value = convert ? Value.Convert(schema, data) : data
    const inexact = convert ? inexactNumbers(sent, value) : []
    if (inexact.length > 0) {
      fn.errors = inexact
      return false
    }
    // Only converted parts are handed back: fastify would otherwise replace request.headers.
    if (validator.Check(value)) return convert ? { value } : true
    fn.errors = normalize(validator.Errors(value) as Iterable<AjvLikeError>)
    return false
  }
  return fn as ReturnType<FastifySchemaCompiler<TSchema>>
}
