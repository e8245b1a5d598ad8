// Prebundles the workflow code for production workers (`npm run build` runs this after tsc and writes
// dist/workflow-bundle.js). Workers load that file instead of running webpack at start-up, and the replay test
// bundles with the very same options, so what replay checks is what production runs.
import { bundleWorkflowCode, type BundleOptions, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Workflow interceptor modules bundled into the workflow code. One list for production and replay: an
 * interceptor that changes commands must be replayed with, or replay would test a different program.
 */
export const WORKFLOW_INTERCEPTOR_MODULES: readonly string[] = [
  // OpenTelemetry: a span per workflow run and per activity it schedules, linked to the caller's trace.
  require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors'),
];

/** Directory of the workflow sources: workflows/ under tsx, dist/workflows once compiled. */
export function workflowsPath(): string {
  return path.resolve(__dirname, '..', 'workflows');
}

/** Where `npm run build` puts the bundle: `<repo>/dist/workflow-bundle.js`, whichever way this file runs. */
export function defaultBundlePath(): string {
  const inDist = path.basename(path.resolve(__dirname, '..')) === 'dist';
  return path.resolve(__dirname, '..', ...(inDist ? [] : ['dist']), 'workflow-bundle.js');
}

export function workflowBundleOptions(overrides: Pick<BundleOptions, 'logger'> = {}): BundleOptions {
  return {
    workflowsPath: workflowsPath(),
    workflowInterceptorModules: [...WORKFLOW_INTERCEPTOR_MODULES],
    ...overrides,
  };
}

/** Bundles the workflows with the production options (used by the build, the replay test and dev workers). */
export function bundleGenerationWorkflows(
  overrides: Pick<BundleOptions, 'logger'> = {},
): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode(workflowBundleOptions(overrides));
}

async function main(): Promise<void> {
  const out = process.argv[2] ? path.resolve(process.argv[2]) : defaultBundlePath();
  const started = Date.now();
  // The code carries its source map inline (the separate `sourceMap` field is deprecated and empty).
  const { code } = await bundleGenerationWorkflows();
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, code);
  process.stdout.write(
    `Workflow bundle written to ${path.relative(process.cwd(), out)} (${Math.round(code.length / 1024)} KiB, ${Date.now() - started} ms)\n`,
  );
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(
      `Bundling workflows failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  });
}
