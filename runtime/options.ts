// Typed configuration from environment variables: each component declares a table of options (variable, doc,
// default, parser) and resolves it once at start-up; `--help` prints the same table.

export interface OptionSpec<T> {
  /** Environment variable that sets this option. */
  readonly env: string;
  /** One line for `--help` and the README, with units. */
  readonly doc: string;
  readonly default: T;
  readonly parse: (raw: string, env: string) => T;
}

export type OptionTable<T> = { readonly [K in keyof T]: OptionSpec<T[K]> };

export function resolveOptions<T>(
  table: OptionTable<T>,
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<T> = {},
): T {
  const out = {} as T;
  for (const key of Object.keys(table) as (keyof T)[]) {
    const spec = table[key];
    const raw = env[spec.env];
    out[key] =
      key in overrides
        ? (overrides[key] as T[typeof key])
        : raw === undefined || raw === ''
          ? spec.default
          : spec.parse(raw, spec.env);
  }
  return out;
}

export function formatOptionHelp<T>(title: string, table: OptionTable<T>): string {
  const rows = (Object.keys(table) as (keyof T)[]).map((key) => {
    const spec = table[key];
    return `  ${spec.env.padEnd(34)} ${spec.doc} (default: ${JSON.stringify(spec.default)})`;
  });
  return `${title}\n\nEnvironment variables:\n${rows.join('\n')}\n`;
}

export const parse = {
  string: (raw: string): string => raw,
  int:
    (min: number, max: number) =>
    (raw: string, env: string): number => {
      const n = Number(raw);
      if (!Number.isInteger(n) || n < min || n > max) {
        throw new TypeError(`${env}=${JSON.stringify(raw)}: expected an integer in [${min}, ${max}]`);
      }
      return n;
    },
  number:
    (min: number, max: number) =>
    (raw: string, env: string): number => {
      const n = Number(raw);
      if (!Number.isFinite(n) || n < min || n > max) {
        throw new TypeError(`${env}=${JSON.stringify(raw)}: expected a number in [${min}, ${max}]`);
      }
      return n;
    },
  bool: (raw: string, env: string): boolean => {
    if (['1', 'true', 'yes', 'on'].includes(raw.toLowerCase())) return true;
    if (['0', 'false', 'no', 'off'].includes(raw.toLowerCase())) return false;
    throw new TypeError(`${env}=${JSON.stringify(raw)}: expected true or false`);
  },
  list: (raw: string): string[] =>
    raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
};
