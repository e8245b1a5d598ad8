// Seed 001's workload routing matrix, one row per line of the table, plus the precedence between rows when a
// request matches several (the strongest need wins) and the boundaries of "2K+" and "batch".
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { GpuType } from '../../core/gpu';
import { routeToGpu, type RoutingInput, type RoutingRule } from '../../core/routing';

const sdxl: RoutingInput = {
  model: 'sdxl',
  tier: 'fast',
  width: 1024,
  height: 1024,
  numImages: 1,
  loras: [],
  controlnets: [],
};
const lora = { name: 'watercolor', weight: 0.8 };
const canny = { type: 'canny', weight: 1 };
const depth = { type: 'depth', weight: 1 };

interface Row {
  readonly name: string;
  readonly input: RoutingInput;
  readonly gpu: GpuType;
  readonly rule: RoutingRule;
  /** The other fleet the seed names for this row ("A10G/L4"), which must be a failover alternative. */
  readonly alsoAllowed?: GpuType;
}

describe('routeToGpu: seed 001 routing matrix', () => {
  const matrix: Row[] = [
    { name: 'SDXL standard -> A10G/L4', input: sdxl, gpu: 'a10g', rule: 'sdxl-standard', alsoAllowed: 'l4' },
    {
      name: 'SDXL + LoRA -> A10G/L4',
      input: { ...sdxl, loras: [lora] },
      gpu: 'a10g',
      rule: 'sdxl-lora',
      alsoAllowed: 'l4',
    },
    {
      name: 'SDXL + ControlNet -> A10G/A100',
      input: { ...sdxl, controlnets: [canny] },
      gpu: 'a10g',
      rule: 'sdxl-controlnet',
      alsoAllowed: 'a100',
    },
    {
      name: 'SDXL + Multi-ControlNet -> A100',
      input: { ...sdxl, controlnets: [canny, depth] },
      gpu: 'a100',
      rule: 'sdxl-multi-controlnet',
    },
    { name: 'SD3 -> A100', input: { ...sdxl, model: 'sd3' }, gpu: 'a100', rule: 'sd3-flux' },
    { name: 'Flux -> A100', input: { ...sdxl, model: 'flux' }, gpu: 'a100', rule: 'sd3-flux' },
    {
      name: 'High-res (2K+) -> A100/H100',
      input: { ...sdxl, width: 2048, height: 2048 },
      gpu: 'a100',
      rule: 'high-res',
      alsoAllowed: 'h100',
    },
    { name: 'Turbo tier -> H100', input: { ...sdxl, tier: 'turbo' }, gpu: 'h100', rule: 'turbo-tier' },
    { name: 'Batch generation -> A100 80GB', input: { ...sdxl, numImages: 4 }, gpu: 'a100-80gb', rule: 'batch' },
  ];

  for (const row of matrix) {
    test(row.name, () => {
      const decision = routeToGpu(row.input);
      assert.equal(decision.gpuType, row.gpu);
      assert.equal(decision.rule, row.rule);
      assert.ok(!decision.alternatives.includes(decision.gpuType), 'the chosen fleet is not its own alternative');
      if (row.alsoAllowed)
        assert.ok(decision.alternatives.includes(row.alsoAllowed), `${row.alsoAllowed} is an alternative`);
      assert.ok(decision.estimatedVramGb > 0);
    });
  }
});

describe('routeToGpu: precedence and boundaries', () => {
  const cases: { name: string; input: RoutingInput; gpu: GpuType; rule: RoutingRule }[] = [
    {
      name: 'turbo tier beats Flux',
      input: { ...sdxl, tier: 'turbo', model: 'flux' },
      gpu: 'h100',
      rule: 'turbo-tier',
    },
    {
      name: 'turbo tier beats high-res and batch',
      input: { ...sdxl, tier: 'turbo', width: 2048, numImages: 4 },
      gpu: 'h100',
      rule: 'turbo-tier',
    },
    {
      name: 'high-res beats batch',
      input: { ...sdxl, width: 2048, height: 1024, numImages: 4 },
      gpu: 'a100',
      rule: 'high-res',
    },
    {
      name: 'one 2K side is enough for high-res',
      input: { ...sdxl, width: 1024, height: 2048 },
      gpu: 'a100',
      rule: 'high-res',
    },
    {
      name: 'just under 2K is not high-res',
      input: { ...sdxl, width: 2040, height: 1024 },
      gpu: 'a10g',
      rule: 'sdxl-standard',
    },
    { name: 'batch beats SD3', input: { ...sdxl, model: 'sd3', numImages: 2 }, gpu: 'a100-80gb', rule: 'batch' },
    { name: 'two images are already a batch', input: { ...sdxl, numImages: 2 }, gpu: 'a100-80gb', rule: 'batch' },
    {
      name: 'SD3 with ControlNets stays on the SD3 row',
      input: { ...sdxl, model: 'sd3', controlnets: [canny, depth] },
      gpu: 'a100',
      rule: 'sd3-flux',
    },
    {
      name: 'ControlNet beats LoRA',
      input: { ...sdxl, loras: [lora], controlnets: [canny] },
      gpu: 'a10g',
      rule: 'sdxl-controlnet',
    },
    {
      name: 'a ControlNet request too big for 24 GB moves to the A100',
      input: { ...sdxl, width: 1792, height: 1792, controlnets: [canny] },
      gpu: 'a100',
      rule: 'sdxl-controlnet',
    },
    {
      name: 'SDXL Turbo the model (not the tier) is standard SDXL',
      input: { ...sdxl, model: 'sdxl-turbo', width: 512, height: 512 },
      gpu: 'a10g',
      rule: 'sdxl-standard',
    },
    { name: 'relax tier routes like fast', input: { ...sdxl, tier: 'relax' }, gpu: 'a10g', rule: 'sdxl-standard' },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const decision = routeToGpu(c.input);
      assert.deepEqual([decision.gpuType, decision.rule], [c.gpu, c.rule]);
    });
  }

  test('the estimate grows with resolution, batch size and adapters', () => {
    const base = routeToGpu(sdxl).estimatedVramGb;
    assert.ok(routeToGpu({ ...sdxl, width: 1536, height: 1536 }).estimatedVramGb > base);
    assert.ok(routeToGpu({ ...sdxl, numImages: 2 }).estimatedVramGb > base);
    assert.ok(
      routeToGpu({ ...sdxl, controlnets: [canny] }).estimatedVramGb >
        routeToGpu({ ...sdxl, loras: [lora] }).estimatedVramGb,
    );
  });

  test('routing is a pure function: same input, same decision', () => {
    assert.deepEqual(routeToGpu({ ...sdxl, controlnets: [canny] }), routeToGpu({ ...sdxl, controlnets: [canny] }));
  });
});
