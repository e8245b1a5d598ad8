// package-lock.json must be complete for `npm ci`, which refuses a lockfile that lacks any package the tree needs,
// including the optional per-platform binaries of native packages (@swc/core-darwin-arm64 and the like) that are
// never installed on this machine. A lockfile written where the registry lacks some of those binaries passes every
// local test and then fails CI; this catches it before it lands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../../infra/repo-root';

interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

const root = repoRoot();
const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
};
const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as LockEntry;

/** Where Node would find `name` from the package at `from` (a lockfile key): its own node_modules, then each parent's. */
function resolveFrom(from: string, name: string): string | undefined {
  let base = from;
  for (;;) {
    const candidate = `${base ? `${base}/` : ''}node_modules/${name}`;
    if (lock.packages[candidate]) return candidate;
    if (!base) return undefined;
    const cut = base.lastIndexOf('/node_modules/');
    base = cut < 0 ? '' : base.slice(0, cut);
  }
}

void test('package-lock.json is lockfile v3 and lists the same direct dependencies as package.json', () => {
  assert.equal(lock.lockfileVersion, 3);
  const locked = lock.packages[''];
  assert.ok(locked, 'the root entry');
  assert.deepEqual(locked.dependencies, manifest.dependencies);
  assert.deepEqual(locked.devDependencies, manifest.devDependencies);
});

void test('every dependency of every locked package, optional platform binaries included, has an entry', () => {
  const missing: string[] = [];
  for (const [key, entry] of Object.entries(lock.packages)) {
    const wanted = { ...entry.dependencies, ...entry.optionalDependencies };
    // Required peers are installed by npm 7+ too; optional ones only when something else brings them.
    for (const [peer, range] of Object.entries(entry.peerDependencies ?? {})) {
      if (!entry.peerDependenciesMeta?.[peer]?.optional) wanted[peer] = range;
    }
    for (const [name, range] of Object.entries(wanted)) {
      if (!resolveFrom(key, name)) missing.push(`${key || '(root)'} -> ${name}@${range}`);
    }
  }
  assert.deepEqual(
    missing,
    [],
    'run `npm install` where the registry has every platform binary, or pin the package (package.json "overrides")',
  );
});
