#!/usr/bin/env bash
# Install fairseq-difformer and its stack into the current Python environment.
#   * torch: an already importable torch (e.g. a GPU build) is left alone; otherwise the CPU
#     wheel torch==2.13.0 is installed (an unpinned torch would pull a multi-GB CUDA build).
#   * fairseq: fairseq-fixed 0.12.3.1 (fairseq 0.12 that imports on Python 3.11), built without
#     its declared dependencies, because it names torchaudio, which has no torch 2.13 release.
# Usage: bash scripts/install.sh [--dev]     (--dev adds pytest and pytest-xdist (make test runs
#                                             one worker per core), matplotlib for the benchmark plots,
#                                             tensorboardX for fairseq-train --tensorboard-logdir, and
#                                             the optional inference engines: CTranslate2 for the AR
#                                             model's roles, ONNX Runtime for the Difformer's decoding)
set -euo pipefail
PY=${PYTHON:-python3}
here=$(cd "$(dirname "$0")/.." && pwd)
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "$@"; }

if "$PY" -c "import torch" 2>/dev/null; then
  echo "[install] using the installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  echo "[install] torch==2.13.0 (CPU)"
  pip_install torch==2.13.0
fi
if "$PY" -c "import fairseq" 2>/dev/null; then
  echo "[install] using the installed fairseq $("$PY" -c 'import fairseq; print(fairseq.__version__)')"
else
  echo "[install] fairseq-fixed==0.12.3.1 (compiles fairseq's extensions: a few minutes the first time)"
  pip_install cython numpy
  pip_install --no-build-isolation --no-deps fairseq-fixed==0.12.3.1
fi
echo "[install] runtime dependencies"
pip_install -r "$here/requirements.txt"
if [ "${1:-}" = "--dev" ]; then
  pip_install pytest pytest-xdist matplotlib tensorboardX 'ctranslate2>=4.5' 'onnxruntime>=1.20' 'onnx>=1.16'
fi
echo "[install] fairseq-difformer (editable)"
pip_install --no-deps --no-build-isolation -e "$here"
