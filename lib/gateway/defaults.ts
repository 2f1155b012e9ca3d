// The gateway's default address, apart from the gateway itself so the CLI can
// show it in --help without loading fastify.
export const DEFAULT_PORT = 8000
export const DEFAULT_HOST = '127.0.0.1'
