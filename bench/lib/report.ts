// Turns figures into the printed summary, latest.md and latest.json.
import os from 'node:os'
import { FIGURES, type FigureId, type FigureSet } from './contract.ts'
import { fmt, fmtRatio, type Figure } from './stats.ts'

export function printFigures (system: string, figures: FigureSet): void {
  const lines = [`${system}`]
  for (const [id, f] of Object.entries(figures)) {
    if (!f) continue
    lines.push(`  ${id.padEnd(36)} ${fmt(f.median, f.unit).padStart(16)}   min..max ${fmt(f.min)}..${fmt(f.max)}   n=${f.runs.length}${f.note ? `   (${f.note})` : ''}`)
  }
  console.log(lines.join('\n'))
}

export interface Machine { cpu: string, cores: number, ramGiB: number, node: string, platform: string, date: string, loadavg: number[] }

export function machine (): Machine {
  const cpus = os.cpus()
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    ramGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    date: new Date().toISOString(),
    loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100)
  }
}

export interface Row {
  figure: string
  crosscast: Figure | null
  crosscastSource: string | null
  alternative: string
  alt: Figure
  /** How many times better crosscast is (>1 = crosscast better), from medians of the same run. */
  advantage: number | null
  /** crosscast median / alternative median, the plain ratio. */
  ratio: number | null
}

export function buildRows (crosscast: Array<{ source: string, figures: FigureSet }>, alternatives: Array<{ system: string, figures: FigureSet }>): Row[] {
  const rows: Row[] = []
  for (const id of Object.keys(FIGURES) as FigureId[]) {
    const mine = crosscast.find((c) => c.figures[id])
    for (const alt of alternatives) {
      const a = alt.figures[id]
      if (!a) continue
      const c = mine?.figures[id] ?? null
      const ratio = c ? c.median / a.median : null
      const advantage = ratio === null ? null : FIGURES[id].lowerIsBetter ? 1 / ratio : ratio
      rows.push({ figure: id, crosscast: c, crosscastSource: mine?.source ?? null, alternative: alt.system, alt: a, ratio, advantage })
    }
  }
  // crosscast figures no alternative measured still belong in the table
  for (const c of crosscast) {
    for (const [id, f] of Object.entries(c.figures)) {
      if (!f || rows.some((r) => r.figure === id)) continue
      rows.push({ figure: id, crosscast: f, crosscastSource: c.source, alternative: '-', alt: { median: Number.NaN, min: Number.NaN, max: Number.NaN, runs: [], unit: f.unit, lowerIsBetter: f.lowerIsBetter }, ratio: null, advantage: null })
    }
  }
  return rows
}

function cell (f: Figure | null): string {
  if (!f || !Number.isFinite(f.median)) return '-'
  return `${fmt(f.median, f.unit)}`
}

function spread (f: Figure | null): string {
  if (!f || !Number.isFinite(f.median)) return '-'
  return `${fmt(f.min)}..${fmt(f.max)}`
}

export function markdown (m: Machine, runs: number, quick: boolean, rows: Row[], notes: string[], errors: string[]): string {
  const out: string[] = []
  out.push('# crosscast benchmarks')
  out.push('')
  out.push(`Machine: ${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, Node ${m.node}, ${m.platform}. Date: ${m.date}. Load average at start: ${m.loadavg.join(' / ')}.`)
  out.push(`Each figure is the median of ${runs} runs${quick ? ' (BENCH_QUICK=1: smoke sizes, not for citing)' : ''}; min..max shows the spread. Ratios are taken from medians measured in this same run. "advantage" = how many times better crosscast is (>1 crosscast better, <1 the alternative better), whichever direction is better for that figure.`)
  out.push('')
  out.push('| figure | what | crosscast | alternative | alt. value | ratio (crosscast / alt.) | advantage | crosscast min..max | alt. min..max |')
  out.push('|---|---|---|---|---|---|---|---|---|')
  for (const r of rows) {
    const title = r.figure in FIGURES ? FIGURES[r.figure as FigureId].title : (r.crosscast?.note ?? '')
    out.push(`| ${r.figure} | ${title} | ${cell(r.crosscast)} | ${r.alternative} | ${cell(r.alt)} | ${r.ratio === null ? '-' : fmtRatio(r.ratio)} | ${r.advantage === null ? '-' : fmtRatio(r.advantage)} | ${spread(r.crosscast)} | ${spread(r.alt)} |`)
  }
  const withNotes = rows.filter((r) => r.alt.note || r.crosscast?.note)
  if (withNotes.length) {
    out.push('')
    out.push('Figure notes:')
    for (const r of withNotes) {
      if (r.alt.note) out.push(`- ${r.figure}, ${r.alternative}: ${r.alt.note}`)
      if (r.crosscast?.note) out.push(`- ${r.figure}, crosscast: ${r.crosscast.note}`)
    }
  }
  if (notes.length) {
    out.push('')
    out.push('Method:')
    for (const n of notes) out.push(`- ${n}`)
  }
  if (errors.length) {
    out.push('')
    out.push('Errors (these figures are missing):')
    for (const e of errors) out.push(`- ${e}`)
  }
  out.push('')
  return out.join('\n')
}
