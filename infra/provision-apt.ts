// Installing a Debian package a test or the stack needs (prometheus, postgresql) without leaving its system service
// running: while apt-get runs, a policy-rc.d that answers 101 keeps the package's postinst from starting the service.
// The policy is written only when the machine has none (an existing one is the administrator's and stays as it is)
// and removed afterwards. Atelier runs its own servers on private ports and data directories.
import { promises as fs } from 'node:fs';
import { errorMessage, ProvisionError, runStreaming } from './provision-common';

/** Debian's policy hook: exit 101 tells invoke-rc.d / deb-systemd-invoke not to start services. */
const POLICY_RC_D = '/usr/sbin/policy-rc.d';
const NO_START_POLICY =
  '#!/bin/sh\n# Written by Atelier provisioning for the length of an apt-get install.\nexit 101\n';

/** Writes a policy-rc.d that forbids service starts, when none exists; true when we wrote it (and must remove it). */
async function placeNoStartPolicy(log: (line: string) => void): Promise<boolean> {
  try {
    await fs.writeFile(POLICY_RC_D, NO_START_POLICY, { mode: 0o755, flag: 'wx' });
    log(`wrote ${POLICY_RC_D} (exit 101) so the package starts no service; removed after the install`);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') log(`${POLICY_RC_D} exists already; leaving it as it is`);
    else log(`could not write ${POLICY_RC_D} (${errorMessage(err)}); the package may start its service`);
    return false;
  }
}

/**
 * `apt-get update && apt-get install -y --no-install-recommends <pkg>` with service starts fenced off; a failure
 * throws {@link ProvisionError} with `instructions` (how to install it by hand) and apt-get's error.
 */
export async function aptGetInstallFenced(
  aptGet: string,
  pkg: string,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
  instructions: string,
): Promise<void> {
  const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' };
  const placedPolicy = await placeNoStartPolicy(log);
  try {
    await runStreaming(aptGet, ['update'], aptEnv, log);
    await runStreaming(aptGet, ['install', '-y', '--no-install-recommends', pkg], aptEnv, log);
  } catch (err) {
    throw new ProvisionError(`${instructions}\napt-get failed: ${errorMessage(err)}`, { cause: err });
  } finally {
    if (placedPolicy) await fs.rm(POLICY_RC_D, { force: true });
  }
}
