// Maps that forget their least recently used entries past a cap, for facts a
// node only needs recently (the latest event per resource, refused writers):
// memory stays flat however long the node runs.

export class LruMap<K, V> {
  private readonly map = new Map<K, V>()
  private readonly cap: number

  constructor (cap: number) {
    this.cap = cap
  }

  get size (): number {
    return this.map.size
  }

  get (key: K): V | undefined {
    const value = this.map.get(key)
    if (value !== undefined) {
      this.map.delete(key)
      this.map.set(key, value)
    }
    return value
  }

  has (key: K): boolean {
    return this.map.has(key)
  }

  set (key: K, value: V): void {
    this.map.delete(key)
    this.map.set(key, value)
    if (this.map.size > this.cap) this.map.delete(this.map.keys().next().value as K)
  }

  clear (): void {
    this.map.clear()
  }
}
