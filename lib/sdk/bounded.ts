// Maps that forget their least recently used entries past a cap, for facts a
// node only needs recently (the latest event per resource, refused writers):
// memory stays flat however long the node runs.

/**
 * Two generations of at most cap/2 entries each: entries are set and read
 * into the young one, and when it is full the old generation is dropped whole
 * and the young one becomes old. So the map holds at most `cap` entries and
 * always the cap/2 most recently used. (Evicting one entry at a time from the
 * front of a JavaScript Map costs O(deleted entries) per eviction, since V8
 * leaves deleted slots in place until it rehashes: ~7 µs per set at a cap of
 * 10,000 once full.)
 */
export class LruMap<K, V> {
  private young = new Map<K, V>()
  private old = new Map<K, V>()
  private readonly generation: number

  constructor (cap: number) {
    this.generation = Math.max(1, Math.floor(cap / 2))
  }

  get size (): number {
    return this.young.size + this.old.size
  }

  get (key: K): V | undefined {
    const value = this.young.get(key)
    if (value !== undefined) return value
    const older = this.old.get(key)
    if (older !== undefined) this.set(key, older)
    return older
  }

  /** The value without marking it used: for a caller that sets the key right after (set marks it). */
  peek (key: K): V | undefined {
    const value = this.young.get(key)
    return value !== undefined ? value : this.old.get(key)
  }

  has (key: K): boolean {
    return this.young.has(key) || this.old.has(key)
  }

  set (key: K, value: V): void {
    if (this.old.size > 0) this.old.delete(key)
    this.young.set(key, value)
    if (this.young.size >= this.generation) {
      this.old = this.young
      this.young = new Map()
    }
  }

  clear (): void {
    this.young.clear()
    this.old.clear()
  }
}
