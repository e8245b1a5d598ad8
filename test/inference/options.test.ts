// The ONNX backend's environment options and the onnxruntime session options they turn into.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveOnnxBackendOptions } from '../../inference/onnx';
import { sessionOptions } from '../../inference/onnx/session-options';

void test('defaults: CPU, batches of 8 within 10 ms, intra-op threads that do not spin', () => {
  const o = resolveOnnxBackendOptions({}, {});
  assert.deepEqual(
    [o.executionProviders, o.maxBatchSize, o.maxQueueDelayMs, o.intraOpSpinning],
    [['cpu'], 8, 10, false],
  );
  const s = sessionOptions({ ...o, deviceId: 0 });
  assert.deepEqual(s.executionProviders, ['cpu']);
  assert.deepEqual(s.extra, { session: { 'intra_op.allow_spinning': '0' } });
  assert.equal('intraOpNumThreads' in s, false, 'intra-op thread count left to onnxruntime');
});

void test('environment variables set providers, device, threads and spinning', () => {
  const o = resolveOnnxBackendOptions(
    {},
    {
      ATELIER_ONNX_EXECUTION_PROVIDERS: 'cuda,cpu',
      ATELIER_ONNX_DEVICE_IDS: '1,2',
      ATELIER_ONNX_INTRA_OP_THREADS: '4',
      ATELIER_ONNX_INTRA_OP_SPINNING: 'true',
    },
  );
  const s = sessionOptions({ ...o, deviceId: o.deviceIds[1] ?? -1 });
  assert.deepEqual(s.executionProviders, [{ name: 'cuda', deviceId: 2 }, 'cpu']);
  assert.equal(s.intraOpNumThreads, 4);
  assert.deepEqual(s.extra, { session: { 'intra_op.allow_spinning': '1' } });
});

void test('bad values are refused with the variable named', () => {
  assert.throws(
    () => resolveOnnxBackendOptions({}, { ATELIER_ONNX_INTRA_OP_SPINNING: 'sometimes' }),
    /ATELIER_ONNX_INTRA_OP_SPINNING/,
  );
  assert.throws(
    () => resolveOnnxBackendOptions({}, { ATELIER_ONNX_EXECUTION_PROVIDERS: 'rocm' }),
    /ATELIER_ONNX_EXECUTION_PROVIDERS/,
  );
  assert.throws(
    () => resolveOnnxBackendOptions({}, { ATELIER_ONNX_MAX_BATCH_SIZE: '0' }),
    /ATELIER_ONNX_MAX_BATCH_SIZE/,
  );
});
