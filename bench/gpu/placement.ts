// Where onnxruntime places each model's nodes under the execution providers Atelier is configured with: creates the
// three sessions of an export at verbose log level, so onnxruntime prints its "Node placements" summary ("All nodes
// placed on [CUDAExecutionProvider]" or one "Node(s) placed on [...]" line per provider) and any fallback warnings to
// stderr, where bench/gpu/run.sh counts them. onnxruntime-node has no API for the assignment itself.
//   ATELIER_ONNX_EXECUTION_PROVIDERS=cuda,cpu node --import tsx bench/gpu/placement.ts EXPORT_DIR 2> placement.log
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { resolveOnnxBackendOptions } from '../../inference/onnx';
import { EXPORT_MODEL_FILES } from '../../inference/onnx/pipeline';
import { sessionOptions } from '../../inference/onnx/session-options';

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) throw new TypeError('usage: placement.ts EXPORT_DIR');
  const options = resolveOnnxBackendOptions({ preload: [] });
  const config = {
    ...sessionOptions({ ...options, deviceId: options.deviceIds[0] ?? 0 }),
    logSeverityLevel: 0 as const,
  };
  for (const file of EXPORT_MODEL_FILES) {
    // Markers in stderr's stream of native log lines, so the script can tell which model a line belongs to.
    process.stderr.write(`=== atelier placement: ${file}\n`);
    const session = await ort.InferenceSession.create(join(dir, file), config);
    await session.release();
  }
  console.log(JSON.stringify({ placement: dir, executionProviders: options.executionProviders }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
