// Keeps the README's Configuration section equal to the option tables the processes resolve at start-up, so the
// documented variables and defaults cannot drift from the code. `npm run docs` rewrites the section;
// `npm run docs -- --check` (and test/unit/readme.test.ts) fails when it is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './repo-root';
import { STACK_OPTIONS } from './stack-options';
import { GATEWAY_OPTION_TABLE } from '../gateway/options';
import { COMMON_WORKER_OPTIONS, WORKFLOW_BUNDLE_OPTIONS } from '../workers/worker-runtime';
import { GPU_WORKER_OPTIONS } from '../workers/gpu-worker';
import { CONTROL_WORKER_OPTIONS } from '../workers/control-worker';
import { ONNX_BACKEND_OPTION_TABLE } from '../inference/onnx';
import type { OptionSpec } from '../runtime/options';
import { SHARED_OPTION_TABLE } from '../runtime/shared-options';

type AnyTable = Readonly<Record<string, OptionSpec<unknown>>>;

interface Section {
  readonly title: string;
  readonly intro: string;
  readonly table: AnyTable;
  /** Variables documented in an earlier section (shared by several processes); omitted where the default is the same. */
  readonly omit?: AnyTable;
}

const SHARED = SHARED_OPTION_TABLE as unknown as AnyTable;

const SECTIONS: readonly Section[] = [
  {
    title: 'Every process',
    intro:
      'Declared once (`runtime/shared-options.ts`) and read by the gateway, both workers and the launcher, which passes the values it resolved to the processes it starts. Every process of a deployment must use the same `ATELIER_REDIS_PREFIX`; one that finds its peers under another prefix logs an error naming both and reports it in `/readyz`.',
    table: SHARED,
  },
  {
    title: 'Local stack (`npm start`)',
    intro:
      'The launcher reads these and passes every other variable through to the processes it starts, so any gateway or worker variable below also works with `npm start`.',
    table: STACK_OPTIONS as unknown as AnyTable,
    omit: SHARED,
  },
  {
    title: 'Gateway (`gateway/main.ts`)',
    intro: 'One or more instances behind a load balancer; they share Redis.',
    table: GATEWAY_OPTION_TABLE as unknown as AnyTable,
    omit: SHARED,
  },
  {
    title: 'Every worker',
    intro: 'Read by the GPU workers and the control worker.',
    table: { ...COMMON_WORKER_OPTIONS, ...WORKFLOW_BUNDLE_OPTIONS } as unknown as AnyTable,
    omit: SHARED,
  },
  {
    title: 'GPU worker (`workers/gpu-worker.ts`)',
    intro:
      'One process per GPU fleet; it polls `<region>.gpu-<type>`, and its relax lane `<region>.gpu-<type>.relax` ' +
      'while it has no turbo or fast work, and runs the inference activity.',
    table: GPU_WORKER_OPTIONS as unknown as AnyTable,
    omit: COMMON_WORKER_OPTIONS as unknown as AnyTable,
  },
  {
    title: 'ONNX backend (GPU workers with `onnx` in `ATELIER_INFERENCE_BACKENDS`)',
    intro: 'See [Inference](#inference) and [models/README.md](models/README.md).',
    table: ONNX_BACKEND_OPTION_TABLE as unknown as AnyTable,
  },
  {
    title: 'Control worker (`workers/control-worker.ts`)',
    intro: 'Runs the workflows and the safety, storage and event activities on `<region>.control`.',
    table: CONTROL_WORKER_OPTIONS as unknown as AnyTable,
    omit: { ...COMMON_WORKER_OPTIONS, ...WORKFLOW_BUNDLE_OPTIONS } as unknown as AnyTable,
  },
];

function formatDefault(value: unknown): string {
  if (value === undefined) return '*(required)*';
  if (value === '') return '*(empty)*';
  if (Array.isArray(value)) return value.length === 0 ? '*(none)*' : `\`${value.join(',')}\``;
  if (typeof value === 'string' && path.isAbsolute(value)) return `\`${path.relative(repoRoot(), value)}\``;
  return `\`${String(value)}\``;
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

export function renderConfiguration(): string {
  const out: string[] = [
    'Every process reads its settings from environment variables once at start-up, checks them, and exits with a message naming the variable when one is invalid; `--help` on any entry point prints its table.',
    '',
  ];
  for (const section of SECTIONS) {
    out.push(`### ${section.title}`, '', section.intro, '', '| variable | default | meaning |', '|---|---|---|');
    const omitted = new Map(Object.values(section.omit ?? {}).map((s) => [s.env, s.default]));
    for (const spec of Object.values(section.table)) {
      if (omitted.has(spec.env) && omitted.get(spec.env) === spec.default) continue;
      out.push(`| \`${spec.env}\` | ${formatDefault(spec.default)} | ${escapeCell(spec.doc)} |`);
    }
    out.push('');
  }
  return out.join('\n').trimEnd();
}

const START = '<!-- configuration:start -->';
const END = '<!-- configuration:end -->';

/** The README with its configuration section replaced by `body`. */
export function replaceConfiguration(readme: string, body: string): string {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`README.md lacks the ${START} ... ${END} markers`);
  return `${readme.slice(0, start + START.length)}\n${body}\n${readme.slice(end)}`;
}

export function readmePath(): string {
  return path.join(repoRoot(), 'README.md');
}

if (require.main === module) {
  const current = readFileSync(readmePath(), 'utf8');
  const next = replaceConfiguration(current, renderConfiguration());
  if (process.argv.includes('--check')) {
    if (next !== current) {
      process.stderr.write('README.md configuration section is stale; run `npm run docs`\n');
      process.exit(1);
    }
  } else if (next !== current) {
    writeFileSync(readmePath(), next);
    process.stdout.write('README.md configuration section updated\n');
  }
}
