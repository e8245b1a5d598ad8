// The capacity planner (bench/plan): GPUs per fleet and region from the day simulation's service-time model, the
// peak the seed's curve gives for a daily volume, N-1 sizing, costs, and seed 001's milestone checklist.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GPU_SPECS } from '../../core/gpu';
import { milestones } from '../../bench/plan/milestones';
import { curveMeanOverPeak, plan } from '../../bench/plan/plan';

describe('npm run plan', () => {
  test("the seed's curve: a day's mean is about half its peak (10 at night, 60 at the peak)", () => {
    const ratio = curveMeanOverPeak();
    assert.ok(ratio > 0.45 && ratio < 0.6, String(ratio));
    const p = plan({ dailyImages: 1_000_000, regions: 1 });
    assert.ok(Math.abs(p.curvePeakQps - 1_000_000 / 86_400 / ratio) < 1e-9);
    assert.equal(p.peakQps, p.curvePeakQps, 'no peak given: the curve peak');
  });

  test('GPUs grow with the peak, split over regions, never under the tier minimums, and cost their hours', () => {
    const one = plan({ dailyImages: 1_000_000, peakQps: 60, regions: 1 });
    const three = plan({ dailyImages: 1_000_000, peakQps: 60, regions: 3 });
    const ten = plan({ dailyImages: 10_000_000, peakQps: 600, regions: 3 });
    for (const f of one.fleets) {
      const t = three.fleets.find((x) => x.gpuType === f.gpuType);
      assert.ok(t && t.gpusPerRegion <= f.gpusPerRegion, `${f.gpuType}: a third of the traffic per region`);
      assert.equal(f.staticUsdPerMonth, f.gpus * GPU_SPECS[f.gpuType].costPerHour * 730);
      assert.ok(f.followingUsdPerMonth <= f.staticUsdPerMonth + 1e-9, `${f.gpuType}: following the curve costs less`);
    }
    assert.ok(ten.gpus > 5 * three.gpus, `10x the peak needs several times the GPUs (${three.gpus} -> ${ten.gpus})`);
    const h100 = three.fleets.find((f) => f.gpuType === 'h100');
    assert.ok(h100 && h100.gpusPerRegion >= 5, 'the turbo minimum of 5 per region');
    const a10g = three.fleets.find((f) => f.gpuType === 'a10g');
    assert.ok(a10g && a10g.gpusPerRegionSurvivingOneLoss > a10g.gpusPerRegion, 'N-1: more per region');
  });

  test("seed 001's milestones: GPUs and regions met or short against the plan", () => {
    const small = milestones(plan({ dailyImages: 1_000_000, peakQps: 60, regions: 3 }));
    const oneM = small.find((m) => m.name === '1M images/day');
    assert.equal(oneM?.items.find((i) => i.item.startsWith('3 regions'))?.state, 'met');
    const tenM = small.find((m) => m.name === '10M images/day');
    assert.equal(tenM?.items.find((i) => i.item.startsWith('5+ regions'))?.state, 'short');
    assert.equal(tenM?.items.find((i) => i.item.startsWith('1000 GPUs'))?.state, 'short');
    const big = milestones(plan({ dailyImages: 10_000_000, peakQps: 600, regions: 5 }));
    assert.equal(
      big.find((m) => m.name === '10M images/day')?.items.find((i) => i.item.startsWith('5+'))?.state,
      'met',
    );
  });
});
