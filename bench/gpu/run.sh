#!/usr/bin/env bash
# Atelier's own ONNX pipeline on a GPU, beside the PyTorch eager ceiling on the same card in the same run (issue 15).
#
# THIS SCRIPT HAS NEVER RUN ON A GPU. It was written on a CPU-only machine: the Atelier half (bundle, bench sweep,
# placement log, summary) was tried there on CPU; the CUDA provider set-up, the export and the PyTorch half were only
# read against their APIs (diffusers 0.42.1 source; torch not installed) and syntax-checked. Expect to fix things.
#
# What it does, once, on a host with an NVIDIA GPU (written for an H200, CUDA 13 drivers, Python with torch cu130,
# onnx and onnxscript, no network):
#   1. puts onnxruntime's CUDA provider (from the onnxruntime-gpu 1.30.0 wheel beside this script) next to
#      onnxruntime-node's binding and points LD_LIBRARY_PATH at the CUDA libraries of the host Python's nvidia packages;
#   2. installs diffusers (and any missing dependency) from the wheels beside this script into a private folder, if
#      the host Python lacks it;
#   3. exports SD-Turbo's architecture with random fp16 weights in the diffusers ONNX layout (export_sd_turbo.py);
#   4. logs where onnxruntime places each model's nodes under cuda,cpu (placement.ts);
#   5. measures the PyTorch eager ceiling at batch 1, 4, 8, 16 (torch_ceiling.py);
#   6. runs bench:inference on the export with ATELIER_ONNX_EXECUTION_PROVIDERS=cuda,cpu at batch 1, 4, 8, 16, and
#      its pipeline against a bare session.run loop;
#   7. prints one JSON line per measurement, then Atelier / PyTorch per batch size (summarize.py).
# Everything it writes goes to $ATELIER_GPU_WORK (default bench/gpu/work); all JSON lines also to results.jsonl.
#
# Before going to the host (on a machine with network, from the repository root):
#   pip download onnxruntime-gpu==1.30.0 --no-deps --only-binary=:all: \
#       --platform manylinux_2_28_x86_64 --python-version 3.12 -d bench/gpu/     # any cp3x wheel: only its .so files are used
#   pip download diffusers==0.42.1 --only-binary=:all: --platform manylinux_2_28_x86_64 \
#       --python-version "$HOST_PY" -d bench/gpu/wheels/       # HOST_PY: the host's python3 version, e.g. 3.12
#   bench/gpu/bundle.sh /tmp/atelier-gpu-ship                  # without a repository checkout on the host
#   cp bench/gpu/*.whl /tmp/atelier-gpu-ship/bench/gpu/ && cp -r bench/gpu/wheels /tmp/atelier-gpu-ship/bench/gpu/
#   # plus a Node 20 linux-x64 binary at /tmp/atelier-gpu-ship/bin/node (from the nodejs.org tarball)
#   tar -cJf atelier-gpu.tar.xz -C /tmp/atelier-gpu-ship .     # the provider wheel is ~270 MB: split if you must
# On the host:  tar -xJf atelier-gpu.tar.xz && bench/gpu/run.sh   (or from a full checkout with node_modules)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${ATELIER_GPU_WORK:-$HERE/work}
BATCHES=${ATELIER_GPU_BATCHES:-1,4,8,16}
PY=${PYTHON:-python3}
mkdir -p "$WORK"
RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
say() { echo "[gpu-bench] $*" >&2; }
emit() { tee -a "$RESULTS"; }

# --- Node: a bundled bench (bundle.sh) or the repository's sources under tsx -------------------------------------
NODE=${NODE:-$( [ -x "$ROOT/bin/node" ] && echo "$ROOT/bin/node" || command -v node || true)}
[ -n "$NODE" ] || { say "no node: put a Node 20 binary at $ROOT/bin/node or set NODE"; exit 1; }
if [ -f "$HERE/dist/inference.js" ]; then
  BENCH=("$NODE" "$HERE/dist/inference.js")
  PLACEMENT=("$NODE" "$HERE/dist/placement.js")
else
  BENCH=("$NODE" --import tsx "$ROOT/bench/inference.ts")
  PLACEMENT=("$NODE" --import tsx "$ROOT/bench/gpu/placement.ts")
fi
say "node $("$NODE" --version); $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"

# --- 1. CUDA provider next to the binding -----------------------------------------------------------------------
BINDING_DIR="$ROOT/node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
if [ ! -f "$BINDING_DIR/libonnxruntime_providers_cuda.so" ]; then
  WHEEL=$(ls "$HERE"/onnxruntime_gpu-1.30.0-*.whl 2>/dev/null | head -n1 || true)
  [ -n "$WHEEL" ] || { say "no onnxruntime_gpu-1.30.0-*.whl in $HERE (see the header)"; exit 1; }
  "$PY" - "$WHEEL" "$BINDING_DIR" <<'EOF'
import sys, zipfile, os
wheel, target = sys.argv[1:3]
with zipfile.ZipFile(wheel) as z:
    for name in ("libonnxruntime_providers_cuda.so", "libonnxruntime_providers_shared.so"):
        with z.open(f"onnxruntime/capi/{name}") as src, open(os.path.join(target, name), "wb") as dst:
            dst.write(src.read())
EOF
  say "CUDA provider from $(basename "$WHEEL") placed in $BINDING_DIR"
fi
NVIDIA_LIBS=$("$PY" -c 'import glob, os, nvidia; print(":".join(sorted({d for p in nvidia.__path__ for d in glob.glob(os.path.join(p, "*", "lib"))})))')
export LD_LIBRARY_PATH="$NVIDIA_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# --- 2. diffusers ----------------------------------------------------------------------------------------------
if ! "$PY" -c 'import diffusers' 2>/dev/null; then
  "$PY" -m pip install --quiet --no-index --find-links "$HERE/wheels" --target "$WORK/pydeps" diffusers
  export PYTHONPATH="$WORK/pydeps${PYTHONPATH:+:$PYTHONPATH}"
fi

# --- 3. the export (about 2.5 GB of fp16 weights, generated here, never shipped) ---------------------------------
EXPORT="$WORK/sd-turbo-onnx"
if [ ! -f "$EXPORT/model_index.json" ]; then
  "$PY" "$HERE/export_sd_turbo.py" --out "$EXPORT" --tokenizer "$ROOT/models/tiny-sd/tokenizer" | emit
fi

export ATELIER_ONNX_EXECUTION_PROVIDERS=cuda,cpu
# --- 4. node placement -----------------------------------------------------------------------------------------
"${PLACEMENT[@]}" "$EXPORT" 2>"$WORK/placement.log" >/dev/null || say "placement failed: see $WORK/placement.log"

# --- 5. PyTorch eager ceiling, then 6. Atelier (one after the other: they must not share the GPU) ---------------
"$PY" "$HERE/torch_ceiling.py" --batch-sizes "$BATCHES" | tee "$WORK/torch.jsonl" | emit
"${BENCH[@]}" --only none --export "$EXPORT" --size 512 --steps 1 --guidance 0 --batch-sizes "$BATCHES" \
  2>"$WORK/atelier.stderr" | tee "$WORK/atelier.log" | grep '^{"bench":"atelier"' | tee "$WORK/atelier.jsonl" | emit
nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader,nounits |
  awk -F', ' '{printf "{\"bench\":\"nvidia_smi_after\",\"memory_used_mib\":%s,\"memory_total_mib\":%s}\n", $1, $2}' | emit

# --- 7. summary ------------------------------------------------------------------------------------------------
"$PY" "$HERE/summarize.py" "$WORK/placement.log" "$WORK/atelier.jsonl" "$WORK/atelier.stderr" "$WORK/torch.jsonl" | emit
say "done: $RESULTS"
