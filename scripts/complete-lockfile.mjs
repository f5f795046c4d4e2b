// Completes package-lock.json with the other platforms' optional binary packages.
//
// Why: the package registry this project is developed against serves only this machine's
// platform binaries (for example @biomejs/cli-darwin-x64 answers 404), so `npm install` here
// writes a lockfile without the darwin/windows/musl entries that a lockfile made elsewhere has,
// and `npm ci` then refuses the lockfile as out of sync. Each missing optional dependency gets
// the entry npm would have written: its version, `optional`, and the os/cpu/libc it is for, so
// `npm ci` validates the tree and skips it on platforms it does not fit. Run after changing
// dependencies: `npm install && node scripts/complete-lockfile.mjs`.
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const packages = lock.packages;

/** os / cpu / libc from a platform package name such as cli-linux-x64-musl or workerd-windows-64. */
function platformOf(name) {
  const base = name.split('/').pop();
  const os = ['android', 'darwin', 'linux', 'win32', 'windows', 'freebsd'].find((o) =>
    base.includes(`-${o}-`),
  );
  if (!os) return null;
  const cpu = /arm64|aarch64/.test(base) ? 'arm64' : /x64|-64\b/.test(base) ? 'x64' : null;
  if (!cpu) return null;
  const entry = { cpu: [cpu], os: [os === 'windows' ? 'win32' : os] };
  if (os === 'linux') entry.libc = [base.endsWith('-musl') ? 'musl' : 'glibc'];
  return entry;
}

/** Where npm would resolve `name` from the package at `path` (walking up node_modules). */
function resolves(path, name) {
  let dir = path;
  for (;;) {
    if (packages[`${dir ? `${dir}/` : ''}node_modules/${name}`]) return true;
    const at = dir.lastIndexOf('node_modules/');
    if (at < 0) return false;
    dir = dir.slice(0, at).replace(/\/$/, '');
  }
}

let added = 0;
for (const [path, pkg] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(pkg.optionalDependencies ?? {})) {
    if (resolves(path, name)) continue;
    const platform = platformOf(name);
    if (!platform) continue;
    const target = `${path ? `${path}/` : ''}node_modules/${name}`;
    packages[target] = { version, ...platform, ...(pkg.dev && { dev: true }), optional: true };
    added++;
  }
}

const sorted = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))),
);
lock.packages = sorted;
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`complete-lockfile: added ${added} platform entries`);
