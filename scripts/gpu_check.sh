#!/usr/bin/env bash
# neurofl on a CUDA machine: the attack benchmarks and a short evaluate on the GPU, and the same
# evaluate on the CPU, so the speed-up is a ratio measured in one run on one machine; the fused CUBA
# neuron's torch scan on CUDA checked against the CPU (its CUDA test) and timed against the host round
# trip to the NumPy scan (scripts/bench_neuron_scan.py --device cuda).
#
#     bash scripts/gpu_check.sh            # from the repository root (a fresh checkout is fine)
#
# Writes gpu_check.json (and the raw outputs beside it) into $OUT when it is set (the device
# machine's output folder), else into results/gpu_check/. Exits non-zero, loudly, when CUDA is not
# available. Uses .venv if it is there, else builds it with `make venv` (Python 3.10).
# Environment: GPU_CHECK_VICTIMS (evaluate's --victims, 4), GPU_CHECK_BENCH_ARGS (extra arguments
# of scripts/bench_attacks.py; default a short run of the 'suite' recipes).
set -euo pipefail

cd "$(dirname "$0")/.."
DEST="${OUT:-results/gpu_check}"
mkdir -p "$DEST"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [ ! -x .venv/bin/python ]; then
    echo "== no .venv: make venv" >&2
    make venv
fi
PY=.venv/bin/python

echo "== nvidia-smi" >&2
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi | tee "$DEST/nvidia-smi.txt" >&2
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$WORK/gpu.csv" || true
else
    echo "nvidia-smi: not found" | tee "$DEST/nvidia-smi.txt" >&2
    : > "$WORK/gpu.csv"
fi

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: CUDA is not available to torch (torch.cuda.is_available() is False); nothing measured" >&2
    exit 3
fi
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))' >&2

echo "== bench_attacks.py --device cuda" >&2
# shellcheck disable=SC2086  # the extra arguments are words
"$PY" scripts/bench_attacks.py --device cuda --out "$DEST/bench_attacks_cuda.json" \
    ${GPU_CHECK_BENCH_ARGS:---victims 32 --iterations 50 --repeats 3 --suite suite --suite-victims 8} > "$WORK/bench.log"

echo "== fused CUBA neuron scan: CUDA test, then bench_neuron_scan.py --device cuda" >&2
# the torch scan on CUDA against the NumPy scan on the CPU (tests/models/test_cuba_torch_scan.py, skipped
# where there is no CUDA) and its timing against the host round trip; a failure of either is recorded
# in gpu_check.json (with its output beside it) and the check goes on
set +e
"$PY" -m pytest -q -p no:cacheprovider tests/models/test_cuba_torch_scan.py -k cuda > "$DEST/neuron_scan_cuda_test.txt" 2>&1
echo $? > "$WORK/neuron_scan_test.rc"
"$PY" scripts/bench_neuron_scan.py --device cuda --out "$DEST/bench_neuron_scan_cuda.json" > "$DEST/bench_neuron_scan_cuda.log" 2>&1
echo $? > "$WORK/neuron_scan_bench.rc"
set -e

echo "== bench_scale.py --device cuda (attack costs at the CIFAR-100, DVS128 Gesture and LFW shapes)" >&2
# peak CUDA memory per chunk against neurofl/runs/memory.py's estimate; a failure is recorded, the check goes on
set +e
"$PY" scripts/bench_scale.py --device cuda --out "$DEST/bench_scale_cuda.json" > "$DEST/bench_scale_cuda.log" 2>&1
echo $? > "$WORK/bench_scale.rc"
set -e

VICTIMS="${GPU_CHECK_VICTIMS:-4}"
for dev in cuda cpu; do
    echo "== neurofl evaluate --profile loihi2 --device $dev --victims $VICTIMS" >&2
    start=$(date +%s.%N)
    .venv/bin/neurofl evaluate --profile loihi2 --device "$dev" --victims "$VICTIMS" \
        --out "$WORK/evaluate_$dev" --json > "$DEST/evaluate_$dev.json"
    end=$(date +%s.%N)
    echo "$start $end" > "$WORK/evaluate_$dev.time"
done

"$PY" - "$DEST" "$WORK" "$VICTIMS" <<'PYEOF'
import json, os, platform, sys
from pathlib import Path

import torch

dest, work, victims = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])


def seconds(dev):
    start, end = (float(t) for t in (work / f"evaluate_{dev}.time").read_text().split())
    return end - start


reports = {d: json.loads((dest / f"evaluate_{d}.json").read_text()) for d in ("cuda", "cpu")}
rows = {}
for d, rep in reports.items():
    for r in rep["results"]:
        rows.setdefault(f"{r['model']}@{r['profile']}", {})[d] = {
            "asr": r["asr"], "psnr": r["psnr"], "seconds": r["seconds"], "phases": r["phases"]
        }
wall = {d: seconds(d) for d in ("cuda", "cpu")}
result = {
    "check": "gpu_check",
    "gpu": torch.cuda.get_device_name(0),
    "nvidia_smi": (work / "gpu.csv").read_text().strip(),
    "torch": torch.__version__,
    "torch_cuda": torch.version.cuda,
    "cpus": os.cpu_count(),
    "machine": platform.machine(),
    "threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "NEUROFL_THREADS")},
    "bench_attacks": json.loads((dest / "bench_attacks_cuda.json").read_text()),
    "neuron_scan": {
        "cuda_test_rc": int((work / "neuron_scan_test.rc").read_text()),
        "cuda_test_summary": (dest / "neuron_scan_cuda_test.txt").read_text().strip().splitlines()[-1:],
        "bench_rc": int((work / "neuron_scan_bench.rc").read_text()),
        "bench": (json.loads((dest / "bench_neuron_scan_cuda.json").read_text())
                  if (dest / "bench_neuron_scan_cuda.json").exists() else None),
    },
    "bench_scale": {
        "rc": int((work / "bench_scale.rc").read_text()),
        "result": (json.loads((dest / "bench_scale_cuda.json").read_text())
                   if (dest / "bench_scale_cuda.json").exists() else None),
    },
    "evaluate": {
        "command": f"neurofl evaluate --profile loihi2 --victims {victims} --device cuda|cpu",
        "wall_seconds": wall,
        "cpu_over_cuda_wall_seconds": wall["cpu"] / wall["cuda"],
        "devices_reported": {d: rep.get("device") for d, rep in reports.items()},
        "rows": rows,
    },
}
(dest / "gpu_check.json").write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
print(json.dumps({"gpu": result["gpu"], "evaluate_wall_seconds": wall,
                  "cpu_over_cuda": result["evaluate"]["cpu_over_cuda_wall_seconds"],
                  "neuron_scan_cuda_test_rc": result["neuron_scan"]["cuda_test_rc"],
                  "neuron_scan_ratios": {k: v["ratios"] for k, v in
                                         ((result["neuron_scan"]["bench"] or {}).get("results") or {}).items()}},
                 indent=2))
PYEOF
echo "wrote $DEST/gpu_check.json" >&2
