/** Durations as people type them in the CLI and the admin API (`--expires 2h`, `?since=7d`). */

/** Seconds from `90`, `90s`, `15m`, `1h`, `2d`. */
export function parseDuration(text: string): number | null {
  const match = /^(\d{1,7})([smhd]?)$/.exec(text);
  if (match === null) return null;
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as '' | 's' | 'm' | 'h' | 'd'];
  const seconds = Number(match[1]) * unit;
  return seconds > 0 ? seconds : null;
}
