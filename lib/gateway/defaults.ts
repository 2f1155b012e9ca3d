// The gateway's default address, apart from the gateway itself so the CLI can
// show it in --help without loading fastify.
export const DEFAULT_PORT = 8000
export const DEFAULT_HOST = '127.0.0.1'
/** Session logs (X-Session-IDs that write) a gateway hosts at once, and how long one may idle before its log is closed. */
export const DEFAULT_MAX_SESSIONS = 1000
export const DEFAULT_SESSION_IDLE_MS = 10 * 60_000
