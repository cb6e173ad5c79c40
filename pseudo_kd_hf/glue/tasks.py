"""The one registry of GLUE facts: columns, label orders, file layouts, metrics, leaderboard files, sizes, presets.

Everything else in the package (data loading, metrics, submissions, the CLI) reads these tables; no other module
spells a GLUE fact itself. Sources: the Hub dataset ``nyu-mll/glue``, the original ``glue_data/`` download layout,
the GLUE leaderboard's submission format, and Appendix C of the Pseudo-KD paper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HUB_DATASET = "nyu-mll/glue"


@dataclass(frozen=True)
class FileLayout:
    """How one original ``glue_data`` TSV file is laid out (raw TSV: split on tab, no quoting).

    Field positions are 0-based; negative positions count from the end of the row.
    """

    has_header: bool
    text_fields: tuple[int, ...]
    label_field: int | None = None  # None: an unlabelled (test) file
    index_field: int | None = None  # None: idx is the row's 0-based position among data rows
    num_fields: int | None = None  # None: the header's field count (or any count >= the fields used)


@dataclass(frozen=True)
class PaperPreset:
    """Hyper-parameters of the paper's Appendix C (DistilRoBERTa student, AdamW)."""

    alpha: float
    beta: float
    per_device_train_batch_size: int
    learning_rate: float
    note: str = ""  # set where the paper lists no value and we chose one: says which and why


class LabelledTask:
    """What a task's label names say (a GLUE task's or your own data's): no names means a regression task."""

    label_names: tuple[str, ...]

    @property
    def is_regression(self) -> bool:
        return not self.label_names

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.label_names)


@dataclass(frozen=True)
class GlueTask(LabelledTask):
    """One GLUE task as the Hub names it, and where its original files live."""

    name: str  # Hub config name, e.g. "mnli"
    folder: str  # folder under glue_data, e.g. "MNLI"
    text_columns: tuple[str, ...]  # Hub column names, in model-input order
    label_names: tuple[str, ...]  # Hub ClassLabel names in Hub order; () for the regression task
    file_labels: tuple[str, ...]  # how each Hub label is spelled in the original files, same order
    metric: str  # one of METRIC_KEYS
    primary_metric: str  # the key the paper's Table 3 reports for the task
    files: dict[str, str]  # Hub split name -> file path relative to the task folder
    labeled_layout: FileLayout | dict[str, FileLayout]
    test_layout: FileLayout
    split_sizes: dict[str, int]  # official row counts per Hub split
    submission_keys: dict[str, str] = field(default_factory=dict)  # Hub test split -> key in SUBMISSION_FILES
    preset: PaperPreset | None = None  # None: the task is not trained on its own (AX)

    @property
    def validation_splits(self) -> tuple[str, ...]:
        return tuple(split for split in self.files if split.startswith("validation"))

    @property
    def test_splits(self) -> tuple[str, ...]:
        return tuple(split for split in self.files if split.startswith("test"))

    def layout_for(self, split: str) -> FileLayout:
        if split.startswith("test"):
            return self.test_layout
        if isinstance(self.labeled_layout, dict):
            return self.labeled_layout[split]
        return self.labeled_layout


# Metric family -> the keys evaluate's `glue` metric reports for it (combined_score is added where there are two).
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "matthews": ("matthews_correlation",),
    "accuracy_f1": ("accuracy", "f1"),
    "pearson_spearman": ("pearson", "spearmanr"),
    "accuracy": ("accuracy",),
}

_STANDARD_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
_NLI_LABELS = ("entailment", "neutral", "contradiction")
_RTE_LABELS = ("entailment", "not_entailment")
_DISTILROBERTA_SMALL_TASK = "the paper lists no {task} setting; we use RTE's (alpha 0.1, beta 2, batch 16, lr 2e-5), "

TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask(
            name="cola",
            folder="CoLA",
            text_columns=("sentence",),
            label_names=("unacceptable", "acceptable"),
            file_labels=("0", "1"),
            metric="matthews",
            primary_metric="matthews_correlation",
            files=dict(_STANDARD_FILES),
            labeled_layout=FileLayout(has_header=False, text_fields=(3,), label_field=1, num_fields=4),
            test_layout=FileLayout(has_header=True, text_fields=(1,), index_field=0),
            split_sizes={"train": 8551, "validation": 1043, "test": 1063},
            submission_keys={"test": "cola"},
            preset=PaperPreset(alpha=0.1, beta=2.0, per_device_train_batch_size=32, learning_rate=1e-5),
        ),
        GlueTask(
            name="sst2",
            folder="SST-2",
            text_columns=("sentence",),
            label_names=("negative", "positive"),
            file_labels=("0", "1"),
            metric="accuracy",
            primary_metric="accuracy",
            files=dict(_STANDARD_FILES),
            labeled_layout=FileLayout(has_header=True, text_fields=(0,), label_field=1),
            test_layout=FileLayout(has_header=True, text_fields=(1,), index_field=0),
            split_sizes={"train": 67349, "validation": 872, "test": 1821},
            submission_keys={"test": "sst2"},
            preset=PaperPreset(alpha=0.1, beta=5.0, per_device_train_batch_size=64, learning_rate=2e-5),
        ),
        GlueTask(
            name="mrpc",
            folder="MRPC",
            text_columns=("sentence1", "sentence2"),
            label_names=("not_equivalent", "equivalent"),
            file_labels=("0", "1"),
            metric="accuracy_f1",
            primary_metric="f1",
            files=dict(_STANDARD_FILES),
            labeled_layout=FileLayout(has_header=True, text_fields=(3, 4), label_field=0),
            test_layout=FileLayout(has_header=True, text_fields=(3, 4), index_field=0),
            split_sizes={"train": 3668, "validation": 408, "test": 1725},
            submission_keys={"test": "mrpc"},
            preset=PaperPreset(alpha=0.1, beta=2.0, per_device_train_batch_size=8, learning_rate=2e-5),
        ),
        GlueTask(
            name="qqp",
            folder="QQP",
            text_columns=("question1", "question2"),
            label_names=("not_duplicate", "duplicate"),
            file_labels=("0", "1"),
            metric="accuracy_f1",
            primary_metric="f1",
            files=dict(_STANDARD_FILES),
            labeled_layout=FileLayout(has_header=True, text_fields=(3, 4), label_field=5),
            test_layout=FileLayout(has_header=True, text_fields=(1, 2), index_field=0),
            split_sizes={"train": 363846, "validation": 40430, "test": 390965},
            submission_keys={"test": "qqp"},
            preset=PaperPreset(alpha=0.1, beta=4.0, per_device_train_batch_size=32, learning_rate=2e-5),
        ),
        GlueTask(
            name="stsb",
            folder="STS-B",
            text_columns=("sentence1", "sentence2"),
            label_names=(),
            file_labels=(),
            metric="pearson_spearman",
            primary_metric="pearson",
            files=dict(_STANDARD_FILES),
            labeled_layout=FileLayout(has_header=True, text_fields=(7, 8), label_field=-1, index_field=0),
            test_layout=FileLayout(has_header=True, text_fields=(7, 8), index_field=0),
            split_sizes={"train": 5749, "validation": 1500, "test": 1379},
            submission_keys={"test": "stsb"},
            preset=PaperPreset(
                alpha=0.1,
                beta=2.0,
                per_device_train_batch_size=16,
                learning_rate=2e-5,
                note=_DISTILROBERTA_SMALL_TASK.format(task="STS-B")
                + "the listed task closest in size; STS-B is regression, so only KD uses alpha and beta is unused",
            ),
        ),
        GlueTask(
            name="mnli",
            folder="MNLI",
            text_columns=("premise", "hypothesis"),
            label_names=_NLI_LABELS,
            file_labels=_NLI_LABELS,
            metric="accuracy",
            primary_metric="accuracy",
            files={
                "train": "train.tsv",
                "validation_matched": "dev_matched.tsv",
                "validation_mismatched": "dev_mismatched.tsv",
                "test_matched": "test_matched.tsv",
                "test_mismatched": "test_mismatched.tsv",
            },
            labeled_layout=FileLayout(has_header=True, text_fields=(8, 9), label_field=-1, index_field=0),
            test_layout=FileLayout(has_header=True, text_fields=(8, 9), index_field=0),
            split_sizes={
                "train": 392702,
                "validation_matched": 9815,
                "validation_mismatched": 9832,
                "test_matched": 9796,
                "test_mismatched": 9847,
            },
            submission_keys={"test_matched": "mnli_matched", "test_mismatched": "mnli_mismatched"},
            preset=PaperPreset(alpha=0.1, beta=2.0, per_device_train_batch_size=32, learning_rate=2e-5),
        ),
        GlueTask(
            name="qnli",
            folder="QNLI",
            text_columns=("question", "sentence"),
            label_names=_RTE_LABELS,
            file_labels=_RTE_LABELS,
            metric="accuracy",
            primary_metric="accuracy",
            files=dict(_STANDARD_FILES),
            labeled_layout=FileLayout(has_header=True, text_fields=(1, 2), label_field=3, index_field=0),
            test_layout=FileLayout(has_header=True, text_fields=(1, 2), index_field=0),
            split_sizes={"train": 104743, "validation": 5463, "test": 5463},
            submission_keys={"test": "qnli"},
            preset=PaperPreset(alpha=0.1, beta=4.0, per_device_train_batch_size=64, learning_rate=2e-5),
        ),
        GlueTask(
            name="rte",
            folder="RTE",
            text_columns=("sentence1", "sentence2"),
            label_names=_RTE_LABELS,
            file_labels=_RTE_LABELS,
            metric="accuracy",
            primary_metric="accuracy",
            files=dict(_STANDARD_FILES),
            labeled_layout=FileLayout(has_header=True, text_fields=(1, 2), label_field=3, index_field=0),
            test_layout=FileLayout(has_header=True, text_fields=(1, 2), index_field=0),
            split_sizes={"train": 2490, "validation": 277, "test": 3000},
            submission_keys={"test": "rte"},
            preset=PaperPreset(alpha=0.1, beta=2.0, per_device_train_batch_size=16, learning_rate=2e-5),
        ),
        GlueTask(
            name="wnli",
            folder="WNLI",
            text_columns=("sentence1", "sentence2"),
            label_names=("not_entailment", "entailment"),
            file_labels=("0", "1"),
            metric="accuracy",
            primary_metric="accuracy",
            files=dict(_STANDARD_FILES),
            labeled_layout=FileLayout(has_header=True, text_fields=(1, 2), label_field=3, index_field=0),
            test_layout=FileLayout(has_header=True, text_fields=(1, 2), index_field=0),
            split_sizes={"train": 635, "validation": 71, "test": 146},
            submission_keys={"test": "wnli"},
            preset=PaperPreset(
                alpha=0.1,
                beta=2.0,
                per_device_train_batch_size=16,
                learning_rate=2e-5,
                note=_DISTILROBERTA_SMALL_TASK.format(task="WNLI")
                + "the smallest listed task and, like WNLI, a two-sentence inference task",
            ),
        ),
        GlueTask(
            name="ax",
            folder="diagnostic",
            text_columns=("premise", "hypothesis"),
            label_names=_NLI_LABELS,
            file_labels=_NLI_LABELS,
            metric="accuracy",
            primary_metric="accuracy",
            files={"test": "diagnostic.tsv"},
            labeled_layout=FileLayout(has_header=True, text_fields=(1, 2), index_field=0),
            test_layout=FileLayout(has_header=True, text_fields=(1, 2), index_field=0),
            split_sizes={"test": 1104},
            submission_keys={"test": "ax"},
        ),
    )
}

# The task AX is predicted with: the leaderboard scores the MNLI model on the diagnostic set.
AX_PREDICTED_BY = "mnli"

# Training-set label counts in Hub label order. Their majority class is the constant prediction written for a
# leaderboard file no run produced (`write_submission(fill_missing=True)`); AX takes MNLI's.
# CoLA, SST-2, MRPC, RTE: counted in the original train.tsv files (../shared/glue_data; tests recount them).
# MNLI: published counts of its 392,702 training pairs (the same pairs XNLI's English train split ships).
# QQP, QNLI, WNLI: the Hub train split's label statistics as recalled, not recounted here (files absent); QQP's
# majority agrees with the Quora release (255,045 of 404,351 pairs not duplicate). QNLI, WNLI and MNLI are near
# balanced, so their fill class is close to arbitrary; it is a placeholder, not a model.
TRAIN_LABEL_COUNTS: dict[str, tuple[int, ...]] = {
    "cola": (2528, 6023),
    "sst2": (29780, 37569),
    "mrpc": (1194, 2474),
    "qqp": (229468, 134378),
    "mnli": (130899, 130900, 130903),
    "qnli": (52366, 52377),
    "rte": (1249, 1241),
    "wnli": (323, 312),
}
# STS-B's fill value: the mean of the 5749 training scores in the original STS-B/train.tsv (2.70100 to 5 places).
STSB_TRAIN_MEAN = 2.701


@dataclass(frozen=True)
class SubmissionFile:
    """One file of a GLUE leaderboard submission zip."""

    key: str  # key in the `predictions` mapping of `write_submission`
    task: str  # GlueTask name
    split: str  # Hub test split it predicts
    file_name: str  # name inside the zip
    label_strings: tuple[str, ...]  # how each Hub label id is written; () for STS-B floats
    num_rows: int  # official test size
    fill_prediction: int | float  # written on every row when no run predicted the file: majority class id / mean


def _submission_file(key: str, task_name: str, split: str, file_name: str, numeric_labels: bool) -> SubmissionFile:
    task = TASKS[task_name]
    if task.is_regression:
        return SubmissionFile(key, task_name, split, file_name, (), task.split_sizes[split], STSB_TRAIN_MEAN)
    if numeric_labels:
        label_strings = tuple(str(label_id) for label_id in range(task.num_labels))
    else:
        label_strings = task.label_names
    counts = TRAIN_LABEL_COUNTS[task_name if "train" in task.split_sizes else AX_PREDICTED_BY]  # AX has no train
    majority = counts.index(max(counts))
    return SubmissionFile(key, task_name, split, file_name, label_strings, task.split_sizes[split], majority)


# Leaderboard files, in the order the GLUE site lists them. Labels: 0/1 where the leaderboard wants digits,
# label names for the NLI tasks. Digits follow the Hub's label order (e.g. WNLI 1 = entailment).
SUBMISSION_FILES: dict[str, SubmissionFile] = {
    entry.key: entry
    for entry in (
        _submission_file("cola", "cola", "test", "CoLA.tsv", numeric_labels=True),
        _submission_file("sst2", "sst2", "test", "SST-2.tsv", numeric_labels=True),
        _submission_file("mrpc", "mrpc", "test", "MRPC.tsv", numeric_labels=True),
        _submission_file("stsb", "stsb", "test", "STS-B.tsv", numeric_labels=True),
        _submission_file("qqp", "qqp", "test", "QQP.tsv", numeric_labels=True),
        _submission_file("mnli_matched", "mnli", "test_matched", "MNLI-m.tsv", numeric_labels=False),
        _submission_file("mnli_mismatched", "mnli", "test_mismatched", "MNLI-mm.tsv", numeric_labels=False),
        _submission_file("qnli", "qnli", "test", "QNLI.tsv", numeric_labels=False),
        _submission_file("rte", "rte", "test", "RTE.tsv", numeric_labels=False),
        _submission_file("wnli", "wnli", "test", "WNLI.tsv", numeric_labels=True),
        _submission_file("ax", "ax", "test", "AX.tsv", numeric_labels=False),
    )
}

SUBMISSION_HEADER = ("index", "prediction")
STSB_RANGE = (0.0, 5.0)


def get_task(task_name: str) -> GlueTask:
    """Look up a task by its Hub config name (case-insensitive); unknown names raise ``ValueError``."""
    key = task_name.lower().replace("-", "")
    if key not in TASKS:
        raise ValueError(f"Unknown GLUE task {task_name!r}: choose one of {', '.join(TASKS)}.")
    return TASKS[key]


def text_columns(task_name: str) -> tuple[str, ...]:
    """A task's text columns in model-input order: ``("sentence",)`` for SST-2, ``("sentence1", "sentence2")`` for RTE.

    Tokenise with ``tokenizer(*(batch[column] for column in text_columns(name)), truncation=True)`` to cover single
    sentences and sentence pairs alike.
    """
    return get_task(task_name).text_columns
