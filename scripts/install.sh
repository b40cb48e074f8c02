#!/usr/bin/env bash
# Install trexport and everything it needs into .venv (created if missing), then build the custom-op
# library. Safe to run again: what is installed already is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip -q --disable-pip-version-check)
# torch first, pinned: an unpinned torch pulls several GB of CUDA packages on CPU machines.
"${pip[@]}" install "torch==2.13.0"
"${pip[@]}" install -e ".[dev]"
if [ -f scripts/build_custom_ops.sh ]; then
  bash scripts/build_custom_ops.sh
fi
echo "trexport installed in .venv"
