// How the ONNX backend names a failed pass (inference/onnx/pass-outcome.ts): out of memory (its own recovery path),
// a failing device (GpuError: the worker restarts, seed 001 gpu_error), or another inference failure.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { passFailure } from '../../inference/onnx/pass-outcome';
import { isDeviceFaultMessage, isOutOfMemoryMessage } from '../../inference/onnx/out-of-memory';
import type { BatchKey } from '../../inference/onnx/batcher';

const key = { model: 'tiny-sd', width: 64, height: 64 } as BatchKey;

describe('ONNX pass failures by type', () => {
  test('CUDA device faults are GpuError; out of memory stays OutOfMemory; anything else InferenceFailed', () => {
    const cases: [string, boolean, string][] = [
      ['CUDA failure 700: an illegal memory access was encountered', false, 'GpuError'],
      ['CUDNN_STATUS_EXECUTION_FAILED', false, 'GpuError'],
      ['cudaErrorLaunchFailure: unspecified launch failure', false, 'GpuError'],
      ['CUDA failure 2: out of memory', true, 'OutOfMemory'],
      ['CUBLAS_STATUS_ALLOC_FAILED', true, 'OutOfMemory'],
      ['Non-zero status code returned while running Conv node', false, 'InferenceFailed'],
    ];
    for (const [message, oom, expected] of cases) {
      assert.equal(isOutOfMemoryMessage(message), oom, message);
      assert.equal(isDeviceFaultMessage(message), expected === 'GpuError', message);
      assert.equal(passFailure(key, new Error(message), oom).failureType, expected, message);
    }
  });
});
