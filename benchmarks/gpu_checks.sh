#!/usr/bin/env bash
# Every GPU check of the project in one run, sized for a single ~10-minute call on one H100/H200:
# the gpu-marked tests, the learner at real scale (gpu_train.py: 1.5B full-parameter bf16 and 7B
# LoRA, tokens/s, peak memory, MFU), sampling speed (rollout_speed.py --device cuda) and the kernel
# evaluator's acceptance run (kernel_gpu.py).
#
# The GPU machine has torch, transformers, peft, safetensors, httpx, typer, rich, pyyaml and pytest,
# but not the rest of the project's dependencies, and no package index. So, in two steps:
#
#   bash benchmarks/gpu_checks.sh wheels   # here, with PyPI: the missing wheels into .whl/ (git-ignored)
#   bash benchmarks/gpu_checks.sh          # there, .whl/ carried along: runs everything
#
# Results go to $OUT (or benchmarks/results/ when OUT is unset): gpu_tests.log, gpu_train.json,
# rollout_speed_cuda.json, kernel_gpu.json and one log per script. Exit code 2 without a CUDA GPU.
set -uo pipefail
cd "$(dirname "$0")/.."

MISSING=(gymnasium farama-notifications fastapi starlette uvicorn websockets pydantic pydantic-core
         annotated-types typing-inspection bm25s)

if [ "${1:-}" = "wheels" ]; then
  mkdir -p .whl
  installed=$(python -m pip freeze)
  for name in "${MISSING[@]}"; do
    pinned=$(grep -i "^${name//-/[-_]}==" <<< "$installed") || { echo "not installed here: $name"; exit 1; }
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "$pinned" || exit 1
  done
  ls .whl
  exit 0
fi

out=${OUT:-benchmarks/results}
mkdir -p "$out"
python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 2)" || {
  echo "python3 has no torch or torch sees no CUDA GPU: nothing to check"; exit 2; }
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

status=0
run() {  # run SECONDS NAME COMMAND...: one check, its output in $out/NAME.log
  local limit=$1 name=$2; shift 2
  echo "== $name (at most $limit s)"
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { echo "== $name failed with exit code $rc"; status=1; }
}
run 180 gpu_tests python3 -m pytest -q -p no:cacheprovider -m gpu \
  tests/unit/agents/test_hf_gpu.py tests/unit/trainers/test_logprobs_gpu.py tests/integration/trainers/test_train_gpu.py \
  tests/integration/kernel/test_gpu.py
run 180 gpu_train python3 benchmarks/gpu_train.py --out "$out/gpu_train.json"
run 120 rollout_speed python3 benchmarks/rollout_speed.py --device cuda --out "$out/rollout_speed_cuda.json"
run 90 kernel_gpu python3 benchmarks/kernel_gpu.py
[ "$out" = benchmarks/results ] || cp benchmarks/results/kernel_gpu.json "$out/" 2>/dev/null
exit $status
