"""The runner's arguments, as in run_glue.py: `ModelArguments` and `DataTrainingArguments` (the method's settings are
`PseudoKDTrainingArguments`, in `config.py`).

`HfArgumentParser` turns the three dataclasses into flags; `pseudo_kd_hf.parsing` reads them from argv or a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import PseudoKDTrainingArguments
from .errors import UsageError
from .glue.tasks import AX_PREDICTED_BY, TASKS, get_task

ALL_TASKS = "all"  # --task_name all: the suite
PRESETS = ("paper",)
# How --preset paper reads Appendix C's beta column (docs/runner.md): as the temperature tau = beta/alpha
# (sections 4.1 and 4.3 search and discuss the same {1.5, 2.5, 4} pool as "beta/alpha", the temperature), or as is.
PAPER_BETA_READINGS = ("temperature", "literal")
SUITE_TASKS = tuple(task for task in TASKS.values() if "train" in task.files)  # AX comes with the MNLI run


@dataclass
class ModelArguments:
    """Which student (and teacher) to fine-tune, as in run_glue."""

    _argument_group_name = "Model (run_glue.py's flags)"

    model_name_or_path: str = field(
        default="distilroberta-base",
        metadata={"help": "Student model: a Hub id or a local folder (the paper fine-tunes DistilRoBERTa)."},
    )
    config_name: str | None = field(default=None, metadata={"help": "Config name or path, if not the model's."})
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer name or path, if not the model's."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to store models downloaded from the Hub."})
    use_fast_tokenizer: bool = field(
        default=True,
        metadata={"help": "run_glue.py's flag, accepted and ignored: transformers 5 always uses a fast tokenizer."},
    )
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
    teacher_logits: str | None = field(
        default=None,
        metadata={
            "help": "KD from a file of teacher logits written by pseudo-kd-glue-teacher-logits, instead of "
            "--teacher_name_or_path: no teacher model is loaded. A file made for another task, data file, row count "
            "or label order is refused."
        },
    )


@dataclass
class DataTrainingArguments:
    """Which GLUE task (or your own files), where its data is, and how to tokenise it, as in run_glue."""

    _argument_group_name = "Data: a GLUE task or your own files"

    task_name: str | None = field(
        default=None,
        metadata={"help": f"GLUE task: {', '.join(task.name for task in SUITE_TASKS)}, or {ALL_TASKS} for the suite."},
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Your own data as any dataset datasets.load_dataset opens (a Hub id, a local folder of CSV/JSON "
            "files, a local dataset path) instead of --task_name: splits train, validation, test; columns and labels "
            "as with --train_file."
        },
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "The configuration of --dataset_name to load (its subset), if it has several."}
    )
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "Your own training data instead of --task_name: a CSV or JSON lines file with a 'label' column "
            "(class names or ids; floats for regression) and sentence1/sentence2 or sentence (else the first one or "
            "two other columns)."
        },
    )
    validation_file: str | None = field(
        default=None, metadata={"help": "Your own dev data (--do_eval), same format and columns as --train_file."}
    )
    test_file: str | None = field(
        default=None, metadata={"help": "Your own test data (--do_predict), same format; 'label' may be absent."}
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
        metadata={"help": "Keep the first N test examples (predict_results_<task>.txt only, no leaderboard file)."},
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
    paper_beta_reading: str = field(
        default="temperature",
        metadata={
            "help": "How --preset paper reads Appendix C's beta column: temperature (tau = beta / alpha, so "
            "beta = alpha * column: the reading sections 4.1 and 4.3 support) or literal (beta = column).",
            "choices": list(PAPER_BETA_READINGS),
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Train into a non-empty --output_dir from scratch instead of refusing (or resuming)."},
    )
    keep_checkpoints: bool = field(
        default=False,
        metadata={
            "help": "Keep the checkpoint-* folders (weights, optimizer and scheduler state) of a finished run; by "
            "default they are removed once its final model and results are saved."
        },
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
        own_files = [f"--{name}" for name in DATA_FILE_FIELDS if getattr(self, name) is not None]
        if self.dataset_config_name is not None and self.dataset_name is None:
            raise ValueError(f"--dataset_config_name {self.dataset_config_name} needs --dataset_name.")
        if self.dataset_name is not None and own_files:
            raise ValueError(f"--dataset_name {self.dataset_name} and {own_files[0]}: pass a dataset or files.")
        own_files += ["--dataset_name"] if self.dataset_name is not None else []
        if own_files and self.task_name is not None:
            raise ValueError(f"--task_name {self.task_name} and {own_files[0]}: pass a GLUE task or your own files.")
        if not own_files:
            self.task_name = suite_task_name(self.task_name)
        elif self.preset is not None:
            raise ValueError("--preset paper holds the paper's GLUE settings: drop it with --train_file.")
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"--preset {self.preset!r} is unknown: choose one of {', '.join(PRESETS)}.")
        if self.paper_beta_reading not in PAPER_BETA_READINGS:
            raise ValueError(
                f"--paper_beta_reading {self.paper_beta_reading!r} is unknown: choose one of "
                f"{', '.join(PAPER_BETA_READINGS)}."
            )
        for name in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be a positive number of examples, got {value}.")


DATA_FILE_FIELDS = ("train_file", "validation_file", "test_file")
_TASK_CHOICES = f"one of {', '.join(task.name for task in SUITE_TASKS)}, or {ALL_TASKS} for every task"
_AX_NOTE = f"ax (the diagnostic set) is not trained: the {AX_PREDICTED_BY} model predicts it"


def suite_task_name(name: str | None) -> str:
    """The canonical name of a GLUE task with training data (`ALL_TASKS` for the suite); `UsageError` otherwise."""
    if name is None:
        raise UsageError(f"--task_name is required: {_TASK_CHOICES}; or your own data with --train_file.")
    if name.lower() == ALL_TASKS:
        return ALL_TASKS
    try:
        task = get_task(name)
    except ValueError:
        raise UsageError(f"--task_name {name!r} is not a GLUE task: {_TASK_CHOICES} ({_AX_NOTE}).") from None
    if task not in SUITE_TASKS:
        raise UsageError(
            f"--task_name {task.name} has no training data: {_AX_NOTE}, so its leaderboard file is written by "
            f"--task_name {AX_PREDICTED_BY} --do_predict."
        )
    return task.name


ARGUMENT_CLASSES = (ModelArguments, DataTrainingArguments, PseudoKDTrainingArguments)
