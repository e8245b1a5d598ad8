// The autoscaling policy a deployment runs (issue 13): seed 001's numbers (core/autoscale-policy.ts), or a JSON file
// named by ATELIER_AUTOSCALE_POLICY whose sections replace the seed's. Read once at start; a bad file stops the process
// with a message naming the file and the field.
import { readFileSync } from 'node:fs';
import { parseAutoscalePolicy, SEED_001_POLICY, type AutoscalePolicy } from '../core/autoscale-policy';

export function loadAutoscalePolicy(file: string): AutoscalePolicy {
  if (file === '') return SEED_001_POLICY;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new TypeError(`ATELIER_AUTOSCALE_POLICY=${file}: ${(err as Error).message}`);
  }
  return parseAutoscalePolicy(raw, `ATELIER_AUTOSCALE_POLICY=${file}`);
}
