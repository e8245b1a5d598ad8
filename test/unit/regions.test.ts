// The region catalogue (core/regions.ts, config/regions.json): seed 001's three regions load and validate, a broken
// catalogue is refused with every problem named, and a new request goes home when home serves its model and is
// healthy, else to the nearest healthy region that serves it.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseRegion, failoverOrder, parseRegionCatalogue, regionFleets, requireRegion } from '../../core/regions';
import { loadRegionCatalogue } from '../../runtime/region-catalogue';
import { regionHealth } from '../../core/region-health';

const catalogue = loadRegionCatalogue();

describe('region catalogue', () => {
  test("the committed default is seed 001's: us-west primary with every model on 50 GPUs, two secondaries", () => {
    const gpus = (name: string): number =>
      Object.values(requireRegion(catalogue, name).fleets).reduce((a, b) => a + (b ?? 0), 0);
    assert.deepEqual(
      catalogue.regions.map((r) => [r.name, r.role, gpus(r.name)]),
      [
        ['us-west', 'primary', 50],
        ['us-east', 'secondary', 30],
        ['eu-west', 'secondary', 20],
      ],
    );
    assert.ok(requireRegion(catalogue, 'us-west').models.includes('flux'));
    assert.ok(!requireRegion(catalogue, 'us-east').models.includes('flux'), 'secondaries serve the core models');
    assert.deepEqual(regionFleets(requireRegion(catalogue, 'eu-west')), ['a10g', 'a100', 'a100-80gb', 'h100']);
    assert.throws(
      () => requireRegion(catalogue, 'ap-south'),
      /not in the region catalogue \(us-west, us-east, eu-west\)/,
    );
  });

  test('a broken catalogue is refused, naming every problem', () => {
    const region = (name: string, extra: Record<string, unknown> = {}) => ({
      name,
      role: 'secondary',
      models: ['sdxl'],
      fleets: { a10g: 1 },
      neighbours: [],
      ...extra,
    });
    assert.throws(
      () =>
        parseRegionCatalogue(
          {
            regions: [
              region('a1', { neighbours: ['a1', 'zz'] }),
              region('a1'),
              region('b2', { models: ['nope'], fleets: {} }),
              region('c3', { fleets: { tpu: 3 } }),
            ],
          },
          'regions.json',
        ),
      (err: Error) => {
        for (const problem of [
          'regions.json is not valid',
          'region a1 is listed twice',
          'one primary region, not 0',
          'a1 lists itself as a neighbour',
          'a1: unknown neighbour zz',
          'a model is one of',
          'b2 has no GPU fleet',
          'regions.3.fleets',
        ])
          assert.ok(err.message.includes(problem), `${problem} in: ${err.message}`);
        return true;
      },
    );
  });

  test('failover order: home, its neighbours nearest first, then the rest', () => {
    assert.deepEqual(
      failoverOrder(catalogue, 'eu-west').map((r) => r.name),
      ['eu-west', 'us-east', 'us-west'],
    );
  });

  test('a new request goes home, around an unhealthy home, or to the regions that serve its model', () => {
    const all = (): boolean => true;
    assert.deepEqual(chooseRegion(catalogue, 'us-east', 'sdxl', all), { ok: true, region: 'us-east', degraded: false });
    assert.deepEqual(
      chooseRegion(catalogue, 'us-east', 'sdxl', (r) => r !== 'us-east'),
      { ok: true, region: 'us-west', degraded: true, reason: 'home-unhealthy' },
      'the nearest healthy neighbour',
    );
    assert.deepEqual(
      chooseRegion(catalogue, 'eu-west', 'sdxl', (r) => r === 'us-west'),
      { ok: true, region: 'us-west', degraded: true, reason: 'home-unhealthy' },
      'past an unhealthy nearest neighbour',
    );
    assert.deepEqual(
      chooseRegion(catalogue, 'us-east', 'flux', all),
      { ok: true, region: 'us-west', degraded: true, reason: 'model-not-served' },
      'flux is served by the primary only',
    );
    assert.deepEqual(
      chooseRegion(catalogue, 'us-east', 'flux', (r) => r !== 'us-west'),
      {
        ok: false,
        reason: 'no-healthy-region',
      },
    );
    assert.deepEqual(
      chooseRegion(catalogue, 'us-west', 'sdxl', () => false),
      {
        ok: false,
        reason: 'no-healthy-region',
      },
    );
  });

  test('a region is healthy while a control worker polls and a GPU worker is ready; a gateway is not needed', () => {
    const fleet = (live: number, ready: number) => ({ live, ready });
    const ok = regionHealth('us-east', {
      controlWorkers: 1,
      gateways: 0,
      gpuWorkers: { a10g: fleet(2, 1), h100: fleet(1, 0) },
    });
    assert.equal(ok.healthy, true);
    assert.deepEqual(ok.problems, ['no gateway heard from in 30 s', 'fleet h100: no ready worker of 1']);
    const noControl = regionHealth('us-east', { controlWorkers: 0, gateways: 2, gpuWorkers: { a10g: fleet(1, 1) } });
    assert.deepEqual([noControl.healthy, noControl.problems], [false, ['no control worker heard from in 30 s']]);
    const noGpu = regionHealth('us-east', { controlWorkers: 1, gateways: 1, gpuWorkers: { a10g: fleet(3, 0) } });
    assert.deepEqual(
      [noGpu.healthy, noGpu.problems],
      [false, ['no ready GPU worker', 'fleet a10g: no ready worker of 3']],
    );
  });
});
