// Lint rules that protect the two things that break silently in this codebase: un-awaited promises
// (lost errors, lost events) and non-deterministic imports in workflow code (replay failures).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import { builtinModules } from 'node:module';

const sandboxForbidden = [
  ...builtinModules,
  ...builtinModules.map((m) => `node:${m}`),
  'ioredis',
  'ws',
  'onnxruntime-node',
  'pino',
  'pngjs',
  '@opentelemetry/sdk-node',
  '@opentelemetry/sdk-trace-node',
  '@opentelemetry/sdk-trace-base',
  '@temporalio/activity',
  '@temporalio/worker',
  '@temporalio/client',
];

const sandboxPaths = sandboxForbidden.map((name) => ({
  name,
  message: 'Not allowed in workflow or core code: it is non-deterministic or not sandbox-safe.',
}));
const otelSdk = {
  group: ['@opentelemetry/sdk-*', '@opentelemetry/exporter-*'],
  message: 'OTel SDK is not sandbox-safe.',
};

/** infra/ provisions and launches; production code (and the benches) never depend on it. */
const NO_INFRA = { group: ['**/infra/*', '**/infra'], message: 'Only infra/ and test/ may import from infra/.' };

const FOLDER_IMPORT_BANS = {
  // Workflow code runs in Temporal's deterministic sandbox and is replayed from history; core/ is imported by
  // workflows, so it follows the same rules.
  workflows: { paths: sandboxPaths, patterns: [otelSdk] },
  core: { paths: sandboxPaths, patterns: [otelSdk] },
  // The inference engine runs models and knows nothing of the orchestrator that calls it (activities/inference.ts
  // adapts it to Temporal), so benches, tests and other hosts drive it directly.
  inference: {
    patterns: [
      { group: ['@temporalio/*'], message: 'inference/ is Temporal-free: adapt it in activities/inference.ts.' },
      {
        group: ['**/activities/*', '**/activities', '**/workflows/*', '**/gateway/*', '**/client/*', '**/workers/*'],
        message: 'inference/ depends only on core/ and runtime/.',
      },
    ],
  },
  activities: {},
  gateway: {},
  client: {},
  workers: {},
  runtime: {},
  bench: {},
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.atelier/**', 'infra/bootstrap.cjs', 'eslint.config.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
      globals: { ...globals.node },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test's test()/describe() return promises that the runner itself awaits.
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // One no-restricted-imports entry per folder (a later entry for the same rule would replace an earlier one).
  ...Object.entries(FOLDER_IMPORT_BANS).map(([folder, bans]) => ({
    files: [`${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', { paths: bans.paths ?? [], patterns: [...(bans.patterns ?? []), NO_INFRA] }],
    },
  })),
);
