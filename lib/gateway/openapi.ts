// The OpenAPI 3.1 document at /docs/json, built from the very schemas fastify
// validates with (collected through onRoute), so the document cannot drift from
// the routes. A dependency (@fastify/swagger) would do the same and bring a UI we
// do not need.

type Schema = Record<string, unknown>

export interface RouteDoc {
  method: string
  url: string
  summary?: string
  schema?: {
    params?: Schema
    querystring?: Schema
    headers?: Schema
    body?: Schema
    response?: Record<string, Schema>
  }
  /** Response shapes documented but not used for serialization (read routes pass SDK objects through). */
  responses?: Record<string, Schema>
}

interface ObjectSchema { properties?: Record<string, Schema>, required?: string[] }

function parametersOf (location: 'path' | 'query' | 'header', schema: Schema | undefined): Schema[] {
  if (schema === undefined) return []
  const s = schema as ObjectSchema
  const required = new Set(s.required ?? [])
  return Object.entries(s.properties ?? {}).map(([name, prop]) => ({
    name,
    in: location,
    required: location === 'path' || required.has(name),
    schema: prop
  }))
}

function responsesOf (route: RouteDoc): Record<string, Schema> {
  const out: Record<string, Schema> = {}
  const all = { ...(route.responses ?? {}), ...(route.schema?.response ?? {}) }
  for (const [status, schema] of Object.entries(all)) {
    const isText = (schema as { type?: string }).type === 'string'
    out[status] = {
      description: Number(status) < 400 ? 'success' : 'error: { code, message, field?, allowed? }',
      content: { [isText ? 'text/plain' : 'application/json']: { schema } }
    }
  }
  if (Object.keys(out).length === 0) out['200'] = { description: 'success' }
  return out
}

export function openApiDocument (routes: readonly RouteDoc[], info: { title: string, version: string }): Schema {
  const paths: Record<string, Record<string, Schema>> = {}
  for (const route of routes) {
    const path = route.url.replace(/:([A-Za-z_]+)/g, '{$1}')
    const operation: Schema = {
      summary: route.summary,
      parameters: [
        ...parametersOf('path', route.schema?.params),
        ...parametersOf('query', route.schema?.querystring),
        ...parametersOf('header', route.schema?.headers)
      ],
      responses: responsesOf(route)
    }
    if (route.schema?.body !== undefined) {
      operation.requestBody = { required: true, content: { 'application/json': { schema: route.schema.body } } }
    }
    paths[path] ??= {}
    paths[path][route.method.toLowerCase()] = operation
  }
  return {
    openapi: '3.1.0',
    info: { ...info, description: 'crosscast gateway: REST writes and reads over a local crosscast node; live events on the WebSocket /ws/broadcasts' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths
  }
}
