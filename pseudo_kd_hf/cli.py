"""`pseudo-kd-glue` and `pseudo-kd-glue-submit`: fine-tune on GLUE with `PseudoKDTrainer`, then package a submission.

Modelled on Hugging Face's `examples/pytorch/text-classification/run_glue.py`: the same flags with the same meaning,
parsed by `HfArgumentParser` from the command line or one JSON/YAML file, and a pipeline that reads top to bottom
(`prepare_task`, then `run_task`). On top: offline `--data_dir`, `--preset paper`, KD teachers with cached logits,
leaderboard files with the official row counts, and `--task_name all` for the whole benchmark.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import datasets
import transformers
import yaml
from datasets import Dataset
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    HfArgumentParser,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    default_data_collator,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from .glue.data import HELDOUT_SPLIT, heldout_split, load_glue_task
from .glue.metrics import glue_compute_metrics_fn
from .glue.submission import package_submission, validate_submission, write_leaderboard_file
from .glue.tasks import AX_PREDICTED_BY, METRIC_KEYS, SUBMISSION_FILES, TASKS, GlueTask, PaperPreset, get_task
from .teacher_cache import add_teacher_logits
from .trainer import PseudoKDTrainer, PseudoKDTrainingArguments, teacher_label_order

logger = logging.getLogger(__name__)

ALL_TASKS = "all"  # --task_name all: the suite
PRESETS = ("paper",)
PRESET_FIELDS = tuple(f.name for f in dataclasses.fields(PaperPreset) if f.name != "note")
CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
SUITE_TASKS = tuple(task for task in TASKS.values() if "train" in task.files)  # AX comes with the MNLI run
ALL_RESULTS = "all_results.json"  # written last by `run_task`: a folder holding it is a finished run
RESULTS_TABLE = "results.md"
SUITE_SUBMISSION = "submission"
EVAL_SUFFIXES = {"validation_mismatched": "_mm"}  # run_glue's key suffix for MNLI's second dev set


@dataclass
class ModelArguments:
    """Which student (and teacher) to fine-tune, as in run_glue."""

    model_name_or_path: str = field(
        default="distilroberta-base",
        metadata={"help": "Student model: a Hub id or a local folder (the paper fine-tunes DistilRoBERTa)."},
    )
    config_name: str | None = field(default=None, metadata={"help": "Config name or path, if not the model's."})
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer name or path, if not the model's."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store models downloaded from the Hub."})
    model_revision: str = field(default="main", metadata={"help": "Model version: a branch, tag or commit id."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models (default: your login)."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow models whose code lives on the Hub (runs that code locally)."}
    )
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={"help": "Replace a checkpoint's classifier head trained for another number of labels."},
    )
    teacher_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "KD teacher fine-tuned on the task (e.g. RoBERTa-Large), for --regularization kd. Its logits over "
            "the training set are computed once with its own tokenizer (batch: --per_device_eval_batch_size) and "
            "cached beside the dataset cache."
        },
    )
    kd_online: bool = field(
        default=False,
        metadata={"help": "Run the teacher at every training step instead of caching its logits (same tokenizer)."},
    )


@dataclass
class DataTrainingArguments:
    """Which GLUE task, where its data is, and how to tokenise it, as in run_glue."""

    task_name: str | None = field(
        default=None,
        metadata={"help": f"GLUE task: {', '.join(task.name for task in SUITE_TASKS)}, or {ALL_TASKS} for the suite."},
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "An original glue_data/ folder (CoLA/, SST-2/, ...) read offline; default: the Hub."},
    )
    max_seq_length: int = field(default=128, metadata={"help": "Longer inputs are truncated to this many tokens."})
    pad_to_max_length: bool = field(
        default=False, metadata={"help": "Pad every input to max_seq_length (default: pad each batch dynamically)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep the first N training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep the first N examples of each dev set."})
    max_predict_samples: int | None = field(
        default=None,
        metadata={"help": "Keep the first N test examples (debugging only: no leaderboard file is written then)."},
    )
    overwrite_cache: bool = field(default=False, metadata={"help": "Tokenise again instead of reading the cache."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenisation."})
    preset: str | None = field(
        default=None,
        metadata={
            "help": "paper: alpha, beta, batch size and learning rate of the paper's Appendix C for the task "
            "(flags you pass win).",
            "choices": list(PRESETS),
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Train into a non-empty --output_dir from scratch instead of refusing (or resuming)."},
    )
    heldout_fraction: float | None = field(
        default=None,
        metadata={
            "help": "For selecting settings: hold out this share of the training set (stratified), train on the "
            "rest and evaluate on it instead of the dev set (no --do_predict)."
        },
    )
    heldout_seed: int = field(
        default=0,
        metadata={"help": "Seed of the held-out draw, apart from --seed so every trial of a sweep sees one split."},
    )

    def __post_init__(self) -> None:
        if self.heldout_fraction is not None and not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"--heldout_fraction must be in (0, 1), got {self.heldout_fraction}.")
        if self.task_name is None:
            raise ValueError(f"--task_name is required: one of {', '.join(t.name for t in SUITE_TASKS)}, {ALL_TASKS}.")
        if self.task_name.lower() == ALL_TASKS:
            self.task_name = ALL_TASKS
        else:
            task = get_task(self.task_name)
            if task not in SUITE_TASKS:
                raise ValueError(
                    f"--task_name {task.name} has no training data: its leaderboard file is written by "
                    f"--task_name {AX_PREDICTED_BY} --do_predict."
                )
            self.task_name = task.name
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"--preset {self.preset!r} is unknown: choose one of {', '.join(PRESETS)}.")


ARGUMENT_CLASSES = (ModelArguments, DataTrainingArguments, PseudoKDTrainingArguments)


class UsageError(Exception):
    """Bad input found before any training: reported as one line on stderr, exit code 2 (like argparse)."""


_F = TypeVar("_F", bound=Callable[..., Any])


def _bad_input_is_usage_error(function: _F) -> _F:
    """Turn the errors that setup raises for bad input into `UsageError`, so only they become one-line messages."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (ValueError, OSError) as error:  # OSError: a model or file that is not there
            raise UsageError(" ".join(str(error).split())) from error

    return wrapper  # type: ignore[return-value]


@_bad_input_is_usage_error
def read_arguments(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The arguments the user set, by field name: from the command line, from one .json/.yaml/.yml file, or from
    such a file followed by flags that override it (`pseudo-kd-glue best.yaml --do_predict --output_dir runs/x`).

    Only what was set is returned (not the defaults), so `--preset paper` can fill in exactly the rest.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(ARGUMENT_CLASSES)
    from_file: dict[str, Any] = {}
    if argv and argv[0].endswith(CONFIG_SUFFIXES):
        from_file, argv = _read_config_file(parser, Path(argv[0])), argv[1:]
    parser.parse_args(argv)  # --help, unknown flags and malformed values end here, reported by argparse
    for action in parser._actions:
        action.default = argparse.SUPPRESS  # now the namespace holds only the flags present in argv
    return {**from_file, **vars(parser.parse_args(argv))}


def _read_config_file(parser: HfArgumentParser, path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"Config file {path} not found: pass an existing .json, .yaml or .yml file.")
    try:
        text = path.read_text(encoding="utf-8")
        values = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise ValueError(f"Config file {path} is not valid {path.suffix[1:].upper()}: {error}") from None
    if not isinstance(values, dict):
        raise ValueError(f"Config file {path} must hold a mapping of argument names to values.")
    actions = {action.dest: action for action in parser._actions if action.dest != "help"}
    unknown = sorted(set(values) - set(actions))
    if unknown:
        raise ValueError(f"Config file {path}: unknown arguments {', '.join(unknown)}; see --help for the names.")
    return {name: _convert_number(path, name, value, actions[name].type) for name, value in values.items()}


def _convert_number(path: Path, name: str, value: Any, expected: Any) -> Any:
    """Convert a number written as text, as the command line would: YAML reads `2e-5` as a string."""
    if not isinstance(value, str) or expected not in (int, float):
        return value
    try:
        return expected(value)
    except ValueError:
        raise ValueError(f"Config file {path}: {name} must be a number, got {value!r}.") from None


@_bad_input_is_usage_error
def build_arguments(
    values: dict[str, Any],
) -> tuple[ModelArguments, DataTrainingArguments, PseudoKDTrainingArguments]:
    """The three argument dataclasses from the set values; their `__post_init__` checks every value."""
    return HfArgumentParser(ARGUMENT_CLASSES).parse_dict(values)


def apply_preset(values: dict[str, Any], task: GlueTask) -> dict[str, Any]:
    """Fill the paper's Appendix C hyper-parameters for `task` into `values`, keeping every value the user set."""
    preset = task.preset
    if preset is None:
        raise ValueError(f"--preset paper has no values for {task.name}: drop --preset.")
    if preset.note:
        logger.warning(f"--preset paper for {task.name}: {preset.note}.")
    filled = {name: getattr(preset, name) for name in PRESET_FIELDS if name not in values}
    settings = ", ".join(
        f"{name}={filled[name]} (paper)" if name in filled else f"{name}={values[name]} (yours)"
        for name in PRESET_FIELDS
    )
    logger.info(f"--preset paper for {task.name}: {settings}.")
    return {**values, **filled}


def setup_logging(training_args: PseudoKDTrainingArguments) -> None:
    """run_glue's logging: INFO on the main process, the Trainer's log level everywhere else."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    log_level = training_args.get_process_log_level()
    logging.getLogger(__package__).setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def main(argv: Sequence[str] | None = None) -> int:
    """`pseudo-kd-glue`: fine-tune, evaluate and predict one GLUE task, or every task with `--task_name all`.

    Returns the exit code: 0, or 2 after one `error: ...` line on stderr for bad input.
    """
    try:
        values = read_arguments(argv)
        _, data_args, training_args = build_arguments(values)  # every value is checked before any work starts
        setup_logging(training_args)
        if data_args.task_name == ALL_TASKS:
            run_suite(values, data_args, training_args)
        else:
            run_task(prepare_task(values))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


@dataclass
class PreparedTask:
    """Everything `run_task` needs, built and checked by `prepare_task` before any training starts."""

    training_args: PseudoKDTrainingArguments
    trainer: PseudoKDTrainer
    train_dataset: Dataset | None
    eval_datasets: dict[str, Dataset]  # Hub validation split -> tokenised examples
    predict_datasets: dict[str, Dataset]  # SUBMISSION_FILES key -> tokenised test examples, labels removed
    last_checkpoint: str | None


@_bad_input_is_usage_error
def prepare_task(values: dict[str, Any]) -> PreparedTask:
    """Arguments -> preset -> checks -> seed -> data -> model -> teacher -> tokenisation -> `PseudoKDTrainer`."""
    task = get_task(values["task_name"])
    if values.get("preset") == "paper":
        values = apply_preset(values, task)
    model_args, data_args, training_args = build_arguments(values)
    _check_stages(model_args, training_args)
    if data_args.heldout_fraction is not None and training_args.do_predict:
        raise ValueError(
            "--heldout_fraction trains on part of the training set, to select settings: drop --do_predict, and "
            "predict with the chosen settings in a run without --heldout_fraction."
        )
    for flag in ("model_name_or_path", "config_name", "tokenizer_name", "teacher_name_or_path"):
        _check_local_path(f"--{flag}", getattr(model_args, flag))
    last_checkpoint = _last_checkpoint(training_args, data_args.overwrite_output_dir)
    set_seed(training_args.seed)

    raw_datasets = load_glue_task(task.name, data_args.data_dir)
    heldout = data_args.heldout_fraction is not None  # selection: evaluate on a part of train, never on dev
    eval_splits = (HELDOUT_SPLIT,) if heldout else task.validation_splits
    needed = {
        "train": training_args.do_train or heldout,
        **dict.fromkeys(() if heldout else task.validation_splits, training_args.do_eval),
        **dict.fromkeys(task.test_splits, training_args.do_predict),
    }
    missing = [split for split, wanted in needed.items() if wanted and split not in raw_datasets]
    if missing:
        raise ValueError(
            f"{task.name} has no {', '.join(missing)} split ({', '.join(task.files[split] for split in missing)} in "
            f"{task.folder}/): add the files, or drop the --do_train/--do_eval/--do_predict stage that needs them."
        )
    if heldout:
        raw_datasets["train"], raw_datasets[HELDOUT_SPLIT] = heldout_split(
            raw_datasets["train"], data_args.heldout_fraction, data_args.heldout_seed, task.is_regression
        )

    hub_kwargs = {
        "cache_dir": model_args.cache_dir,
        "token": model_args.token,
        "trust_remote_code": model_args.trust_remote_code,
    }
    config = AutoConfig.from_pretrained(
        model_args.config_name or model_args.model_name_or_path,
        num_labels=task.num_labels,
        finetuning_task=task.name,
        revision=model_args.model_revision,
        **hub_kwargs,
    )
    if not task.is_regression:  # name the labels, so predictions, checkpoints and teacher checks read them
        config.id2label = dict(enumerate(task.label_names))
        config.label2id = {name: label_id for label_id, name in config.id2label.items()}
    tokenizer = AutoTokenizer.from_pretrained(
        model_args.tokenizer_name or model_args.model_name_or_path, revision=model_args.model_revision, **hub_kwargs
    )
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            model_args.model_name_or_path,
            config=config,
            revision=model_args.model_revision,
            ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
            **hub_kwargs,
        )
    except RuntimeError as error:
        if "ignore_mismatched_sizes" not in str(error):
            raise
        raise ValueError(
            f"--model_name_or_path {model_args.model_name_or_path} has weights shaped for other labels than "
            f"{task.name}'s {task.num_labels}: pass --ignore_mismatched_sizes to start a new classifier head."
        ) from None
    max_seq_length = data_args.max_seq_length
    if max_seq_length > tokenizer.model_max_length:
        logger.warning(
            f"--max_seq_length {max_seq_length} exceeds the tokenizer's maximum {tokenizer.model_max_length}; "
            f"using {tokenizer.model_max_length}."
        )
        max_seq_length = tokenizer.model_max_length

    train_dataset = None
    if training_args.do_train:
        train_dataset = _first(raw_datasets["train"], data_args.max_train_samples)
    online_teacher = None
    if model_args.teacher_name_or_path is not None and train_dataset is not None:  # only KD training uses it
        teacher, teacher_tokenizer = _load_teacher(model_args, hub_kwargs)
        label_order = _teacher_label_order(model_args, teacher, model)
        if model_args.kd_online:
            _check_same_vocabulary(model_args, teacher_tokenizer, tokenizer)
            online_teacher = teacher  # the trainer maps its logits onto the student's labels itself
        else:
            with training_args.main_process_first(desc="teacher logits"):
                train_dataset = add_teacher_logits(
                    train_dataset,
                    teacher,
                    teacher_tokenizer,
                    task.text_columns,
                    batch_size=training_args.per_device_eval_batch_size,
                    max_length=max_seq_length,
                    label_order=label_order,
                    device=training_args.device,
                )
            del teacher  # its logits are all KD needs from here on

    def tokenize(dataset: Dataset) -> Dataset:
        def encode(examples: dict[str, list]) -> dict[str, list]:
            return tokenizer(
                *(examples[column] for column in task.text_columns),
                padding="max_length" if data_args.pad_to_max_length else False,
                max_length=max_seq_length,
                truncation=True,
            )

        with training_args.main_process_first(desc="dataset map pre-processing"):
            return dataset.map(
                encode,
                batched=True,
                num_proc=data_args.preprocessing_num_workers,
                load_from_cache_file=not data_args.overwrite_cache,
                desc="Running tokenizer on dataset",
            )

    if train_dataset is not None:
        train_dataset = tokenize(train_dataset)
    eval_datasets = {}
    if training_args.do_eval:
        eval_datasets = {
            split: tokenize(_first(raw_datasets[split], data_args.max_eval_samples)) for split in eval_splits
        }
    predict_datasets = {}
    if training_args.do_predict:
        test_splits = {task.submission_keys[split]: raw_datasets[split] for split in task.test_splits}
        if task.name == AX_PREDICTED_BY:
            test_splits.update(_ax_test_split(data_args.data_dir))
        predict_datasets = {
            key: tokenize(_first(dataset, data_args.max_predict_samples)).remove_columns("label")  # -1 placeholders
            for key, dataset in test_splits.items()
        }

    if data_args.pad_to_max_length:
        data_collator = default_data_collator
    else:
        pad_to_multiple_of = 8 if training_args.fp16 or training_args.bf16 else None
        data_collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    trainer = PseudoKDTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_datasets.get(eval_splits[0]),  # for --eval_strategy during training
        processing_class=tokenizer,
        data_collator=data_collator,
        compute_metrics=glue_compute_metrics_fn(task.name),
        teacher_model=online_teacher,
    )
    return PreparedTask(training_args, trainer, train_dataset, eval_datasets, predict_datasets, last_checkpoint)


def run_task(run: PreparedTask) -> dict[str, float]:
    """Train (resuming an interrupted run), evaluate on the dev set(s), write leaderboard files; return the metrics.

    `all_results.json` is written last, so its presence marks a finished run (`--task_name all` skips those).
    """
    trainer, training_args = run.trainer, run.training_args
    results: dict[str, float] = {}
    if training_args.do_train:
        checkpoint = training_args.resume_from_checkpoint or run.last_checkpoint
        metrics = trainer.train(resume_from_checkpoint=checkpoint).metrics
        metrics["train_samples"] = len(run.train_dataset)
        trainer.save_model()  # the tokenizer is saved with it
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics, combined=False)
        trainer.save_state()
        results.update(metrics)

    if training_args.do_eval:
        logger.info("*** Evaluate ***")
        metrics = {}
        for split, dataset in run.eval_datasets.items():
            split_metrics = {**trainer.evaluate(eval_dataset=dataset), "eval_samples": len(dataset)}
            suffix = EVAL_SUFFIXES.get(split, "")
            metrics.update({key + suffix: value for key, value in split_metrics.items()})
        if HELDOUT_SPLIT in run.eval_datasets:
            metrics["eval_split"] = HELDOUT_SPLIT  # the eval_ metrics are on held-out training data, not dev
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics, combined=False)
        results.update(metrics)

    if training_args.do_predict:
        logger.info("*** Predict ***")
        for key, dataset in run.predict_datasets.items():
            _write_predictions(trainer, key, dataset)

    trainer.save_metrics("all", results, combined=False)
    return results


def run_suite(
    values: dict[str, Any], data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments
) -> None:
    """Run every GLUE task with one method and seed into `output_dir/<task>/`, then package and tabulate.

    Resumable: a task whose folder holds `all_results.json` is skipped; an interrupted one resumes from its last
    checkpoint. With `--data_dir`, tasks whose folder is absent are skipped, and the submission fills them.
    """
    root = Path(training_args.output_dir)
    for task in SUITE_TASKS:
        task_dir = root / task.name
        if (task_dir / ALL_RESULTS).is_file():
            logger.info(f"Suite: {task.name} already finished in {task_dir}; skipped.")
            continue
        if data_args.data_dir is not None and not (Path(data_args.data_dir) / task.folder).is_dir():
            logger.warning(f"Suite: {task.name} skipped: {Path(data_args.data_dir) / task.folder} not found.")
            continue
        logger.info(f"Suite: running {task.name} into {task_dir}.")
        run_task(prepare_task({**values, "task_name": task.name, "output_dir": str(task_dir)}))

    run_dirs = [root / task.name for task in SUITE_TASKS if (root / task.name).is_dir()]
    if training_args.do_predict and run_dirs:
        try:
            summary = package_submission(run_dirs, root / SUITE_SUBMISSION, fill_missing=True, overwrite=True)
        except ValueError as error:
            logger.warning(f"Suite: no submission written: {error}")
        else:
            for key, description in summary.filled.items():
                logger.warning(f"Suite: {SUBMISSION_FILES[key].file_name} filled with {description}: no run wrote it.")
            logger.info(f"Suite: submission written to {summary.zip_path}.")
    table = root / RESULTS_TABLE
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(results_table(root, values), encoding="utf-8")
    logger.info(f"Suite: dev results in {table}.")


def results_table(root: Path, values: dict[str, Any]) -> str:
    """A markdown table of every suite task's dev metrics (x 100, as the paper reports them) from its run folder."""
    settings = ", ".join(f"{name}={values[name]}" for name in sorted(values) if name not in ("output_dir", "task_name"))
    lines = [
        "# GLUE dev results",
        "",
        f"Settings: {settings or 'defaults'}.",
        "",
        "| task | metric | dev |",
        "|---|---|---|",
    ]
    for task in SUITE_TASKS:
        results_file = root / task.name / ALL_RESULTS
        results = json.loads(results_file.read_text(encoding="utf-8")) if results_file.is_file() else {}
        names = sorted(METRIC_KEYS[task.metric], key=lambda name: name != task.primary_metric)  # the paper's first
        names += ["combined_score"] if len(names) > 1 else []
        rows = [
            f"| {task.name} | {name}{suffix} | {100 * results[f'eval_{name}{suffix}']:.2f} |"
            for suffix in ("", *EVAL_SUFFIXES.values())
            for name in names
            if f"eval_{name}{suffix}" in results
        ]
        lines += rows or [f"| {task.name} | {task.primary_metric} | not run |"]
    return "\n".join(lines) + "\n"


# ---- helpers of prepare_task / run_task ----------------------------------------------------------------------------


def _check_stages(model_args: ModelArguments, training_args: PseudoKDTrainingArguments) -> None:
    """Fail before loading anything when the requested work cannot run."""
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise ValueError("Nothing to do: pass --do_train, --do_eval and/or --do_predict.")
    kd = training_args.regularization == "kd"
    if kd and training_args.do_train and model_args.teacher_name_or_path is None:
        raise ValueError("--regularization kd needs a teacher: pass --teacher_name_or_path (a model fine-tuned on it).")
    if not kd and model_args.teacher_name_or_path is not None:
        raise ValueError(
            f"--teacher_name_or_path is used only by --regularization kd (got {training_args.regularization}): "
            "drop it or pass --regularization kd."
        )
    if model_args.kd_online and model_args.teacher_name_or_path is None:
        raise ValueError("--kd_online runs a teacher at every step: pass --teacher_name_or_path too.")


def _last_checkpoint(training_args: PseudoKDTrainingArguments, overwrite_output_dir: bool) -> str | None:
    """run_glue's rule: resume from the last checkpoint in output_dir; refuse to train over other files."""
    output_dir = Path(training_args.output_dir)
    if not training_args.do_train or overwrite_output_dir or not output_dir.is_dir():
        return None
    checkpoint = get_last_checkpoint(str(output_dir))
    if checkpoint is None and any(output_dir.iterdir()):
        raise FileExistsError(
            f"--output_dir {output_dir} is not empty and holds no checkpoint to resume: "
            "pass --overwrite_output_dir to train over it, or choose another --output_dir."
        )
    if checkpoint is not None and training_args.resume_from_checkpoint is None:
        logger.info(f"Resuming from {checkpoint}; pass --overwrite_output_dir to train from scratch instead.")
    return checkpoint


def _first(dataset: Dataset, max_samples: int | None) -> Dataset:
    return dataset if max_samples is None else dataset.select(range(min(max_samples, len(dataset))))


def _check_local_path(flag: str, name: str | None) -> None:
    """A name written as a path must exist (the Hub's own message would complain about the repo id instead)."""
    if name is not None and name.startswith(("/", ".", "~")) and not Path(name).expanduser().exists():
        raise FileNotFoundError(f"{flag} {name}: no such folder; pass a saved model's folder or a Hub model id.")


def _load_teacher(
    model_args: ModelArguments, hub_kwargs: dict[str, Any]
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    name = model_args.teacher_name_or_path
    teacher = AutoModelForSequenceClassification.from_pretrained(name, **hub_kwargs)
    return teacher, AutoTokenizer.from_pretrained(name, **hub_kwargs)


def _teacher_label_order(
    model_args: ModelArguments, teacher: PreTrainedModel, student: PreTrainedModel
) -> list[int] | None:
    """Check the teacher predicts the task's labels (the student's config names them); map its columns onto them."""
    try:
        return teacher_label_order(teacher.config, student.config)
    except ValueError as error:
        raise ValueError(f"--teacher_name_or_path {model_args.teacher_name_or_path}: {error}") from None


def _check_same_vocabulary(
    model_args: ModelArguments, teacher_tokenizer: PreTrainedTokenizerBase, tokenizer: PreTrainedTokenizerBase
) -> None:
    """--kd_online feeds the student's token ids to the teacher: they must mean the same tokens."""
    if teacher_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ValueError(
            f"--kd_online needs the student's tokenizer, but teacher {model_args.teacher_name_or_path} has another "
            "vocabulary: drop --kd_online to use cached logits (computed with the teacher's own tokenizer)."
        )


def _ax_test_split(data_dir: str | None) -> dict[str, Dataset]:
    """AX (the diagnostic set) is predicted by the MNLI model; with --data_dir it needs the diagnostic/ folder."""
    ax = TASKS["ax"]
    if data_dir is not None and not (Path(data_dir) / ax.folder).is_dir():
        logger.warning(f"{Path(data_dir) / ax.folder} not found: AX.tsv skipped (the leaderboard needs it).")
        return {}
    return {ax.submission_keys[split]: load_glue_task(ax.name, data_dir)[split] for split in ax.test_splits}


def _write_predictions(trainer: PseudoKDTrainer, key: str, dataset: Dataset) -> None:
    """Predict one test split and write its leaderboard file into output_dir (complete splits only)."""
    entry = SUBMISSION_FILES[key]
    output = trainer.predict(dataset, metric_key_prefix="predict")
    logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
    predictions = logits[:, 0] if TASKS[entry.task].is_regression else logits.argmax(axis=-1)
    if not trainer.is_world_process_zero():
        return
    if len(predictions) != entry.num_rows:
        logger.warning(
            f"{entry.file_name} not written: --max_predict_samples kept {len(predictions)} of the {entry.num_rows} "
            "test examples, and the leaderboard accepts only complete files."
        )
        return
    logger.info(f"Wrote {write_leaderboard_file(key, predictions, trainer.args.output_dir)}.")


# ---- pseudo-kd-glue-submit -----------------------------------------------------------------------------------------


def submit_main(argv: Sequence[str] | None = None) -> int:
    """`pseudo-kd-glue-submit`: gather runs' leaderboard files into one validated GLUE submission zip."""
    parser = argparse.ArgumentParser(
        prog="pseudo-kd-glue-submit",
        description="Collect the leaderboard files (CoLA.tsv, ..., AX.tsv) that pseudo-kd-glue --do_predict wrote "
        "into run folders, check them, and write the eleven files plus submission.zip for gluebenchmark.com.",
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="Run folders, searched recursively.")
    parser.add_argument(
        "--output_dir", required=True, help="Where to write the submission, e.g. glue_submissions/NAME."
    )
    parser.add_argument(
        "--fill_missing",
        action="store_true",
        help="Fill files no run wrote with the majority training class (STS-B: mean score); listed in FILLED.txt.",
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace a submission already in --output_dir.")
    args = parser.parse_args(argv)
    try:
        summary = package_submission(
            args.run_dirs, args.output_dir, fill_missing=args.fill_missing, overwrite=args.overwrite
        )
    except (ValueError, OSError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    rows = [("file", "source", "rows")]
    for key, entry in SUBMISSION_FILES.items():
        source = str(summary.sources[key]) if key in summary.sources else f"filled: {summary.filled[key]}"
        rows.append((entry.file_name, source, str(entry.num_rows)))
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    for name, source, count in rows:
        print(f"{name:<{widths[0]}}  {source:<{widths[1]}}  {count:>5}")
    problems = validate_submission(summary.zip_path)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"Wrote {summary.zip_path} ({len(summary.sources)} files from runs, {len(summary.filled)} filled).")
    return 0
