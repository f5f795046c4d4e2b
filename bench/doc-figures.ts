/**
 * Figures quoted in the docs come from bench/results.json, never from memory: `npm run bench`
 * rewrites the value cell of every doc table row named after a figure, and a unit test
 * (test/unit/docs.test.ts) fails while a doc shows a figure that results.json does not hold.
 */

/** The documents that quote figures, relative to the repository root. */
export const FIGURE_DOCS = ['docs/workers.md', 'docs/aws.md'] as const;

/** First segments of figure names; a table row keyed by one of these quotes a measurement. */
const FIGURE_PREFIXES = [
  'fresh',
  'repeat',
  'check',
  'baseline',
  'worker',
  'lambda',
  'delegation',
  'events',
  'revocation',
];

// `| \`worker.bundle_gzip_kb\` | 77.3 | ≤ 80 | ...`: the first cell names the figure, the second
// holds its value.
const FIGURE_ROW = /^(\|\s*`([a-z][A-Za-z0-9]*(?:\.[A-Za-z0-9_]+)+)`\s*\|)([^|]*)(\|.*)$/;

/** How the benchmarks print a figure: two decimals below 10, one above. */
export function formatFigure(value: number): string {
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}

export interface QuotedFigure {
  name: string;
  shown: string;
  line: number;
}

/** Every table row in `markdown` that quotes a figure. */
export function quotedFigures(markdown: string): QuotedFigure[] {
  const found: QuotedFigure[] = [];
  markdown.split('\n').forEach((text, index) => {
    const match = FIGURE_ROW.exec(text);
    const name = match?.[2];
    if (!match || !name || !FIGURE_PREFIXES.includes(name.split('.')[0] ?? '')) return;
    found.push({ name, shown: (match[3] ?? '').trim(), line: index + 1 });
  });
  return found;
}

/** The quoted figures that disagree with `results` (or that no benchmark measures). */
export function staleFigures(
  markdown: string,
  results: Record<string, number>,
): (QuotedFigure & { expected: string | undefined })[] {
  return quotedFigures(markdown)
    .map((quoted) => {
      const value = results[quoted.name];
      return { ...quoted, expected: value === undefined ? undefined : formatFigure(value) };
    })
    .filter((quoted) => quoted.expected !== quoted.shown);
}

/** `markdown` with every quoted figure replaced by its value in `results`. */
export function syncFigures(markdown: string, results: Record<string, number>): string {
  return markdown
    .split('\n')
    .map((text) => {
      const match = FIGURE_ROW.exec(text);
      const value = match?.[2] === undefined ? undefined : results[match[2]];
      if (!match || value === undefined) return text;
      return `${match[1]} ${formatFigure(value)} ${match[4]}`;
    })
    .join('\n');
}
