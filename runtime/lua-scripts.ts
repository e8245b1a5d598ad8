// The Lua scripts in runtime/lua, found from source (tsx: beside this file) or from dist/runtime (two levels up).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export function luaScript(name: string): string {
  const candidates = [path.join(__dirname, 'lua', name), path.join(__dirname, '..', '..', 'runtime', 'lua', name)];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`Lua script ${name} not found (looked in ${candidates.join(', ')})`);
  return readFileSync(found, 'utf8');
}
