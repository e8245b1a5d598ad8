// The README's Configuration section is generated from the option tables the processes resolve at start-up
// (infra/readme.ts); this fails when a variable, default or description changed without `npm run docs`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { readmePath, renderConfiguration, replaceConfiguration } from '../../infra/readme';

void test('the README documents every environment variable with the default the code uses', () => {
  const readme = readFileSync(readmePath(), 'utf8');
  const rendered = renderConfiguration();
  for (const variable of [
    'ATELIER_INFERENCE_BACKENDS',
    'ATELIER_ONNX_MAX_BATCH_SIZE',
    'ATELIER_GATEWAY_PORT',
    'TEMPORAL_UI_PORT',
  ]) {
    assert.ok(rendered.includes(`| \`${variable}\` |`), `${variable} is in the generated table`);
  }
  assert.equal(
    replaceConfiguration(readme, rendered),
    readme,
    'README.md configuration section is stale: run `npm run docs`',
  );
});

void test('a README without the configuration markers is reported, not silently rewritten', () => {
  assert.throws(() => replaceConfiguration('# no markers\n', 'x'), /configuration:start/);
});
