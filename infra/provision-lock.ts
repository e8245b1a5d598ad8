// The lock that serialises installs into the shared cache: concurrent `npm test` / `npm start` runs must not both
// spend minutes building the same binary, nor write it at the same time.
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { delay } from './processes';
import { ProvisionError } from './provision-common';

/** Runs `fn` while holding an exclusive lock file. A lock left by a dead process is taken over. */
export async function withInstallLock<T>(
  lockPath: string,
  log: (line: string) => void,
  fn: () => Promise<T>,
): Promise<T> {
  await fs.mkdir(path.dirname(lockPath), { recursive: true });
  const deadline = Date.now() + 45 * 60_000;
  let announced = false;
  for (;;) {
    try {
      const handle = await fs.open(lockPath, 'wx');
      await handle.writeFile(JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = await readLockHolder(lockPath);
      if (holder === undefined || !isProcessAlive(holder)) {
        await fs.rm(lockPath, { force: true });
        continue;
      }
      if (!announced) {
        log(`waiting for process ${holder}, which is installing the same binary (lock ${lockPath})`);
        announced = true;
      }
      if (Date.now() > deadline) {
        throw new ProvisionError(`Timed out waiting for the install lock ${lockPath} held by process ${holder}`);
      }
      await delay(2_000);
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lockPath, { force: true });
  }
}

async function readLockHolder(lockPath: string): Promise<number | undefined> {
  try {
    const parsed = JSON.parse(await fs.readFile(lockPath, 'utf8')) as { pid?: unknown };
    return typeof parsed.pid === 'number' ? parsed.pid : undefined;
  } catch {
    // Written but not yet filled by its holder, or garbage: give the holder a moment before calling it stale.
    await delay(500);
    try {
      const parsed = JSON.parse(await fs.readFile(lockPath, 'utf8')) as { pid?: unknown };
      return typeof parsed.pid === 'number' ? parsed.pid : undefined;
    } catch {
      return undefined;
    }
  }
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
