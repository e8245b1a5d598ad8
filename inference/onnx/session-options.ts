// onnxruntime session options of an inference thread; the benchmark's bare session.run loop uses the same ones.
//
// Graph nodes that fall back from CUDA or TensorRT to the CPU provider: onnxruntime says so only in its own log, on
// stderr (a warning "Some nodes were not assigned to the preferred execution providers" and "Memcpy nodes are added
// to the graph", and at verbose level one "Node(s) placed on [...]" line per provider); onnxruntime-node exposes no
// count or callback. The warnings print at the default log level, which these options keep; bench/gpu/run.sh counts
// them and bench/gpu/placement.ts prints the placement per model. The backend logs these options at debug.
import type { InferenceSession } from 'onnxruntime-node';
import type { ExecutionProviderName } from './thread-protocol';

export interface SessionConfig {
  readonly executionProviders: readonly ExecutionProviderName[];
  readonly deviceId: number;
  /** onnxruntime intra-op threads; 0 lets onnxruntime choose. */
  readonly intraOpNumThreads: number;
  /**
   * Whether idle intra-op threads spin-wait for the next kernel. Spinning trims latency on cores nobody else uses,
   * but in a worker it takes CPU from the thread that prepares the next step, the PNG encoders and the event loop:
   * on a 2-core machine turning it off made a 20-step pass about 25% faster.
   */
  readonly intraOpSpinning: boolean;
}

export function sessionOptions(config: SessionConfig): InferenceSession.SessionOptions {
  const executionProviders = config.executionProviders.map((name) =>
    name === 'cpu'
      ? 'cpu'
      : name === 'cuda'
        ? { name: 'cuda' as const, deviceId: config.deviceId }
        : { name: 'tensorrt' as const, deviceId: config.deviceId },
  );
  return {
    executionProviders,
    graphOptimizationLevel: 'all',
    ...(config.intraOpNumThreads > 0 ? { intraOpNumThreads: config.intraOpNumThreads } : {}),
    extra: { session: { 'intra_op.allow_spinning': config.intraOpSpinning ? '1' : '0' } },
  };
}
