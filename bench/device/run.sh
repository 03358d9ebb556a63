#!/usr/bin/env bash
# The device run (issue 23, item 1): bench/gpu_step.py at paper shapes on the lent GPU, everything into $OUT.
#
#   bash bench/device/run.sh            # on the device machine: python3 is the image's (torch, transformers 5.17)
#   OUT=/tmp/x PYTHON=.venv/bin/python bash bench/device/run.sh --tiny    # the same at toy size, on a CPU
#
# Arguments go to bench/gpu_step.py. Needs no git, no network and nothing the image lacks; writes (6 files, all of
# which come back from the device): gpu_step.json / .md (the record: measured beside planned), gpu_step.log,
# rope.json / rope.log (bench/device/rope_check.py: the M-RoPE positions under this transformers), env.txt.
# Exit status: gpu_step.py's (1 when a stage failed; its error is in the record).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-bench/results/device}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
  PYTORCH_ALLOC_CONF=${PYTORCH_ALLOC_CONF:-expandable_segments:True}
{
  date -u; uname -a; echo "python: $(command -v "$PY")"
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi
  "$PY" -c 'import sys, torch, transformers; print(sys.version); print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available()); print("transformers", transformers.__version__)'
} >"$OUT/env.txt" 2>&1
"$PY" -m bench.gpu_step --out "$OUT/gpu_step" "$@" 2>&1 | tee "$OUT/gpu_step.log"
rc=${PIPESTATUS[0]}
# CPU only, a few seconds: the positions the model uses under the image's transformers (compare with this machine's)
CUDA_VISIBLE_DEVICES= "$PY" -m bench.device.rope_check --out "$OUT/rope.json" >"$OUT/rope.log" 2>&1 || echo "rope_check failed: $OUT/rope.log"
tail -n 1 "$OUT/rope.log"
exit "$rc"
