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

export const typeboxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const validator = Compile(schema)
  const convert = httpPart === 'querystring' || httpPart === 'params'
  const fn: ValidatorFn = (data: unknown) => {
    const value = convert ? Value.Convert(schema, data) : data
    // Only converted parts are handed back: fastify would otherwise replace request.headers.
    if (validator.Check(value)) return convert ? { value } : true
    fn.errors = normalize(validator.Errors(value) as Iterable<AjvLikeError>)
    return false
  }
  return fn as ReturnType<FastifySchemaCompiler<TSchema>>
}
