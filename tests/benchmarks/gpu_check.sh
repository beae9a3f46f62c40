#!/usr/bin/env bash
# The whole GPU measurement of issue 17 in one call (< 6 minutes on an H100/H200):
#   SmolLM2-135M shape, full and LoRA, 8 x 2048: ours vs transformers.Trainer (and TRL SFTTrainer where it runs);
#   Llama 1.1B shape, full, 8 x 2048: ours vs Trainer. Random-init models, nothing downloaded.
#
# Before the call, on a machine with the project's venv (the embedded model package installed):
#   1. the SmolLM2 tokenizer (3.5 MB; the 93 MB GGUF does not travel):
#        .venv/bin/python -m tests.benchmarks.bench_train --export-tokenizer .bench/tokenizer
#   2. wheels for what the device lacks (cp312 manylinux; polars-runtime-32 alone is 54 MB of the 64 MiB carry limit):
#        pip download --only-binary=:all: --python-version 3.12 --platform manylinux_2_17_x86_64 --no-deps -d .whl \
#          polars polars-runtime-32 pydantic pydantic-core annotated-types typing-inspection
#      (.bench/ and .whl/ are git-ignored: name them in the device run's `carry`.)
# On the device (torch, transformers, peft, accelerate are there):
#   bash tests/benchmarks/gpu_check.sh            # prints the tables; JSON under $OUT when set
#   bash tests/benchmarks/gpu_check.sh --dry-run  # CPU, tiny shapes, a few steps: checks the script itself (tests run it)
set -euo pipefail
cd "$(dirname "$0")/../.."

DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
PYTHON="${PYTHON:-python3}"
TOKENIZER_DIR="${TOKENIZER_DIR:-.bench/tokenizer}"
RESULTS="${OUT:-/tmp/tuneprep-gpu-check}"
mkdir -p "$RESULTS"

if [[ -d .whl ]] && compgen -G ".whl/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
[[ -d "$TOKENIZER_DIR" ]] || { echo "no tokenizer in '$TOKENIZER_DIR': see the instructions at the top of $0" >&2; exit 2; }

bench() {  # bench SECONDS NAME ARGS...: one bench_train.py call, cut off after SECONDS so the whole check keeps its budget
  local limit="$1" name="$2"
  shift 2
  echo "== $name"
  timeout "$limit" "$PYTHON" tests/benchmarks/bench_train.py --tokenizer "$TOKENIZER_DIR" --json "$RESULTS/$name.json" "$@" \
    || echo "!! $name: exit $? (timed out after ${limit}s, or failed)"
}

if [[ $DRY == 1 ]]; then
  bench 300 135m --shape tiny --methods full,lora --impls ours,trainer --steps 3 --warmup 1 --batch-size 2 --seq 64
  bench 300 1b --shape tiny --methods full --impls ours --steps 3 --warmup 1 --batch-size 2 --seq 64
else
  "$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name(), torch.__version__)'
  bench 200 135m --shape 135m --methods full,lora --impls ours,trainer,trl --steps 30 --warmup 8 --batch-size 8 --seq 2048
  bench 140 1b --shape 1b --methods full --impls ours,trainer --steps 20 --warmup 6 --batch-size 8 --seq 2048
fi
ls "$RESULTS"/*.json
