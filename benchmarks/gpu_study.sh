#!/usr/bin/env bash
# The study with error bars on one GPU node that has no package index (`make gpu-study`).
#
# Installs the wheelhouse of `make wheelhouse` (Detectron2, its small dependencies and this
# project, built for the node's Python) into a throwaway folder over the node's own Python and
# torch, then runs, outside the checkout (whose infomin/ folder would shadow the installed package),
#   infomin-demo --device cuda --seeds SEEDS --jobs JOBS --output OUT
# and prints the wall time and the stage times. The report is OUT/report.md (mean ± std over the
# seeds), OUT/ap.png, and per seed OUT/seed-N/ (logs in OUT/seed-N/demo.log).
#
#   benchmarks/gpu_study.sh [--python python3] [--wheels .wheelhouse] [--out output/gpu] \
#       [--seeds 0,1,2] [--jobs 3] [--scale gpu]
#   benchmarks/gpu_study.sh --python .venv/bin/python --device cpu --scale quick --seeds 0,1 --jobs 2  # tests
# Without --wheels the packages of --python are used as they are (a machine set up with pip).
set -euo pipefail
python=python3
wheels=""
out=output/gpu
seeds=0,1,2
jobs=3
scale=gpu
device=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --python) python="$2"; shift 2 ;;
    --wheels) wheels="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --scale) scale="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "gpu_study.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if ! command -v "$python" >/dev/null 2>&1; then
  echo "gpu_study.sh: --python '$python' is not an executable Python" >&2
  exit 2
fi
if [ "$device" != cpu ] && ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_study.sh: $python's torch sees no CUDA GPU; run this on the GPU node (or use tools/demo.py --device cpu)" >&2
  exit 2
fi
case "$python" in */*) python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")" ;; esac  # we cd below
out=$(realpath -m "$out")
mkdir -p "$out"
if [ -n "$wheels" ]; then
  shopt -s nullglob
  files=("$(realpath "$wheels")"/*.whl)
  if [ ${#files[@]} -eq 0 ]; then
    echo "gpu_study.sh: --wheels $wheels holds no .whl files; build it with 'make wheelhouse' where PyPI is reachable" >&2
    exit 2
  fi
  site=$(mktemp -d -t infomin-gpu-study-XXXXXX)
  trap 'rm -rf "$site"' EXIT
  "$python" -m pip install --quiet --no-index --no-deps --no-compile --disable-pip-version-check \
    --target "$site" "${files[@]}"
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
cd "$(mktemp -d -t infomin-gpu-study-cwd-XXXXXX)"
"$python" -c 'import torch, infomin, detectron2; print("torch", torch.__version__, "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU", "| infomin", infomin.__file__)'
start=$(date +%s)
status=0
PYTHONUNBUFFERED=1 "$python" -m infomin.study.cli.demo --device "$device" --scale "$scale" --seeds "$seeds" \
  --jobs "$jobs" --output "$out" || status=$?
echo "gpu_study.sh: the study took $(( $(date +%s) - start )) s wall (exit $status); stage times:"
"$python" - "$out" <<'EOF'
import json, sys
from pathlib import Path
for seed in sorted(Path(sys.argv[1]).glob("seed-*")):
    times = {}
    for f in sorted(seed.glob("stages/*.json")):
        r = json.loads(f.read_text())
        times[f.stem] = r["seconds"]
    print(f"  {seed.name}: " + ", ".join(f"{k} {v} s" for k, v in times.items()))
EOF
exit $status
