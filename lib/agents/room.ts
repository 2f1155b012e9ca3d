// The room a project's sessions share by default, derived from its git
// repository without running git: the URL of its remote (origin, else the
// first one), normalized so every clone of one repository agrees; a repository
// without a remote is named by the path of its main working tree (so its
// worktrees agree); outside any repository, by the working directory.

import { existsSync, readFileSync, statSync, realpathSync } from 'node:fs'
import { dirname, join, resolve, isAbsolute } from 'node:path'

export interface GitInfo {
  /** The directory holding .git (the working tree's top level). */
  top: string
  /** The repository's common git directory (shared by its worktrees). */
  commonDir: string
  remote: string | null
}

export function findGit (cwd: string): GitInfo | null {
  let dir = resolve(cwd)
  for (let depth = 0; depth < 128; depth++) {
    const dotGit = join(dir, '.git')
    if (existsSync(dotGit)) {
      const gitDir = statSync(dotGit).isDirectory() ? dotGit : pointedGitDir(dotGit, dir)
      if (gitDir !== null) {
        const commonDir = readCommonDir(gitDir)
        return { top: dir, commonDir, remote: remoteUrl(commonDir) }
      }
    }
    const parent = dirname(dir)
    if (parent === dir) return null
    dir = parent
  }
  return null
}

function pointedGitDir (file: string, base: string): string | null {
  const m = /^gitdir:\s*(.+)$/m.exec(readFileSync(file, 'utf8'))
  if (m === null) return null
  const path = m[1].trim()
  return isAbsolute(path) ? path : resolve(base, path)
}

function readCommonDir (gitDir: string): string {
  const file = join(gitDir, 'commondir')
  if (!existsSync(file)) return gitDir
  const path = readFileSync(file, 'utf8').trim()
  return isAbsolute(path) ? path : resolve(gitDir, path)
}

function remoteUrl (commonDir: string): string | null {
  const file = join(commonDir, 'config')
  if (!existsSync(file)) return null
  const remotes = new Map<string, string>()
  let current: string | null = null
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim()
    const section = /^\[remote\s+"([^"]+)"\]$/.exec(line)
    if (section !== null) { current = section[1]; continue }
    if (line.startsWith('[')) { current = null; continue }
    const url = /^url\s*=\s*(.+)$/.exec(line)
    if (current !== null && url !== null && !remotes.has(current)) remotes.set(current, url[1].trim())
  }
  return remotes.get('origin') ?? remotes.values().next().value ?? null
}

/**
 * git@github.com:o/r.git, ssh://git@github.com/o/r, https://user:token@GitHub.com/o/r.git/
 * all become github.com/o/r: credentials, scheme, port-less user and .git never name the room.
 */
export function normalizeRemote (url: string): string {
  let u = url.trim()
  const scp = /^(?:[^@/]+@)?([^:/]+):(?!\/)(.+)$/.exec(u)
  if (scp !== null && !/^[a-z][a-z0-9+.-]*:\/\//i.test(u)) u = `${scp[1]}/${scp[2]}`
  else u = u.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/^[^@/]*@/, '')
  u = u.replace(/\/+$/, '').replace(/\.git$/, '').replace(/\/+$/, '')
  const slash = u.indexOf('/')
  return slash === -1 ? u.toLowerCase() : u.slice(0, slash).toLowerCase() + u.slice(slash)
}

/** The default room of the project that contains `cwd`. */
export function projectRoom (cwd: string = process.cwd()): string {
  const git = findGit(cwd)
  if (git === null) return `path:${realpathSync(cwd)}`
  if (git.remote !== null) return `git:${normalizeRemote(git.remote)}`
  // The main working tree holds the common git directory as its .git.
  const main = git.commonDir.endsWith('/.git') ? dirname(git.commonDir) : git.top
  return `path:${realpathSync(main)}`
}

/** Where per-project files (.mcp.json, .claude/) go: the working tree's top level, else cwd. */
export function projectRoot (cwd: string = process.cwd()): string {
  return findGit(cwd)?.top ?? resolve(cwd)
}
