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
          allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] }],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox and is replayed from history; core/ is imported
    // by workflows, so it follows the same rules.
    files: ['workflows/**/*.ts', 'core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: sandboxForbidden.map((name) => ({
            name,
            message: 'Not allowed in workflow or core code: it is non-deterministic or not sandbox-safe.',
          })),
          patterns: [{ group: ['@opentelemetry/sdk-*', '@opentelemetry/exporter-*'], message: 'OTel SDK is not sandbox-safe.' }],
        },
      ],
    },
  },
);
