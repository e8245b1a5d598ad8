// Clients program against the error codes in the README; core/errors.ts is what the code sends. This keeps the two
// lists identical, in both directions and per frame type, so a new code cannot ship undocumented and a removed
// one cannot linger in the docs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { FAILURE_CODES, FAILURE_TYPES, FRAME_ERROR_CODES, REJECT_CODES } from '../../core/errors';

const README = readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');

function protocolSection(): string {
  const start = README.indexOf('<!-- protocol:start -->');
  const end = README.indexOf('<!-- protocol:end -->');
  assert.ok(start >= 0 && end > start, 'README.md has the protocol:start/protocol:end markers');
  return README.slice(start, end);
}

/**
 * The codes of each code table in the protocol section, in order of appearance: a table is a run of rows whose
 * first cell is a single backticked UPPER_CASE code.
 */
function documentedCodeTables(): string[][] {
  const tables: string[][] = [];
  let current: string[] | null = null;
  for (const line of protocolSection().split('\n')) {
    const m = /^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|/.exec(line);
    if (m?.[1]) {
      current ??= [];
      current.push(m[1]);
    } else if (current && !/^\|/.test(line)) {
      tables.push(current);
      current = null;
    }
  }
  if (current) tables.push(current);
  return tables;
}

const sorted = (codes: Iterable<string>): string[] => [...codes].sort();

void test('the README documents exactly the client error codes of core/errors.ts', () => {
  const documented = documentedCodeTables().flat();
  const inCode = [...Object.keys(FRAME_ERROR_CODES), ...Object.keys(REJECT_CODES), ...Object.keys(FAILURE_CODES)];
  assert.deepEqual(sorted(documented), sorted(inCode));
  assert.equal(new Set(documented).size, documented.length, 'no code is documented twice');
});

void test('each frame type has its own table: error, rejected, failed', () => {
  const tables = documentedCodeTables().map((t) => sorted(t));
  assert.deepEqual(tables, [
    sorted(Object.keys(FRAME_ERROR_CODES)),
    sorted(Object.keys(REJECT_CODES)),
    sorted(Object.keys(FAILURE_CODES)),
  ]);
});

void test('every ApplicationFailure type maps to a documented failure code', () => {
  const documentedFailures = new Set(documentedCodeTables()[2]);
  for (const [type, { code }] of Object.entries(FAILURE_TYPES)) {
    assert.ok(documentedFailures.has(code), `${type} -> ${code} is documented`);
  }
});
