// Recognising onnxruntime's out-of-memory failures, which the batcher answers by halving the batch (seed 001
// `oom_error` policy) instead of failing the requests. onnxruntime reports them as plain errors with these messages:
//   CPU and arena allocators: "Failed to allocate memory for requested buffer of size N", std::bad_alloc
//   BFC arena on a device:    "Available memory of N is smaller than requested bytes of M"
//   CUDA / cuBLAS / cuDNN:    "CUDA failure 2: out of memory", "cudaErrorMemoryAllocation", "CUBLAS_STATUS_ALLOC_FAILED"

const OUT_OF_MEMORY =
  /out of memory|failed to allocate memory|bad[ _]alloc|_ALLOC_FAILED|cudaErrorMemoryAllocation|available memory of \d+ is smaller than requested/i;

export function isOutOfMemoryMessage(message: string): boolean {
  return OUT_OF_MEMORY.test(message);
}

/**
 * The device itself failing, as the CUDA provider reports it: a CUDA or library status other than running out of
 * memory ("CUDA failure 700: an illegal memory access was encountered", "cudaErrorLaunchFailure",
 * "CUDNN_STATUS_EXECUTION_FAILED"), a device-side assert, a lost device. No request can fix these; seed 001's
 * `gpu_error` recovery restarts the worker process.
 */
const DEVICE_FAULT =
  /CUDA failure \d+|cudaError\w+|CUDNN_STATUS_\w+|CUBLAS_STATUS_\w+|illegal memory access|device-side assert|unspecified launch failure|uncorrectable ECC|fallen off the bus/i;

export function isDeviceFaultMessage(message: string): boolean {
  return !isOutOfMemoryMessage(message) && DEVICE_FAULT.test(message);
}

/**
 * The error an injected fault raises (tests, chaos runs): worded like onnxruntime's own allocator failure, so it goes
 * through the same detection as a real one.
 */
export function injectedOutOfMemoryError(members: number, limit: number): Error {
  return new Error(
    `Failed to allocate memory for requested buffer of size ${members * 1_048_576} (injected: batch of ${members} exceeds ${limit})`,
  );
}
