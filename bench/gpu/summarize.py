"""Turns bench/gpu/run.sh's raw outputs into JSON lines: node placement per model, onnxruntime's fallback warnings,
and Atelier's images/s beside PyTorch eager's per batch size (the ratio the issue's targets are stated in).

NEVER RUN ON A GPU YET; runs on any Python 3 (no torch), and was tried on a CPU run's logs only.

  python3 bench/gpu/summarize.py placement.log atelier.jsonl atelier.stderr torch.jsonl
"""

import json
import re
import sys

PLACED = re.compile(r"(All nodes|Node\(s\)) placed on \[(\w+)\]\. Number of nodes: (\d+)")
MARKER = re.compile(r"=== atelier placement: (\S+)")


def placement(path):
    """{model: {provider: nodes}} from the verbose session logs placement.ts provokes."""
    models, current = {}, None
    with open(path, errors="replace") as f:
        for line in f:
            marker = MARKER.search(line)
            if marker:
                current = marker.group(1)
                models[current] = {}
                continue
            placed = PLACED.search(line)
            if placed and current:
                models[current][placed.group(2)] = int(placed.group(3))
    return models


def warnings(path):
    """Counts of onnxruntime's provider-fallback warnings in a run's stderr."""
    counts = {"nodes_not_on_preferred_provider": 0, "memcpy_nodes_added": 0}
    with open(path, errors="replace") as f:
        for line in f:
            if "were not assigned to the preferred execution providers" in line:
                counts["nodes_not_on_preferred_provider"] += 1
            if "Memcpy nodes are added to the graph" in line:
                counts["memcpy_nodes_added"] += 1
    return counts


def lines(path, bench):
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("bench") == bench:
                    out.append(record)
    return out


def main():
    placement_log, atelier_jsonl, atelier_stderr, torch_jsonl = sys.argv[1:5]
    for model, providers in placement(placement_log).items():
        cpu = sum(n for p, n in providers.items() if p == "CPUExecutionProvider")
        print(json.dumps({"bench": "placement", "model": model, "nodes": providers, "cpu_nodes": cpu}))
    print(json.dumps({"bench": "onnxruntime_warnings", **warnings(atelier_stderr)}))
    atelier = {r["batch"]: r for r in lines(atelier_jsonl, "atelier") if "images_per_s" in r}
    torch_eager = {r["batch"]: r for r in lines(torch_jsonl, "torch_eager")}
    for batch in sorted(set(atelier) | set(torch_eager)):
        a, t = atelier.get(batch), torch_eager.get(batch)
        ratio = round(a["images_per_s"] / t["images_per_s"], 3) if a and t else None
        print(
            json.dumps(
                {
                    "bench": "atelier_vs_torch_eager",
                    "batch": batch,
                    "atelier_images_per_s": a and a["images_per_s"],
                    "torch_eager_images_per_s": t and t["images_per_s"],
                    "ratio": ratio,
                }
            )
        )


if __name__ == "__main__":
    main()
