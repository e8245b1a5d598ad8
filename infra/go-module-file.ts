// One file out of a Go module, read from the Go module proxy without Go: the Kubernetes OpenAPI spec and KEDA's CRDs
// (infra/k8s-schemas.ts) ship inside the Go modules of k8s.io/kubernetes and github.com/kedacore/keda, and the module
// proxy is reachable where GitHub is not (CI, air-gapped mirrors). The module zip is fetched once, checked against a
// pinned SHA-256 (a proxy serves a version's zip byte for byte the same forever), and only the wanted entry is
// inflated.
import { createHash } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';
import { errorMessage } from './provision-common';

export interface GoModuleFile {
  /** Module path, e.g. `k8s.io/kubernetes`. */
  readonly module: string;
  /** Version with its `v`, e.g. `v1.34.4`. */
  readonly version: string;
  /** Path of the file inside the module, e.g. `api/openapi-spec/swagger.json`. */
  readonly file: string;
  /** SHA-256 (hex) of the module's zip as the proxy serves it. */
  readonly zipSha256: string;
}

/**
 * The module proxies to try, in order: the `https://` and `http://` entries of GOPROXY (so a CI runner's own
 * mirror is used), else the public proxy. `direct` and `off` are skipped: they need the origin (GitHub).
 */
export function goProxies(env: NodeJS.ProcessEnv = process.env): string[] {
  const listed = (env.GOPROXY ?? '')
    .split(/[,|]/)
    .map((p) => p.trim().replace(/\/+$/, ''))
    .filter((p) => /^https?:\/\//.test(p));
  return listed.length > 0 ? listed : ['https://proxy.golang.org'];
}

/** The proxy's spelling of a module path: upper-case letters become `!` + lower case. */
function escapeModulePath(module: string): string {
  return module.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`);
}

/** The file's bytes; throws naming every proxy tried and why each failed. */
export async function readGoModuleFile(spec: GoModuleFile, env: NodeJS.ProcessEnv = process.env): Promise<Buffer> {
  const failures: string[] = [];
  for (const proxy of goProxies(env)) {
    const url = `${proxy}/${escapeModulePath(spec.module)}/@v/${spec.version}.zip`;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(300_000), redirect: 'follow' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const zip = Buffer.from(await res.arrayBuffer());
      const sha256 = createHash('sha256').update(zip).digest('hex');
      if (sha256 !== spec.zipSha256) throw new Error(`SHA-256 ${sha256}, expected ${spec.zipSha256}`);
      return readZipEntry(zip, `${spec.module}@${spec.version}/${spec.file}`);
    } catch (err) {
      failures.push(`${url}: ${errorMessage(err)}`);
    }
  }
  throw new Error(`could not read ${spec.file} of ${spec.module}@${spec.version}: ${failures.join('; ')}`);
}

const END_OF_CENTRAL_DIRECTORY = 0x06054b50;
const CENTRAL_DIRECTORY_ENTRY = 0x02014b50;
const LOCAL_FILE_HEADER = 0x04034b50;

/**
 * One entry of a zip archive, found through its central directory (Go writes sizes there and in trailing data
 * descriptors, not in the local headers). Stored and deflated entries only, which is all `go mod` produces.
 */
export function readZipEntry(zip: Buffer, name: string): Buffer {
  // The end record is the last 22 bytes plus a comment of at most 64 KiB.
  let end = -1;
  for (let at = zip.length - 22; at >= Math.max(0, zip.length - 22 - 0xffff); at--) {
    if (zip.readUInt32LE(at) === END_OF_CENTRAL_DIRECTORY) {
      end = at;
      break;
    }
  }
  if (end < 0) throw new Error('not a zip archive (no end of central directory)');
  const entries = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  for (let i = 0; i < entries; i++) {
    if (zip.readUInt32LE(at) !== CENTRAL_DIRECTORY_ENTRY) throw new Error(`corrupt central directory at ${at}`);
    const method = zip.readUInt16LE(at + 10);
    const compressedSize = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const localHeader = zip.readUInt32LE(at + 42);
    if (zip.toString('utf8', at + 46, at + 46 + nameLength) === name) {
      return inflateEntry(zip, localHeader, method, compressedSize, name);
    }
    at += 46 + nameLength + extraLength + commentLength;
  }
  throw new Error(`${name} is not in the archive`);
}

function inflateEntry(zip: Buffer, localHeader: number, method: number, size: number, name: string): Buffer {
  if (zip.readUInt32LE(localHeader) !== LOCAL_FILE_HEADER) throw new Error(`corrupt local header of ${name}`);
  const dataStart = localHeader + 30 + zip.readUInt16LE(localHeader + 26) + zip.readUInt16LE(localHeader + 28);
  const data = zip.subarray(dataStart, dataStart + size);
  if (method === 0) return Buffer.from(data);
  if (method === 8) return inflateRawSync(data);
  throw new Error(`${name} uses zip compression method ${method}`);
}
