// Builds infra/k8s's kustomizations and validates what they produce with kubeconform against the locally generated
// schemas (k8s-schemas.ts): what test/infra/k8s-manifests.test.ts runs on every manifest, and what an operator can
// run on an overlay of their own. Nothing here talks to a cluster.
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { K8sSchemas } from './k8s-schemas';

/** One resource as kubeconform reports it (`-output json -verbose`). */
export interface KubeconformResource {
  readonly filename: string;
  readonly kind: string;
  readonly name: string;
  /** apiVersion. */
  readonly version: string;
  readonly status: 'statusValid' | 'statusInvalid' | 'statusError' | 'statusSkipped' | 'statusEmpty';
  readonly msg?: string;
}

export interface KubeconformReport {
  readonly resources: readonly KubeconformResource[];
  readonly summary: {
    readonly valid: number;
    readonly invalid: number;
    readonly errors: number;
    readonly skipped: number;
  };
}

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(command: string, args: readonly string[], cwd?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(command, [...args], { cwd, timeout: 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

/** `kustomize build <dir>`: the manifests as one multi-document YAML stream; throws with kustomize's message. */
export async function kustomizeBuild(kustomize: string, dir: string): Promise<string> {
  const { code, stdout, stderr } = await run(kustomize, ['build', dir]);
  if (code !== 0) throw new Error(`kustomize build ${dir} exited with code ${code}:\n${stderr}`);
  return stdout;
}

/**
 * Validates a YAML stream with kubeconform: strict (unknown fields and duplicate keys are errors), every resource
 * reported, no schema download (a kind without a local schema is an error, not skipped).
 */
export async function kubeconformValidate(
  kubeconform: string,
  schemas: K8sSchemas,
  manifests: string,
): Promise<KubeconformReport> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-kubeconform-'));
  try {
    const file = path.join(dir, 'manifests.yaml');
    await fs.writeFile(file, manifests);
    const args = ['-strict', '-summary', '-verbose', '-output', 'json'];
    args.push('-kubernetes-version', schemas.kubernetesVersion);
    for (const location of schemas.schemaLocations) args.push('-schema-location', location);
    const { code, stdout, stderr } = await run(kubeconform, [...args, file]);
    // Exit code 1 means "some resource is invalid", and the report says which; anything else is kubeconform failing.
    if (code !== 0 && code !== 1) throw new Error(`kubeconform exited with code ${code}:\n${stderr}${stdout}`);
    return JSON.parse(stdout) as KubeconformReport;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** The report's problems, one line each (for assertion messages). */
export function describeProblems(report: KubeconformReport): string {
  return report.resources
    .filter((r) => r.status !== 'statusValid')
    .map((r) => `${r.kind}/${r.name}: ${r.status} ${r.msg ?? ''}`)
    .join('\n');
}
