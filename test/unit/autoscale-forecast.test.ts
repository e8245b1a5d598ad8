// The live traffic forecast (core/autoscale-forecast.ts): the day's profile, the ratio to the horizon, the demand it
// predicts from busy GPUs, its part in decideScale (predicted-traffic triggers instead of the fixed schedule), and the
// policy file's forecast section.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { decideScale, type FleetSignals } from '../../core/autoscale';
import {
  forecastRatio,
  predictedDemand,
  profileLevel,
  SEED_001_FORECAST,
  type ForecastPolicy,
} from '../../core/autoscale-forecast';
import { parseAutoscalePolicy, SEED_001_POLICY, type AutoscalePolicy } from '../../core/autoscale-policy';

const H = 3_600_000;
const DAY = Date.UTC(2026, 0, 1);

describe('the day profile', () => {
  test('linear between points, wrapping at midnight, the same for any day', () => {
    const p = SEED_001_FORECAST.profile;
    assert.equal(profileLevel(p, 2 * H), 10);
    assert.equal(profileLevel(p, 9 * H), 32.5, 'half way from 25 (08:00) to 40 (10:00)');
    assert.equal(profileLevel(p, 14 * H), 60);
    assert.equal(profileLevel(p, DAY + 9 * H), 32.5, 'epoch time: the time of day counts');
    assert.equal(profileLevel(p, 33 * H), 32.5, 'the next day');
  });

  test('the ratio carries now to the horizon: rising in the morning, falling at night, 1 on a flat stretch', () => {
    assert.equal(forecastRatio(SEED_001_FORECAST, 14 * H), 1);
    const morning = forecastRatio(SEED_001_FORECAST, 9 * H);
    assert.ok(Math.abs(morning - 33.75 / 32.5) < 1e-9, String(morning));
    assert.ok(forecastRatio(SEED_001_FORECAST, 22 * H) < 1);
    const flatZero: ForecastPolicy = {
      enabled: true,
      aheadMs: H,
      profile: [
        [0, 0],
        [24, 0],
      ],
    };
    assert.equal(forecastRatio(flatZero, 5 * H), 1, 'a zero level forecasts no change');
  });

  test('predicted demand is the busy GPUs times the ratio; none when the forecast is off', () => {
    const up: ForecastPolicy = {
      enabled: true,
      aheadMs: 2 * H,
      profile: [
        [0, 10],
        [12, 70],
        [24, 10],
      ],
    };
    // 08:00 -> 10:00: level 50 -> 60.
    assert.equal(predictedDemand(up, 10, 8 * H), 12);
    assert.equal(predictedDemand(up, -1, 8 * H), 0);
    assert.equal(predictedDemand({ ...up, enabled: false }, 10, 8 * H), undefined);
  });
});

const fleet = (over: Partial<FleetSignals>): FleetSignals => ({
  gpuType: 'a100',
  replicas: 10,
  peakReplicas: 40,
  queueDepth: 0,
  relaxDepth: 0,
  utilization: 0.9,
  ...over,
});

describe('in the decisions', () => {
  const policy: AutoscalePolicy = {
    ...SEED_001_POLICY,
    constraints: { ...SEED_001_POLICY.constraints, minWorkers: 0 },
  };

  test('busy GPUs rising along the profile fire predicted_traffic_high before any queue forms', () => {
    // 09:00: 9 busy GPUs of 10, forecast 9 x 33.75 / 32.5 = 9.35 > 0.8 x 10.
    const { decisions } = decideScale(policy, [fleet({ busyGpus: 9 })], {}, DAY + 9 * H);
    assert.equal(decisions[0]?.action, 'up');
    assert.deepEqual(decisions[0]?.fired, ['predicted_traffic_high']);
    assert.match(decisions[0]?.reason ?? '', /forecast 9\.3 workers > 0\.8 x 10/);
  });

  test('with a forecast the fixed schedule is no floor; without busy GPUs or with it off, it is', () => {
    // 12:00 schedules 100% of 40, but 5 busy GPUs forecast 5.2: the fleet of 10 is not raised to 40.
    const at = DAY + 12 * H;
    const forecast = decideScale(policy, [fleet({ busyGpus: 5, utilization: 0.5 })], {}, at);
    assert.equal(forecast.decisions[0]?.to, 10);
    const noBusy = decideScale(policy, [fleet({})], {}, at);
    assert.equal(noBusy.decisions[0]?.to, 40, 'no duty cycle reported: the schedule is the floor');
    const off = { ...policy, forecast: { ...policy.forecast, enabled: false } };
    assert.equal(decideScale(off, [fleet({ busyGpus: 5 })], {}, at).decisions[0]?.to, 40);
  });

  test('a policy from an older history, without a forecast section, forecasts nothing', () => {
    const { forecast: _, ...older } = policy;
    const decided = decideScale(older as AutoscalePolicy, [fleet({ busyGpus: 5 })], {}, DAY + 12 * H);
    assert.equal(decided.decisions[0]?.to, 40);
  });

  test('an explicit predictedDemand wins over busy GPUs', () => {
    const { decisions } = decideScale(policy, [fleet({ busyGpus: 1, predictedDemand: 20 })], {}, DAY + 14 * H);
    assert.deepEqual(decisions[0]?.fired, ['predicted_traffic_high']);
  });
});

describe('the policy file', () => {
  test('the forecast section replaces the default whole, and is checked', () => {
    const p = parseAutoscalePolicy({
      forecast: {
        enabled: false,
        aheadMs: 0,
        profile: [
          [0, 1],
          [24, 1],
        ],
      },
    });
    assert.equal(p.forecast.enabled, false);
    assert.deepEqual(parseAutoscalePolicy({}).forecast, SEED_001_FORECAST);
    assert.throws(
      () =>
        parseAutoscalePolicy({
          forecast: {
            enabled: true,
            aheadMs: 1,
            profile: [
              [0, 1],
              [12, 2],
            ],
          },
        }),
      /forecast: profile must run from 0 to 24/,
    );
    assert.throws(
      () =>
        parseAutoscalePolicy({
          forecast: {
            enabled: true,
            aheadMs: 1,
            profile: [
              [0, 1],
              [12, 2],
              [6, 1],
              [24, 1],
            ],
          },
        }),
      /forecast: profile hours must increase/,
    );
    assert.throws(() => parseAutoscalePolicy({ forecast: { enabled: true } }), /forecast\.aheadMs/);
  });
});
