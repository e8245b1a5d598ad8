// Provisioning finds the binaries in the documented order, and a wrong explicit path fails loudly instead of
// silently running some other binary.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProvisionError, resolveRedisServer, resolveTemporalCli, cachedTemporalCliPath } from '../../infra/provision';

/** The real Temporal CLI (provisioned by `npm test`), linked under different names to tell the candidates apart. */
let realTemporal: string;
let realRedis: string;
let scratch: string;

before(async () => {
  realTemporal = await resolveTemporalCli({ install: false });
  realRedis = await resolveRedisServer({ install: false });
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-provision-test-'));
});

after(async () => {
  await fs.rm(scratch, { recursive: true, force: true });
});

/** A directory holding `name` as a link to `target`, returning the link's path. */
async function linkIn(dir: string, name: string, target: string): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const link = path.join(dir, name);
  await fs.symlink(target, link);
  return link;
}

describe('resolveTemporalCli', () => {
  test('TEMPORAL_CLI_PATH wins over PATH and the cache', async () => {
    const explicit = await linkIn(path.join(scratch, 'explicit'), 'temporal', realTemporal);
    const onPath = await linkIn(path.join(scratch, 'path-a'), 'temporal', realTemporal);
    const cacheDir = path.join(scratch, 'cache-a');
    await linkIn(path.join(cacheDir, 'bin'), 'temporal', realTemporal);
    const resolved = await resolveTemporalCli({
      env: { TEMPORAL_CLI_PATH: explicit, PATH: path.dirname(onPath), ATELIER_CACHE_DIR: cacheDir },
      install: false,
    });
    assert.equal(resolved, explicit);
  });

  test('a TEMPORAL_CLI_PATH that does not exist is a clear error, not a fallback', async () => {
    const onPath = await linkIn(path.join(scratch, 'path-b'), 'temporal', realTemporal);
    const missing = path.join(scratch, 'nowhere', 'temporal');
    await assert.rejects(
      resolveTemporalCli({ env: { TEMPORAL_CLI_PATH: missing, PATH: path.dirname(onPath) }, install: false }),
      (err: unknown) => {
        assert.ok(err instanceof ProvisionError);
        assert.match(err.message, /TEMPORAL_CLI_PATH=/);
        assert.ok(err.message.includes(missing), err.message);
        assert.match(err.message, /no such file/);
        return true;
      },
    );
  });

  test('a TEMPORAL_CLI_PATH that is some other program is rejected', async () => {
    await assert.rejects(
      resolveTemporalCli({ env: { TEMPORAL_CLI_PATH: realRedis, PATH: '' }, install: false }),
      /is not a working Temporal CLI/,
    );
  });

  test('`temporal` on PATH is used when TEMPORAL_CLI_PATH is unset', async () => {
    const onPath = await linkIn(path.join(scratch, 'path-c'), 'temporal', realTemporal);
    const cacheDir = path.join(scratch, 'cache-c');
    await linkIn(path.join(cacheDir, 'bin'), 'temporal', realTemporal);
    const resolved = await resolveTemporalCli({
      env: { PATH: path.dirname(onPath), ATELIER_CACHE_DIR: cacheDir },
      install: false,
    });
    assert.equal(resolved, onPath);
  });

  test('a broken `temporal` on PATH is skipped in favour of the cache', async () => {
    const pathDir = path.join(scratch, 'path-d');
    await fs.mkdir(pathDir, { recursive: true });
    const broken = path.join(pathDir, 'temporal');
    await fs.writeFile(broken, '#!/bin/sh\necho "not the temporal cli" >&2\nexit 3\n', { mode: 0o755 });
    const cacheDir = path.join(scratch, 'cache-d');
    const cached = await linkIn(path.join(cacheDir, 'bin'), 'temporal', realTemporal);
    const logged: string[] = [];
    const resolved = await resolveTemporalCli({
      env: { PATH: pathDir, ATELIER_CACHE_DIR: cacheDir },
      install: false,
      log: (line) => logged.push(line),
    });
    assert.equal(resolved, cached);
    assert.equal(cachedTemporalCliPath({ ATELIER_CACHE_DIR: cacheDir }), cached);
    assert.ok(
      logged.some((l) => l.includes(broken)),
      `expected a note about ${broken}, got ${JSON.stringify(logged)}`,
    );
  });

  test('the cache dir follows XDG_CACHE_HOME when ATELIER_CACHE_DIR is unset', () => {
    assert.equal(
      cachedTemporalCliPath({ XDG_CACHE_HOME: '/x/cache' }),
      path.join('/x/cache', 'atelier', 'bin', 'temporal'),
    );
  });

  test('nothing found and installing not allowed: the error says how to install it', async () => {
    const emptyDir = path.join(scratch, 'empty');
    await fs.mkdir(emptyDir, { recursive: true });
    await assert.rejects(
      resolveTemporalCli({
        env: { PATH: emptyDir, ATELIER_CACHE_DIR: path.join(scratch, 'cache-empty') },
        install: false,
      }),
      (err: unknown) => {
        assert.ok(err instanceof ProvisionError);
        assert.match(err.message, /go install github\.com\/temporalio\/cli\/cmd\/temporal@v1\.5\.1/);
        assert.match(err.message, /releases\/download\/v1\.5\.1\/temporal_cli_1\.5\.1_/);
        assert.match(err.message, /TEMPORAL_CLI_PATH/);
        return true;
      },
    );
  });
});

describe('resolveRedisServer', () => {
  test('REDIS_SERVER_PATH wins', async () => {
    const explicit = await linkIn(path.join(scratch, 'redis-explicit'), 'redis-server', realRedis);
    assert.equal(
      await resolveRedisServer({ env: { REDIS_SERVER_PATH: explicit, PATH: path.dirname(realRedis) }, install: false }),
      explicit,
    );
  });

  test('a REDIS_SERVER_PATH that is not redis-server is a clear error', async () => {
    await assert.rejects(
      resolveRedisServer({ env: { REDIS_SERVER_PATH: realTemporal, PATH: path.dirname(realRedis) }, install: false }),
      (err: unknown) => {
        assert.ok(err instanceof ProvisionError);
        assert.match(err.message, /REDIS_SERVER_PATH=.* is not a working redis-server/);
        return true;
      },
    );
  });

  test('redis-server on PATH is found', async () => {
    const onPath = await linkIn(path.join(scratch, 'redis-path'), 'redis-server', realRedis);
    assert.equal(await resolveRedisServer({ env: { PATH: path.dirname(onPath) }, install: false }), onPath);
  });
});
