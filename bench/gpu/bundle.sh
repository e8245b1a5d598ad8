#!/usr/bin/env bash
# Packs what bench/gpu/run.sh needs on a GPU host that has no node_modules and no network, into one folder laid out
# like the repository (so run.sh finds everything the same way there):
#   <ship>/bench/gpu/{run.sh,*.py}          the script and its Python helpers
#   <ship>/bench/gpu/dist/*.js              bench/inference.ts, bench/gpu/placement.ts and the two thread entries,
#                                           bundled by esbuild with onnxruntime-node left external (about 0.4 MB)
#   <ship>/node_modules/onnxruntime-{node,common}   the binding; run.sh adds the CUDA provider next to it
#   <ship>/models/tiny-sd/tokenizer         CLIP tokenizer files for the export (token ids only feed random weights)
# Put beside it before you go (see run.sh's header): a Node 20 linux-x64 binary at <ship>/bin/node, the
# onnxruntime-gpu 1.30.0 wheel and the diffusers wheels in <ship>/bench/gpu/. Then: tar -cJf ship.tar.xz -C <ship> .
# Run on the development machine, from anywhere:  bench/gpu/bundle.sh [SHIP_DIR]   (default /tmp/atelier-gpu-ship)
# Tried on a CPU machine (the bundled bench ran there); never on the GPU host.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHIP=${1:-/tmp/atelier-gpu-ship}
mkdir -p "$SHIP/bench/gpu/dist" "$SHIP/node_modules" "$SHIP/models/tiny-sd"
cd "$ROOT"
npx esbuild bench/inference.ts bench/gpu/placement.ts inference/onnx/inference-thread.ts \
  inference/onnx/png-encoder-thread.ts --bundle --platform=node --target=node20 --format=cjs \
  --external:onnxruntime-node --entry-names='[name]' --outdir="$SHIP/bench/gpu/dist" --log-level=warning
cp bench/gpu/run.sh bench/gpu/*.py "$SHIP/bench/gpu/"
rm -rf "$SHIP/node_modules/onnxruntime-node" "$SHIP/node_modules/onnxruntime-common"
cp -r node_modules/onnxruntime-node node_modules/onnxruntime-common "$SHIP/node_modules/"
# Only the linux-x64 binding goes: the package carries every platform's.
find "$SHIP/node_modules/onnxruntime-node/bin/napi-v6" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} +
find "$SHIP/node_modules/onnxruntime-node/bin/napi-v6/linux" -mindepth 1 -maxdepth 1 ! -name x64 -exec rm -rf {} +
cp -r models/tiny-sd/tokenizer "$SHIP/models/tiny-sd/"
du -sh "$SHIP"
