// JWT bearer tokens at a real gateway (real Redis; Temporal is never reached, as nothing here starts a workflow):
// the WebSocket upgrade with a valid token is admitted and the token's plan applies, a tampered or expired one gets
// the same 401 as an unknown API key, static keys keep working beside tokens, and refused tokens count towards the
// per-address throttle of failed authentications.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { signJwt } from '../../gateway/jwt-auth';
import { generateFrame, startTestGateway, TestSocket, uniqueRequestId, type TestGateway } from './harness';

const SECRET = 'gateway-test-jwt-secret-0123456789abcdef';
const JWT = { jwtSecrets: SECRET, jwtIssuer: 'atelier-tests', jwtAudience: 'atelier', jwtMaxLifetimeS: 3600 };
const RELAX_ONLY = { tiers: ['relax' as const], ratePerMinute: 10, maxInFlight: 2, fairnessWeight: 1 };

/** The HTTP status (101 when admitted) and body of an upgrade with `credential` as its bearer. */
function upgrade(url: string, credential: string): Promise<{ status: number; body: string; retryAfter?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${credential}` } });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, retryAfter: res.headers['retry-after'] }));
    });
    ws.once('open', () => {
      ws.close();
      resolve({ status: 101, body: '' });
    });
    ws.once('error', reject);
  });
}

/** `jwt` with one character of its payload changed (a signature check, not a parse error, must catch it). */
function tampered(jwt: string): string {
  const [header, payload = '', signature] = jwt.split('.');
  const i = Math.floor(payload.length / 2);
  const flipped = payload[i] === 'A' ? 'B' : 'A';
  return `${header}.${payload.slice(0, i)}${flipped}${payload.slice(i + 1)}.${signature}`;
}

void describe('JWT bearer tokens at the gateway', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway(JWT);
  });
  after(async () => {
    await gw?.stop();
  });

  void test('a valid token is admitted with the plan from its claims; static keys still work', async () => {
    const jwt = await signJwt(JWT, { userId: 'tess', plan: RELAX_ONLY, ttlS: 600 });
    assert.equal((await upgrade(gw.address.wsUrl, jwt)).status, 101);
    const socket = await TestSocket.open(gw.address.wsUrl, jwt);
    const requestId = uniqueRequestId('jwt');
    socket.send(generateFrame({ requestId, tier: 'fast' }));
    const refused = await socket.nextFor(requestId, 'rejected');
    assert.equal(refused.code, 'TIER_NOT_ALLOWED', "the token's plan applies, not the static keys' plan");
    await socket.close();
    assert.equal((await upgrade(gw.address.wsUrl, 'test-key-alice')).status, 101);
  });

  void test('a tampered or expired token gets the same 401 as an unknown key, and no reason', async () => {
    const unknownKey = await upgrade(gw.address.wsUrl, 'not-a-key');
    assert.equal(unknownKey.status, 401);
    const jwt = await signJwt(JWT, { userId: 'tess', plan: RELAX_ONLY, ttlS: 600 });
    const forged = await upgrade(gw.address.wsUrl, tampered(jwt));
    assert.deepEqual(forged, unknownKey);
    const expired = await signJwt(JWT, { userId: 'tess', plan: RELAX_ONLY, ttlS: 60 }, new Date(Date.now() - 600_000));
    assert.deepEqual(await upgrade(gw.address.wsUrl, expired), unknownKey);
  });

  // Last in this file: it throttles this test's own address.
  void test('refused tokens count as failed authentications: the address is answered 429', async () => {
    const jwt = await signJwt(JWT, { userId: 'tess', plan: RELAX_ONLY, ttlS: 600 });
    const statuses: number[] = [];
    for (let i = 0; i < 21; i++) statuses.push((await upgrade(gw.address.wsUrl, tampered(jwt))).status);
    // 20 failures a minute are allowed; the test above spent three of them.
    assert.ok(statuses.includes(429), JSON.stringify(statuses));
    const throttled = await upgrade(gw.address.wsUrl, jwt);
    assert.equal(throttled.status, 429, 'even a valid token waits out the throttle');
    assert.ok(Number(throttled.retryAfter) >= 1);
  });
});
