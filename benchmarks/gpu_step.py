#!/usr/bin/env python
"""How much faster `--fast_step` makes a GPU training step than plain `transformers.Trainer`, with the same numbers.

Step part: a random-weight DistilRoBERTa-shaped student (82M parameters, dropout off so that eager and compiled runs
can be compared number for number), bf16, batch 32 x 128 tokens, one run of `--steps` steps per variant through the
Trainer itself: `plain_trainer` (transformers.Trainer with the model's own cross-entropy and default options, what
run_glue.py does), `pseudo_kd_eager` (PseudoKDTrainer, default options), the fast step for pseudo_kd, none, ls and
KD from cached logits; two ingredients alone (the compiled step without CUDA graphs; the Trainer's own
`torch_compile`); and the floor, a bare PyTorch loop (no Trainer, batches already on the GPU, fused AdamW, gradient
clipping; eager, or with CUDA graphs). Step time: the GPU is synchronised only at the ends of windows of steps after
a warmup, so the measurement adds no per-step sync; a variant's time is the median window's mean step. The first
step's time (compilation included) and torch.compile's time are reported apart. Each variant records its training
loss at every step (kept on the device, read at the end), so the fast runs' loss curves are compared with the eager.

Epoch part: one epoch of SST-2 (67,349 sentences) with a real MiniLM-L6 student (`--model`), max_seq_length 64,
batch 32, bf16: plain Trainer against the fast step (`--epoch_regularization`, default none: the same loss), each
with its wall time, compile time and dev accuracy.

Parts run in priority order and each is skipped, and recorded as skipped, when `--time_budget_s` would not hold it.
`--quick` runs everything tiny on CPU (the fast step compiled with the aot_eager backend) so tests can run it.
Writes `<output_dir>/speed_gpu_step.json` and `.md`.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    RobertaConfig,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
    set_seed,
)

from pseudo_kd_hf import PseudoKDTrainer, PseudoKDTrainingArguments, pseudo_kd_loss
from pseudo_kd_hf.fast_step import FastStepPlan, keep_gradients_allocated
from pseudo_kd_hf.glue.data import load_glue_task

from .common import (
    DISTILROBERTA,
    REPO_ROOT,
    ROBERTA_SHARED,
    TINY_ROBERTA,
    device_name,
    environment,
    synchronize,
    write_outputs,
)

LEARNING_RATE = 5e-5
NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
# variant -> (regularization, or None for plain Trainer; how the step runs: eager, fast, or an ingredient alone)
VARIANTS = {
    "plain_trainer": (None, "eager"),
    "pseudo_kd_eager": ("pseudo_kd", "eager"),
    "pseudo_kd_fast": ("pseudo_kd", "fast"),
    "none_fast": ("none", "fast"),
    "ls_fast": ("ls", "fast"),
    "kd_cached_fast": ("kd", "fast"),
    "pseudo_kd_eager_ga2": ("pseudo_kd", "eager"),  # _ga2: 2 micro-batches per step, half the steps
    "pseudo_kd_fast_ga2": ("pseudo_kd", "fast"),
    "pseudo_kd_fast_without_cudagraphs": ("pseudo_kd", "fast_without_cudagraphs"),
    "pseudo_kd_fast_compiled_loss": ("pseudo_kd", "fast_compiled_loss"),  # the loss compiled too
    "pseudo_kd_trainer_torch_compile": ("pseudo_kd", "trainer_torch_compile"),
    "pseudo_kd_bare_loop_eager": ("pseudo_kd", "bare_loop_eager"),
    "pseudo_kd_bare_loop_cudagraphs": ("pseudo_kd", "bare_loop_cudagraphs"),
}
CURVE_PAIRS = (
    ("pseudo_kd_eager", "pseudo_kd_fast"),
    ("plain_trainer", "none_fast"),
    ("pseudo_kd_eager_ga2", "pseudo_kd_fast_ga2"),  # gradient accumulation into CUDA-graph gradients
    ("pseudo_kd_eager", "pseudo_kd_fast_compiled_loss"),
)
# Priority order, with a guess of each part's seconds on an H100 (compilation dominates; later compiles of the same
# graph hit inductor's cache). A part starts only if the guess fits the time left.
PLAN = (
    ("plain_trainer", 20),
    ("pseudo_kd_eager", 20),
    ("pseudo_kd_fast", 90),
    ("none_fast", 30),
    ("epoch", 130),
    ("ls_fast", 30),
    ("kd_cached_fast", 30),
    ("pseudo_kd_eager_ga2", 15),
    ("pseudo_kd_fast_ga2", 30),
    ("pseudo_kd_bare_loop_eager", 15),
    ("pseudo_kd_bare_loop_cudagraphs", 75),
    ("pseudo_kd_fast_without_cudagraphs", 60),
    ("pseudo_kd_fast_compiled_loss", 60),
    ("pseudo_kd_trainer_torch_compile", 60),
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default=str(REPO_ROOT / "benchmarks"))
    parser.add_argument("--model", default="/tmp/minilm", help="Epoch part: the student's folder (MiniLM-L6).")
    parser.add_argument("--glue_data", default=str(REPO_ROOT.parent / "shared" / "glue_data"))
    parser.add_argument("--time_budget_s", type=float, default=280.0, help="Skip parts that would not fit.")
    parser.add_argument("--steps", type=int, default=100, help="Step part: steps per variant.")
    parser.add_argument("--warmup", type=int, default=20, help="Step part: untimed steps first.")
    parser.add_argument("--window", type=int, default=10, help="Steps between two GPU synchronisations.")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--skip_epoch", action="store_true", help="Leave out the SST-2 epoch.")
    parser.add_argument("--epoch_regularization", default="none", help="The fast run's method in the epoch part.")
    parser.add_argument("--max_seq_length", type=int, default=64, help="Epoch part: truncation length.")
    parser.add_argument("--quick", action="store_true", help="Tiny model, few steps, CPU: checks the script runs.")
    args = parser.parse_args(argv)
    args.device = "cpu" if args.quick or not torch.cuda.is_available() else "cuda"
    if args.quick:
        args.steps, args.warmup, args.window = 12, 4, 4
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "device": device_name(args.device),
        "settings": {key: value for key, value in vars(args).items() if key not in ("output_dir",)},
        "variants": [],
        "loss_curves": [],
        "epoch": None,
        "skipped": [],
        "errors": [],
    }
    for part, guess_s in PLAN:
        if part != "epoch" and part not in args.variants or part == "epoch" and args.skip_epoch:
            continue
        left = args.time_budget_s - (time.perf_counter() - started)
        if (1 if args.quick else guess_s) > left:
            print(f"skip {part}: about {guess_s} s needed, {left:.0f} s left", flush=True)
            result["skipped"].append(
                {"part": part, "reason": f"time budget: about {guess_s} s needed, {left:.0f} left"}
            )
            continue
        print(f"== {part} ({time.perf_counter() - started:.0f} s in)", flush=True)
        try:
            if part == "epoch":
                result["epoch"] = run_epoch(args, result["device"])
            else:
                result["variants"].append(run_step_variant(args, part, result["device"]))
        except Exception as error:  # one broken variant must not cost the others their measurement
            traceback.print_exc()
            result["errors"].append({"part": part, "error": f"{type(error).__name__}: {error}"})
        finally:
            release_memory()
        write_progress(Path(args.output_dir), result, started, finished=False)  # a killed run keeps what it measured
    print(write_progress(Path(args.output_dir), result, started, finished=True), flush=True)
    return 0


def write_progress(output_dir: Path, result: dict[str, Any], started: float, finished: bool) -> str:
    """Write speed_gpu_step.json and .md from what is measured so far; return the markdown."""
    result["loss_curves"] = []
    add_ratios_and_curves(result)
    result["environment"] = environment(result["settings"]["device"])
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["finished"] = finished
    table = markdown(result)
    write_outputs(output_dir, "speed_gpu_step", result, table)
    return table


# ---- timing --------------------------------------------------------------------------------------------------------


class StepTimer(TrainerCallback):
    """Wall time of the first step, and mean step times over windows of `window` steps after `warmup` steps.

    The GPU is synchronised only at the first step's end and at window ends, so steps in a window run as they would.
    """

    def __init__(self, device: str, warmup: int, window: int) -> None:
        self.device, self.warmup, self.window = device, warmup, window
        self.window_ms: list[float] = []
        self.first_step_s: float | None = None
        self.train_s: float | None = None
        self._start = self._window_start = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        synchronize(self.device)
        self._start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        step = state.global_step
        if step == 1:
            synchronize(self.device)
            self.first_step_s = time.perf_counter() - self._start
        if step >= self.warmup and (step - self.warmup) % self.window == 0:
            synchronize(self.device)
            now = time.perf_counter()
            if step > self.warmup:
                self.window_ms.append(1000 * (now - self._window_start) / self.window)
            self._window_start = now

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        synchronize(self.device)
        self.train_s = time.perf_counter() - self._start

    def median_step_ms(self) -> float | None:
        return round(statistics.median(self.window_ms), 3) if self.window_ms else None


class LossRecorder:
    """Trainer mixin: keep every training micro-batch's loss on the device (no sync), to read after training."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recorded_losses: list[torch.Tensor] = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001, ANN201
        output = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if model.training:
            loss = output[0] if return_outputs else output
            self.recorded_losses.append(loss.detach().float())
        return output


class RecordingTrainer(LossRecorder, Trainer):
    pass


class RecordingPseudoKDTrainer(LossRecorder, PseudoKDTrainer):
    pass


class CompiledLossPseudoKDTrainer(RecordingPseudoKDTrainer):
    """The fast step with the method's `per_example_loss` compiled too (inductor fuses its softmaxes and sums into a
    few kernels, where the eager loss launches dozens after the CUDA-graph forward): a variant only measured here."""

    def _prepare_for_training(self, max_steps: int, train_dataloader: Any, resume_from_checkpoint: Any) -> Any:
        prepared = super()._prepare_for_training(max_steps, train_dataloader, resume_from_checkpoint)
        loss = self.regularizer.per_example_loss
        if not hasattr(loss, "_torchdynamo_orig_callable"):
            backend = self.fast_step_plan.compile_options.get("backend", "inductor")
            self.regularizer.per_example_loss = torch.compile(loss, backend=backend, dynamic=False)
        return prepared


def dynamo_compile_s() -> float:
    """Seconds torch.compile has spent so far in this process, forward and (lazily compiled) backward graphs."""
    return float(torch._dynamo.utils.calculate_time_spent().get("total_wall_time", 0.0))


# ---- step part -------------------------------------------------------------------------------------------------------


def step_dataset(args: argparse.Namespace, vocab_size: int) -> tuple[Dataset, int, int]:
    batch, length = (4, 16) if args.quick else (32, 128)
    generator = torch.Generator().manual_seed(0)
    rows = batch * args.steps
    columns = {
        "input_ids": torch.randint(3, vocab_size, (rows, length), generator=generator).tolist(),
        "attention_mask": [[1] * length] * rows,
        "label": torch.randint(0, 2, (rows,), generator=generator).tolist(),
        "teacher_logits": (torch.randn(rows, 2, generator=generator) * 2).tolist(),
    }
    return Dataset.from_dict(columns), batch, length


def trainer_arguments(args: argparse.Namespace, output_dir: str, **settings: Any) -> dict[str, Any]:
    """What every run shares; the rest are each Trainer's defaults."""
    return {
        "output_dir": output_dir,
        "bf16": args.device == "cuda",
        "use_cpu": args.device == "cpu",
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "seed": 42,
        "data_seed": 42,
        **settings,
    }


def build_trainer(
    args: argparse.Namespace,
    regularization: str | None,
    step: str,
    model: Any,
    dataset: Dataset,
    collator: Any = default_data_collator,
    **settings: Any,
) -> Trainer:
    """Plain Trainer (regularization None) or PseudoKDTrainer, with the step run eagerly, fast, or an ingredient."""
    output_dir = tempfile.mkdtemp(prefix="gpu_step_")
    common = trainer_arguments(args, output_dir, **settings)
    if regularization is None:
        trainer = RecordingTrainer(
            model=model, args=TrainingArguments(**common), train_dataset=dataset, data_collator=collator
        )
    else:
        if regularization != "kd":
            dataset = dataset.remove_columns([c for c in ("teacher_logits",) if c in dataset.column_names])
        common["fast_step"] = step in ("fast", "fast_without_cudagraphs", "fast_compiled_loss")
        if step == "trainer_torch_compile":
            common["torch_compile"] = True
            if args.quick:
                common["torch_compile_backend"] = "aot_eager"
        trainer_args = PseudoKDTrainingArguments(regularization=regularization, **common)
        trainer_class = CompiledLossPseudoKDTrainer if step == "fast_compiled_loss" else RecordingPseudoKDTrainer
        trainer = trainer_class(model=model, args=trainer_args, train_dataset=dataset, data_collator=collator)
        if step == "fast_without_cudagraphs":
            trainer.fast_step_plan = FastStepPlan(compile_options={"dynamic": False, **_quick_backend(args)})
        elif step == "fast_compiled_loss":
            cudagraphs = {} if args.quick else {"mode": "reduce-overhead"}
            options = {"dynamic": False, **cudagraphs, **_quick_backend(args)}
            trainer.fast_step_plan = FastStepPlan(compile_options=options)
        elif step == "fast" and args.quick:  # CPU: the flag alone is the eager step; compile as the GPU would
            trainer.fast_step_plan = FastStepPlan(compile_options={"dynamic": False, "backend": "aot_eager"})
    return trainer


def _quick_backend(args: argparse.Namespace) -> dict[str, str]:
    return {"backend": "aot_eager"} if args.quick else {}


def run_step_variant(args: argparse.Namespace, variant: str, device: str) -> dict[str, Any]:
    regularization, step = VARIANTS[variant]
    config = RobertaConfig(**(TINY_ROBERTA if args.quick else DISTILROBERTA), **ROBERTA_SHARED, **NO_DROPOUT)
    dataset, batch, length = step_dataset(args, config.vocab_size)
    set_seed(0)
    model = AutoModelForSequenceClassification.from_config(config.__class__(**config.to_dict(), num_labels=2))
    timer = StepTimer(args.device, args.warmup, args.window)
    compile_before = dynamo_compile_s()
    if step.startswith("bare_loop"):
        losses = run_bare_loop(args, model, dataset, batch, timer, cudagraphs=step == "bare_loop_cudagraphs")
        trainer_name = "none (bare loop)"
    else:
        trainer_name = "transformers.Trainer" if regularization is None else "PseudoKDTrainer"
        accumulation = 2 if variant.endswith("_ga2") else 1
        settings = {
            "max_steps": args.steps // accumulation,
            "gradient_accumulation_steps": accumulation,
            "per_device_train_batch_size": batch,
            "logging_steps": args.steps,
        }
        trainer = build_trainer(args, regularization, step, model, dataset, learning_rate=LEARNING_RATE, **settings)
        trainer.add_callback(timer)
        trainer.train()
        losses = torch.stack(trainer.recorded_losses).tolist()
    row = {
        "variant": variant,
        "device": device,
        "median_step_ms": timer.median_step_ms(),
        "method": regularization or "none (model's own cross-entropy)",
        "trainer": trainer_name,
        "step": step,
        "batch": f"{batch} x {length}",
        "steps": len(losses),  # micro-batches
        "first_step_s": round(timer.first_step_s, 2),
        "dynamo_compile_s": round(dynamo_compile_s() - compile_before, 2),
        "train_s": round(timer.train_s, 2),
        "window_ms": [round(value, 3) for value in timer.window_ms],
        "losses": losses,
    }
    print(f"{variant}: {row['median_step_ms']} ms/step, first step {row['first_step_s']} s", flush=True)
    return row


def run_bare_loop(
    args: argparse.Namespace, model: Any, dataset: Dataset, batch: int, timer: StepTimer, cudagraphs: bool
) -> list[float]:
    """The floor: Pseudo-KD steps with no Trainer around them (batches moved to the device beforehand).

    Forward (bf16 autocast on CUDA), the loss, backward, gradient clipping at 1.0, fused AdamW at a constant rate,
    gradients zeroed; the same data order as the Trainer runs is not needed here, only the time.
    """
    device = torch.device(args.device)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, fused=args.device == "cuda")
    forward = model
    if cudagraphs:
        options = {"backend": "aot_eager"} if args.quick else {"mode": "reduce-overhead"}
        forward = torch.compile(model, dynamic=False, **options)
        keep_gradients_allocated(forward)
    columns = dataset.with_format("torch")
    batches = [
        {name: columns[start : start + batch][name].to(device) for name in ("input_ids", "attention_mask", "label")}
        for start in range(0, len(dataset), batch)
    ]
    autocast = torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.device == "cuda")
    losses, state = [], SimpleNamespace(global_step=0)
    timer.on_train_begin(None, state, None)
    for inputs in batches:
        with autocast:
            logits = forward(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        loss = pseudo_kd_loss(logits, inputs["label"], alpha=0.1, beta=2.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        forward.zero_grad()
        losses.append(loss.detach())
        state.global_step += 1
        timer.on_step_end(None, state, None)
    timer.on_train_end(None, state, None)
    return torch.stack(losses).tolist()


# ---- epoch part ------------------------------------------------------------------------------------------------------


def run_epoch(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """One SST-2 epoch: plain Trainer, then the fast step; wall and compile times, dev accuracy."""
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    sst2 = load_glue_task("sst2", args.glue_data)
    train_rows, dev_rows = (64, 32) if args.quick else (None, None)
    splits = {"train": sst2["train"], "validation": sst2["validation"]}
    if args.quick:
        splits = {
            "train": splits["train"].select(range(train_rows)),
            "validation": splits["validation"].select(range(dev_rows)),
        }
    encoded = {
        name: split.map(
            lambda batch: tokenizer(batch["sentence"], truncation=True, max_length=args.max_seq_length),
            batched=True,
            remove_columns=["sentence", "idx"],
        )
        for name, split in splits.items()
    }
    runs = []
    for variant, regularization, step in (
        ("plain_trainer", None, "eager"),
        (f"{args.epoch_regularization}_fast", args.epoch_regularization, "fast"),
    ):
        set_seed(42)
        model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
        settings = {
            "num_train_epochs": 1,
            "per_device_train_batch_size": 32,
            "per_device_eval_batch_size": 128,
            "learning_rate": 3e-5,
            "logging_steps": 500,
        }
        collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)  # as run_glue does in mixed precision
        trainer = build_trainer(args, regularization, step, model, encoded["train"], collator, **settings)
        trainer.compute_metrics = accuracy
        timer = StepTimer(args.device, args.warmup, 100 if not args.quick else args.window)
        trainer.add_callback(timer)
        compile_before = dynamo_compile_s()
        metrics = trainer.train().metrics
        compile_s = dynamo_compile_s() - compile_before
        evaluation = trainer.evaluate(encoded["validation"])
        runs.append(
            {
                "variant": variant,
                "device": device,
                "epoch_s": round(timer.train_s, 1),
                "dynamo_compile_s": round(compile_s, 1),
                "epoch_without_compile_s": round(timer.train_s - compile_s, 1),
                "median_step_ms": timer.median_step_ms(),
                "steps": trainer.state.global_step,
                "train_loss": round(metrics["train_loss"], 4),
                "dev_accuracy": round(evaluation["eval_accuracy"], 4),
            }
        )
        print(f"epoch {variant}: {runs[-1]}", flush=True)
        del trainer, model
        release_memory()
    return {
        "task": "sst2",
        "model": args.model,
        "train_rows": len(encoded["train"]),
        "dev_rows": len(encoded["validation"]),
        "max_seq_length": args.max_seq_length,
        "runs": runs,
        "speedup": round(runs[0]["epoch_s"] / runs[1]["epoch_s"], 2),
        "speedup_without_compile": round(runs[0]["epoch_s"] / max(runs[1]["epoch_without_compile_s"], 1e-3), 2),
    }


def accuracy(prediction: Any) -> dict[str, float]:
    return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}


# ---- report ----------------------------------------------------------------------------------------------------------


def add_ratios_and_curves(result: dict[str, Any]) -> None:
    by_name = {row["variant"]: row for row in result["variants"]}
    plain = by_name.get("plain_trainer", {}).get("median_step_ms")
    for row in result["variants"]:
        if plain and row["median_step_ms"]:
            row["speedup_vs_plain_trainer"] = round(plain / row["median_step_ms"], 2)
    for reference, fast in CURVE_PAIRS:
        if reference in by_name and fast in by_name:
            a, b = by_name[reference]["losses"], by_name[fast]["losses"]
            differences = [abs(x - y) for x, y in zip(a, b, strict=True)]
            result["loss_curves"].append(
                {
                    "reference": reference,
                    "fast": fast,
                    "steps": len(a),
                    "max_abs_diff": max(differences),
                    "max_rel_diff": max(d / max(abs(x), 1e-12) for d, x in zip(differences, a, strict=True)),
                    "first_loss": a[0],
                    "last_loss": [a[-1], b[-1]],
                }
            )


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Training step time: plain Trainer vs `--fast_step`",
        "",
        f"Device: {result['device']}. Wall time of the benchmark: {result['wall_s']} s"
        + ("." if result["finished"] else " (unfinished: the run stopped after the parts below)."),
        "",
        "| variant | trainer | step | batch | median ms/step | speedup vs plain Trainer | first step (s) | "
        "compile (s) |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for row in result["variants"]:
        lines.append(
            f"| {row['variant']} | {row['trainer']} | {row['step']} | {row['batch']} | {row['median_step_ms']} | "
            f"{row.get('speedup_vs_plain_trainer', '')} | {row['first_step_s']} | {row['dynamo_compile_s']} |"
        )
    if any(row["variant"].endswith("_ga2") for row in result["variants"]):
        lines += [
            "",
            "`_ga2`: two micro-batches of that shape per optimizer step (gradient accumulation), ms per step.",
        ]
    if result["loss_curves"]:
        lines += [
            "",
            "| loss curve | steps | max abs diff | max rel diff | last loss (eager, fast) |",
            "|---|---:|---:|---:|---|",
        ]
        for curve in result["loss_curves"]:
            lines.append(
                f"| {curve['reference']} vs {curve['fast']} | {curve['steps']} | {curve['max_abs_diff']:.2e} | "
                f"{curve['max_rel_diff']:.2e} | {curve['last_loss'][0]:.4f}, {curve['last_loss'][1]:.4f} |"
            )
    epoch = result["epoch"]
    if epoch:
        lines += [
            "",
            f"One epoch of {epoch['task']} ({epoch['train_rows']} rows, max_seq_length {epoch['max_seq_length']}, "
            f"batch 32), dev {epoch['dev_rows']} rows: the fast run took {epoch['speedup']}x less time, "
            f"{epoch['speedup_without_compile']}x less without its compilation.",
            "",
            "| run | epoch (s) | compile (s) | epoch without compile (s) | median ms/step | train loss "
            "| dev accuracy |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for run in epoch["runs"]:
            lines.append(
                f"| {run['variant']} | {run['epoch_s']} | {run['dynamo_compile_s']} | {run['epoch_without_compile_s']} "
                f"| {run['median_step_ms']} | {run['train_loss']} | {run['dev_accuracy']} |"
            )
    lines += [""] + [f"Skipped {item['part']}: {item['reason']}." for item in result["skipped"]]
    lines += [f"Error in {item['part']}: {item['error']}" for item in result["errors"]]
    return "\n".join(lines).rstrip() + "\n"


def release_memory() -> None:
    gc.collect()
    torch._dynamo.reset()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
