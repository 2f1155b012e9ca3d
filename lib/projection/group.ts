// Rows of one query over a page of items, grouped per item in query order.

export function byItem<R, T> (rows: readonly R[], idOf: (row: R) => string, record: (row: R) => T): Map<string, T[]> {
  const out = new Map<string, T[]>()
  for (const row of rows) {
    const id = idOf(row)
    let list = out.get(id)
    if (list === undefined) out.set(id, list = [])
    list.push(record(row))
  }
  return out
}
