#!/usr/bin/env bash
# Create .venv (if needed) and install infnet with everything the CLI, tests and benchmarks use.
# torch/torchvision are pinned to the CPU-usable builds available offline on the project machines.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>/dev/null || true
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  .venv/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1"
fi
.venv/bin/pip install -q -e ".[io,pretrained,dev]"
