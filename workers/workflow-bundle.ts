// Prebundles the workflow code for production workers (`npm run build` runs this after tsc and writes
// dist/workflow-bundle.js, and dist/workflow-bundle.traced.js with the OpenTelemetry workflow interceptors). Workers
// load one of those instead of running webpack at start-up: the traced one when the process exports traces, since
// the interceptors cost the control worker about a quarter of its CPU per request even with nowhere to send spans.
// The replay test bundles both with the very same options, so what replay checks is what production runs.
import { bundleWorkflowCode, type BundleOptions, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** A workflow bundle without (`plain`) or with (`traced`) the tracing interceptors. */
export type BundleVariant = 'plain' | 'traced';
export const BUNDLE_VARIANTS: readonly BundleVariant[] = ['plain', 'traced'];

/**
 * Workflow interceptor modules bundled into the workflow code of each variant. One list for production and replay:
 * an interceptor that changes commands must be replayed with, or replay would test a different program (these
 * only add headers and spans, so histories of either variant replay on both).
 */
export const WORKFLOW_INTERCEPTOR_MODULES: Readonly<Record<BundleVariant, readonly string[]>> = {
  plain: [],
  // OpenTelemetry: a span per workflow run and per activity it schedules, linked to the caller's trace.
  traced: [require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors')],
};

/** Directory of the workflow sources: workflows/ under tsx, dist/workflows once compiled. */
export function workflowsPath(): string {
  return path.resolve(__dirname, '..', 'workflows');
}

/**
 * Where `npm run build` puts a variant: `<repo>/dist/workflow-bundle.js` (plain) or `workflow-bundle.traced.js`,
 * whichever way this file runs.
 */
export function defaultBundlePath(variant: BundleVariant = 'plain'): string {
  const inDist = path.basename(path.resolve(__dirname, '..')) === 'dist';
  const file = variant === 'plain' ? 'workflow-bundle.js' : 'workflow-bundle.traced.js';
  return path.resolve(__dirname, '..', ...(inDist ? [] : ['dist']), file);
}

export function workflowBundleOptions(
  variant: BundleVariant = 'plain',
  overrides: Pick<BundleOptions, 'logger'> = {},
): BundleOptions {
  return {
    workflowsPath: workflowsPath(),
    workflowInterceptorModules: [...WORKFLOW_INTERCEPTOR_MODULES[variant]],
    ...overrides,
  };
}

/** Bundles the workflows with the production options (used by the build, the replay test and dev workers). */
export function bundleGenerationWorkflows(
  variant: BundleVariant = 'plain',
  overrides: Pick<BundleOptions, 'logger'> = {},
): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode(workflowBundleOptions(variant, overrides));
}

async function main(): Promise<void> {
  for (const variant of BUNDLE_VARIANTS) {
    const out = defaultBundlePath(variant);
    const started = Date.now();
    // The code carries its source map inline (the separate `sourceMap` field is deprecated and empty).
    const { code } = await bundleGenerationWorkflows(variant);
    await mkdir(path.dirname(out), { recursive: true });
    await writeFile(out, code);
    const size = Math.round(code.length / 1024);
    process.stdout.write(
      `Workflow bundle written to ${path.relative(process.cwd(), out)} (${size} KiB, ${Date.now() - started} ms)\n`,
    );
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(
      `Bundling workflows failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  });
}
