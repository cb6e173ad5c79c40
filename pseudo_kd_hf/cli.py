"""`pseudo-kd-glue`: fine-tune, evaluate and predict a GLUE task with `PseudoKDTrainer`.

Modelled on Hugging Face's `examples/pytorch/text-classification/run_glue.py`: the same flags with the same meaning
(`arguments.py`), and a `main()` that reads top to bottom: read the arguments, load the data and the student, attach
the teacher's logits, tokenise, build the trainer, then train, evaluate and predict (`run_task`). On top: offline
`--data_dir`, `--preset paper`, KD teachers with cached logits, leaderboard files with the official row counts, and
`--task_name all` for the whole benchmark (`suite.py`); one run per output folder, resuming from the newest complete
checkpoint, finished runs left alone (`run_folder.py`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import transformers
from datasets import Dataset, DatasetDict
from huggingface_hub import constants as hub_constants
from huggingface_hub import is_offline_mode
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    default_data_collator,
    set_seed,
)

from .arguments import (
    ALL_TASKS,
    DataTrainingArguments,
    ModelArguments,
    UsageError,
    build_arguments,
    read_arguments,
    task_arguments,
)
from .config import PseudoKDTrainingArguments
from .glue.data import GlueDataError, load_glue_task, missing_splits, required_splits
from .glue.metrics import NonFinitePredictionsError, glue_compute_metrics_fn
from .glue.tasks import AX_PREDICTED_BY, GlueTask, get_task
from .regularizers import get_regularizer, registered_regularizers
from .run_dir import missing_checkpoint_files, remove_checkpoints
from .run_folder import check_output_dir, checkpoint_files, finished_run, last_checkpoint, output_dir_held
from .suite import EVAL_SUFFIXES, ax_test_split, run_suite, write_predictions
from .teacher import add_teacher_logits, load_teacher_model, teacher_label_order
from .trainer import PseudoKDTrainer, TrainingDivergedError

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """`pseudo-kd-glue`: fine-tune, evaluate and predict one GLUE task, or every task with `--task_name all`.

    Returns the exit code: 0; 2 after one `error: ...` line on stderr for bad input (a flag, a data file, a busy
    or unwritable --output_dir); 1 after one for a diverged model (no result file is written then). Anything else
    (a bug, a library failure) raises with its traceback.
    """
    try:
        values = read_arguments(argv)  # only the flags the user set, so --preset fills exactly the others
        suite = str(values.get("task_name", "")).lower() == ALL_TASKS
        # Every value is checked here, before any work starts and before any log line.
        model_args, data_args, training_args = build_arguments(values) if suite else task_arguments(values)
        if not suite:
            check_task(model_args, data_args, training_args)
        with output_dir_held(training_args):
            setup_logging(training_args)
            if suite:
                run_suite(values, training_args, data_args.data_dir, run_one=run_suite_task)
            elif not finished_run(data_args, training_args):
                run_task(prepare_task(model_args, data_args, training_args))
    except (UsageError, GlueDataError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except (TrainingDivergedError, NonFinitePredictionsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def run_suite_task(values: dict[str, Any]) -> None:
    """One task of `--task_name all`: its values checked, its folder held, then run."""
    model_args, data_args, training_args = task_arguments(values)
    check_task(model_args, data_args, training_args)
    with output_dir_held(training_args):
        run_task(prepare_task(model_args, data_args, training_args))


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


@dataclass
class PreparedTask:
    """Everything `run_task` needs, built and checked by `prepare_task` before any training starts."""

    training_args: PseudoKDTrainingArguments
    trainer: PseudoKDTrainer
    train_dataset: Dataset | None
    eval_datasets: dict[str, Dataset]  # Hub validation split -> tokenised examples
    predict_datasets: dict[str, Dataset]  # SUBMISSION_FILES key -> tokenised test examples, labels removed
    last_checkpoint: str | None
    keep_checkpoints: bool = False


def check_task(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments
) -> None:
    """The checks of the user's input that need no model: raise `UsageError` naming the flag, before any work."""
    task = get_task(data_args.task_name)
    _check_stages(model_args, training_args)
    missing = missing_splits(task.name, data_args.data_dir, _needed_splits(task, training_args))
    if missing:
        raise UsageError(
            f"--data_dir {data_args.data_dir}: {task.name} has no {', '.join(missing)} split "
            f"({', '.join(task.files[split] for split in missing)} not in {task.folder}/); add the files, or drop "
            "the --do_train/--do_eval/--do_predict stage that reads them."
        )
    check_output_dir(task, data_args, training_args)
    for flag in ("model_name_or_path", "config_name", "tokenizer_name", "teacher_name_or_path"):
        _check_local_path(f"--{flag}", getattr(model_args, flag), model_args.cache_dir)
    resume = training_args.resume_from_checkpoint
    if training_args.do_train and resume is not None:
        lacking = missing_checkpoint_files(resume, checkpoint_files(task, training_args))
        if lacking:
            raise UsageError(
                f"--resume_from_checkpoint {resume} is not a complete checkpoint (no {', '.join(lacking)}): pass "
                "another one, or drop the flag to resume from the newest complete checkpoint in --output_dir."
            )


def prepare_task(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments
) -> PreparedTask:
    """Seed -> data -> student -> teacher logits -> tokenisation -> `PseudoKDTrainer` (after `check_task`)."""
    task = get_task(data_args.task_name)
    resume_from = last_checkpoint(training_args, data_args.overwrite_output_dir, checkpoint_files(task, training_args))
    set_seed(training_args.seed)

    raw_datasets = load_splits(task, data_args, training_args)
    model, tokenizer = load_student(model_args, task)
    max_seq_length = _max_seq_length(data_args, tokenizer)
    train_dataset, online_teacher = None, None
    if training_args.do_train:
        train_dataset = _first(raw_datasets["train"], data_args.max_train_samples)
        if model_args.teacher_name_or_path is not None:
            train_dataset, online_teacher = attach_teacher(
                train_dataset, model_args, training_args, task, model, tokenizer, max_seq_length
            )

    def tokenize(dataset: Dataset) -> Dataset:
        return tokenize_split(dataset, task, tokenizer, data_args, training_args, max_seq_length)

    train_dataset = None if train_dataset is None else tokenize(train_dataset)
    eval_datasets = {}
    if training_args.do_eval:
        eval_datasets = {
            split: tokenize(_first(raw_datasets[split], data_args.max_eval_samples)) for split in task.validation_splits
        }
    predict_datasets = {}
    if training_args.do_predict:
        test_splits = {task.submission_keys[split]: raw_datasets[split] for split in task.test_splits}
        if task.name == AX_PREDICTED_BY:
            test_splits.update(ax_test_split(data_args.data_dir))
        predict_datasets = {
            key: tokenize(_first(dataset, data_args.max_predict_samples)).remove_columns("label")  # -1 placeholders
            for key, dataset in test_splits.items()
        }
    trainer = build_trainer(
        task, model, tokenizer, training_args, data_args, train_dataset, eval_datasets, online_teacher
    )
    return PreparedTask(
        training_args,
        trainer,
        train_dataset,
        eval_datasets,
        predict_datasets,
        resume_from,
        keep_checkpoints=data_args.keep_checkpoints,
    )


def _needed_splits(task: GlueTask, training_args: PseudoKDTrainingArguments) -> list[str]:
    return required_splits(
        task.name, do_train=training_args.do_train, do_eval=training_args.do_eval, do_predict=training_args.do_predict
    )


def load_splits(
    task: GlueTask, data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments
) -> DatasetDict:
    """The splits the requested stages read, and only those (a broken file the run does not use stops nothing)."""
    try:
        return load_glue_task(task.name, data_args.data_dir, splits=_needed_splits(task, training_args))
    except ConnectionError as error:
        if data_args.data_dir is not None:
            raise
        raise UsageError(
            f"--task_name {task.name}: GLUE could not be loaded from the Hub ({str(error).splitlines()[0]}); pass "
            "--data_dir with the original glue_data/ folder to run offline."
        ) from None


def _hub_kwargs(model_args: ModelArguments) -> dict[str, Any]:
    return {
        "cache_dir": model_args.cache_dir,
        "token": model_args.token,
        "trust_remote_code": model_args.trust_remote_code,
    }


def load_student(model_args: ModelArguments, task: GlueTask) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The student with a head for the task's labels (named, so predictions and teacher checks read them)."""
    hub_kwargs = {**_hub_kwargs(model_args), "revision": model_args.model_revision}
    config = AutoConfig.from_pretrained(
        model_args.config_name or model_args.model_name_or_path,
        num_labels=task.num_labels,
        finetuning_task=task.name,
        **hub_kwargs,
    )
    if not task.is_regression:
        config.id2label = dict(enumerate(task.label_names))
        config.label2id = {name: label_id for label_id, name in config.id2label.items()}
    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_args.model_name_or_path, **hub_kwargs)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            model_args.model_name_or_path,
            config=config,
            ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
            **hub_kwargs,
        )
    except RuntimeError as error:
        if "ignore_mismatched_sizes" not in str(error):
            raise
        raise UsageError(
            f"--model_name_or_path {model_args.model_name_or_path} has weights shaped for other labels than "
            f"{task.name}'s {task.num_labels}: pass --ignore_mismatched_sizes to start a new classifier head."
        ) from None
    return model, tokenizer


def _max_seq_length(data_args: DataTrainingArguments, tokenizer: PreTrainedTokenizerBase) -> int:
    if data_args.max_seq_length <= tokenizer.model_max_length:
        return data_args.max_seq_length
    logger.warning(
        f"--max_seq_length {data_args.max_seq_length} exceeds the tokenizer's maximum {tokenizer.model_max_length}; "
        f"using {tokenizer.model_max_length}."
    )
    return tokenizer.model_max_length


def attach_teacher(
    train_dataset: Dataset,
    model_args: ModelArguments,
    training_args: PseudoKDTrainingArguments,
    task: GlueTask,
    student: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    max_seq_length: int,
) -> tuple[Dataset, PreTrainedModel | None]:
    """Add the teacher's cached logits to the training set; with --kd_online, return the teacher to run instead."""
    teacher, teacher_tokenizer = _load_teacher(model_args, _hub_kwargs(model_args))
    label_order = _teacher_label_order(model_args, teacher, student)
    if model_args.kd_online:
        _check_same_vocabulary(model_args, teacher_tokenizer, tokenizer)
        return train_dataset, teacher  # the trainer maps its logits onto the student's labels itself
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
    return train_dataset, None  # its logits are all KD needs from here on


def tokenize_split(
    dataset: Dataset,
    task: GlueTask,
    tokenizer: PreTrainedTokenizerBase,
    data_args: DataTrainingArguments,
    training_args: PseudoKDTrainingArguments,
    max_seq_length: int,
) -> Dataset:
    """Tokenise the task's text columns (cached by `datasets`), truncated to `max_seq_length`."""

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


def build_trainer(
    task: GlueTask,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    training_args: PseudoKDTrainingArguments,
    data_args: DataTrainingArguments,
    train_dataset: Dataset | None,
    eval_datasets: dict[str, Dataset],
    online_teacher: PreTrainedModel | None,
) -> PseudoKDTrainer:
    """`PseudoKDTrainer` with run_glue's collator (dynamic padding unless --pad_to_max_length) and GLUE metrics."""
    if data_args.pad_to_max_length:
        data_collator = default_data_collator
    else:
        pad_to_multiple_of = 8 if training_args.fp16 or training_args.bf16 else None
        data_collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=pad_to_multiple_of)
    return PseudoKDTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_datasets.get(task.validation_splits[0]),  # for --eval_strategy during training
        processing_class=tokenizer,
        data_collator=data_collator,
        compute_metrics=glue_compute_metrics_fn(task.name),
        teacher_model=online_teacher,
    )


def run_task(run: PreparedTask) -> dict[str, float]:
    """Train (resuming an interrupted run), evaluate on the dev set(s), write leaderboard files; return the metrics.

    `all_results.json` is written last, so its presence marks a finished run (a rerun skips it). The checkpoints of a
    finished training run are then removed, unless --keep_checkpoints: the final model is in the output folder.
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
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics, combined=False)
        results.update(metrics)

    if training_args.do_predict:
        logger.info("*** Predict ***")
        for key, dataset in run.predict_datasets.items():
            write_predictions(trainer, key, dataset)

    trainer.save_metrics("all", results, combined=False)
    if training_args.do_train and not run.keep_checkpoints and trainer.is_world_process_zero():
        removed = remove_checkpoints(training_args.output_dir)
        if removed:
            logger.info(f"Removed {removed} checkpoint folder(s) of the finished run; --keep_checkpoints keeps them.")
    return results


# ---- helpers ------------------------------------------------------------------------------------------------------


def _check_stages(model_args: ModelArguments, training_args: PseudoKDTrainingArguments) -> None:
    """Fail before loading anything when the requested work cannot run."""
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise UsageError("Nothing to do: pass --do_train, --do_eval and/or --do_predict.")
    method = training_args.regularization
    uses_teacher = get_regularizer(method).uses_teacher
    if uses_teacher and training_args.do_train and model_args.teacher_name_or_path is None:
        raise UsageError(
            f"--regularization {method} needs a teacher: pass --teacher_name_or_path (a model fine-tuned on it)."
        )
    if not uses_teacher and model_args.teacher_name_or_path is not None:
        teacher_methods = " or ".join(name for name, cls in registered_regularizers().items() if cls.uses_teacher)
        raise UsageError(
            f"--teacher_name_or_path is used only by --regularization {teacher_methods} (got {method}): "
            "drop it or choose a method that runs a teacher."
        )
    if model_args.kd_online and model_args.teacher_name_or_path is None:
        raise UsageError("--kd_online runs a teacher at every step: pass --teacher_name_or_path too.")


def _first(dataset: Dataset, max_samples: int | None) -> Dataset:
    return dataset if max_samples is None else dataset.select(range(min(max_samples, len(dataset))))


def _check_local_path(flag: str, name: str | None, cache_dir: str | None = None) -> None:
    """A model name that is meant as a folder must exist; offline, a Hub id must be in the cache.

    `org/name` Hub ids look like relative paths, so a name counts as a folder when it starts with / . or ~, has more
    than one /, or its first part is a folder here (`runs/rte-teacher` with `runs/` present). Otherwise the Hub's
    own message would complain about a repo id or the connection instead.
    """
    if name is None or Path(name).expanduser().exists():
        return
    first = Path(name).parts[0] if Path(name).parts else name
    if name.startswith(("/", ".", "~")) or name.count("/") > 1 or ("/" in name and Path(first).is_dir()):
        raise UsageError(f"{flag} {name}: no such folder; pass a saved model's folder or a Hub model id.")
    cached = Path(cache_dir or hub_constants.HF_HUB_CACHE) / f"models--{name.replace('/', '--')}"
    if is_offline_mode() and not cached.is_dir():
        raise UsageError(
            f"{flag} {name}: no such folder, and not in the Hub cache while the Hub is offline (HF_HUB_OFFLINE=1); "
            "pass a saved model's folder, or go online to download it."
        )


def _load_teacher(
    model_args: ModelArguments, hub_kwargs: dict[str, Any]
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    name = model_args.teacher_name_or_path
    return load_teacher_model(name, **hub_kwargs), AutoTokenizer.from_pretrained(name, **hub_kwargs)


def _teacher_label_order(
    model_args: ModelArguments, teacher: PreTrainedModel, student: PreTrainedModel
) -> list[int] | None:
    """Check the teacher predicts the task's labels (the student's config names them); map its columns onto them."""
    try:
        return teacher_label_order(teacher.config, student.config)
    except ValueError as error:
        raise UsageError(f"--teacher_name_or_path {model_args.teacher_name_or_path}: {error}") from None


def _check_same_vocabulary(
    model_args: ModelArguments, teacher_tokenizer: PreTrainedTokenizerBase, tokenizer: PreTrainedTokenizerBase
) -> None:
    """--kd_online feeds the student's token ids to the teacher: they must mean the same tokens."""
    if teacher_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise UsageError(
            f"--kd_online needs the student's tokenizer, but teacher {model_args.teacher_name_or_path} has another "
            "vocabulary: drop --kd_online to use cached logits (computed with the teacher's own tokenizer)."
        )
