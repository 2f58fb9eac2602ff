#!/usr/bin/env bash
# The GPU node check (`make gpu-check`): runs benchmarks/gpu_check.py with the Python given by
# --python (default python3), the one holding the node's torch. All options: gpu_check.py --help.
#   benchmarks/gpu_check.sh --python python3 --wheels .wheelhouse [--out output/gpu_check]
set -euo pipefail
python=python3
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --python) python="${args[$((i + 1))]:-}" ;;
    --python=*) python="${args[$i]#--python=}" ;;
  esac
done
if ! command -v "$python" >/dev/null 2>&1; then
  echo "gpu_check.sh: --python '$python' is not an executable Python" >&2
  exit 2
fi
exec "$python" "$(dirname "$0")/gpu_check.py" "$@"
