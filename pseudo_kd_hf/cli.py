"""`pseudo-kd-glue`: fine-tune, evaluate and predict a GLUE task with `PseudoKDTrainer`.

Modelled on Hugging Face's `examples/pytorch/text-classification/run_glue.py`: the same flags with the same meaning
(`arguments.py`, read by `parsing.py`), and a `main()` that reads top to bottom: read the arguments, load the data
and the student, attach the teacher's logits, tokenise, build the trainer, then train, evaluate and predict
(`run_task`). On top: offline `--data_dir`, `--preset paper`, KD teachers with cached logits, leaderboard files with
the official row counts, and `--task_name all` for the whole benchmark (`suite.py`); one run per output folder,
resuming from the newest complete checkpoint, finished runs left alone (`run_folder.py`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import transformers
from datasets import Dataset
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

from .arguments import ALL_TASKS, DataTrainingArguments, ModelArguments
from .checkpointing import StopOnSignal, TrainingStopped
from .checks import check_task
from .config import PseudoKDTrainingArguments
from .custom_data import DataFileError
from .errors import UsageError
from .glue.data import HELDOUT_SPLIT, GlueDataError
from .glue.finite import NonFinitePredictionsError
from .glue.metrics import compute_metrics_fn
from .glue.tasks import AX_PREDICTED_BY
from .model_card import ModelCard
from .parsing import build_arguments, read_arguments, task_arguments
from .plain_logs import keep_logged_metrics, plain_text_when_not_a_terminal
from .regularizers import get_regularizer
from .run_dir import remove_checkpoints
from .run_folder import (
    check_settings,
    checkpoint_files,
    finished_run,
    last_checkpoint,
    output_dir_held,
    record_settings,
    training_settings,
)
from .suite import EVAL_SUFFIXES, ax_test_split, run_suite, write_predictions
from .task_data import Task, eval_split_names, first_examples, load_splits, tokenize_split
from .teacher import add_teacher_logits, load_teacher_model, teacher_label_order
from .teacher_file import TeacherLogitsFileError, attach_teacher_logits
from .trainer import PseudoKDTrainer, TrainingDivergedError, UnsupportedHeadError

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """`pseudo-kd-glue`: fine-tune, evaluate and predict one GLUE task, or every task with `--task_name all`.

    Returns the exit code: 0; 2 after one `error: ...` line on stderr for bad input (a flag, a data file, a busy
    or unwritable --output_dir); 1 after one for a diverged model (no result file is written then); 143 (SIGTERM)
    or 130 (SIGINT) when a signal stopped training after a checkpoint (a rerun resumes it). Anything else (a bug, a
    library failure) raises with its traceback.
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
            if not suite:
                check_settings(model_args, data_args, training_args)
            if suite:
                run_suite(values, training_args, data_args.data_dir, run_one=run_suite_task)
            elif not finished_run(data_args, training_args):
                run_task(prepare_task(model_args, data_args, training_args))
    except (UsageError, GlueDataError, DataFileError, TeacherLogitsFileError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except (TrainingDivergedError, NonFinitePredictionsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except TrainingStopped as stop:
        print(stop, file=sys.stderr)
        return stop.exit_code
    return 0


def run_suite_task(values: dict[str, Any]) -> None:
    """One task of `--task_name all`: its values checked, its folder held, then run."""
    model_args, data_args, training_args = task_arguments(values)
    check_task(model_args, data_args, training_args)
    with output_dir_held(training_args):
        check_settings(model_args, data_args, training_args)
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
    plain_text_when_not_a_terminal()


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
    model_card: ModelCard | None = None  # written to output_dir/README.md by a training run
    settings: dict[str, Any] | None = None  # what a training run records in its folder (`record_settings`)


def prepare_task(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: PseudoKDTrainingArguments
) -> PreparedTask:
    """Seed -> data -> student -> teacher logits -> tokenisation -> `PseudoKDTrainer` (after `check_task`)."""
    logger.info(get_regularizer(training_args.regularization)(training_args).describe())  # the run's first line
    set_seed(training_args.seed)

    task, raw_datasets = load_splits(data_args, training_args, model_args.cache_dir)
    resume_from = last_checkpoint(training_args, data_args.overwrite_output_dir, checkpoint_files(task, training_args))
    model, tokenizer = load_student(model_args, task)
    max_seq_length = _max_seq_length(data_args, tokenizer)
    train_dataset, online_teacher = None, None
    if training_args.do_train:
        train_dataset = first_examples(raw_datasets["train"], data_args.max_train_samples)
        if model_args.teacher_logits is not None:
            train_dataset = attach_teacher_logits(
                train_dataset,
                model_args.teacher_logits,
                task_name=task.name,
                label_names=task.label_names,
                text_columns=task.text_columns,
                allow_subset=data_args.max_train_samples is not None or data_args.heldout_fraction is not None,
            )
        elif model_args.teacher_name_or_path is not None:
            train_dataset, online_teacher = attach_teacher(
                train_dataset, model_args, training_args, task, model, tokenizer, max_seq_length
            )

    def tokenize(dataset: Dataset) -> Dataset:
        return tokenize_split(dataset, task, tokenizer, data_args, training_args, max_seq_length)

    train_dataset = None if train_dataset is None else tokenize(train_dataset)
    eval_datasets = {}
    if training_args.do_eval:
        eval_datasets = {
            split: tokenize(first_examples(raw_datasets[split], data_args.max_eval_samples))
            for split in eval_split_names(task, data_args)
        }
    predict_datasets = {}
    if training_args.do_predict:
        test_splits = {task.submission_keys.get(split, task.name): raw_datasets[split] for split in task.test_splits}
        if task.name == AX_PREDICTED_BY:
            test_splits.update(ax_test_split(data_args.data_dir))
        predict_datasets = {
            # the test splits' labels are -1 placeholders
            key: tokenize(first_examples(dataset, data_args.max_predict_samples)).remove_columns("label")
            for key, dataset in test_splits.items()
        }
    # Recorded before the trainer is built: building it adapts the arguments to the device (`--fast_step`), which a
    # rerun's check, made before any trainer exists, would read as another setting.
    settings = training_settings(model_args, data_args, training_args) if training_args.do_train else None
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
        model_card=ModelCard.for_run(model_args, data_args),
        settings=settings,
    )


def _hub_kwargs(model_args: ModelArguments) -> dict[str, Any]:
    return {
        "cache_dir": model_args.cache_dir,
        "token": model_args.token,
        "trust_remote_code": model_args.trust_remote_code,
    }


def load_student(model_args: ModelArguments, task: Task) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The student with a head for the task's labels (named, so predictions and teacher checks read them)."""
    hub_kwargs = {**_hub_kwargs(model_args), "revision": model_args.model_revision}
    if not model_args.use_fast_tokenizer:
        logger.info("--use_fast_tokenizer false is ignored: transformers 5 always loads a fast tokenizer.")
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
    task: Task,
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


def build_trainer(
    task: Task,
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
    try:
        trainer = PseudoKDTrainer(
            model=model,
            args=training_args,
            train_dataset=train_dataset,
            eval_dataset=eval_datasets.get(eval_split_names(task, data_args)[0]),  # for --eval_strategy in training
            processing_class=tokenizer,
            data_collator=data_collator,
            compute_metrics=compute_metrics_fn(task),
            teacher_model=online_teacher,
            callbacks=[StopOnSignal()],  # SIGTERM/SIGINT: a checkpoint at the next step, then exit 143/130
        )
    except UnsupportedHeadError as error:  # a config.json naming another problem_type
        raise UsageError(f"--model_name_or_path {model.name_or_path}: {error}") from None
    keep_logged_metrics(trainer)  # total_flos stays in train_results.json under --disable_tqdm
    return trainer


def run_task(run: PreparedTask) -> dict[str, float]:
    """Train (resuming an interrupted run), evaluate on the dev set(s), write leaderboard files; return the metrics.

    `all_results.json` is written last (atomically), so a whole one marks a finished run (a rerun skips it). The
    checkpoints of a finished training run are then removed, unless --keep_checkpoints: the final model is in the
    output folder.
    """
    trainer, training_args = run.trainer, run.training_args
    results: dict[str, float] = {}
    if training_args.do_train:
        checkpoint = training_args.resume_from_checkpoint or run.last_checkpoint
        if run.settings is not None and trainer.is_world_process_zero():
            record_settings(run.settings, training_args.output_dir)
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
            write_predictions(trainer, key, dataset)

    if training_args.do_train and run.model_card is not None:
        run.model_card.write(trainer)  # as run_glue: after the results it lists, before all_results.json
    trainer.save_metrics("all", results, combined=False)
    if training_args.do_train and not run.keep_checkpoints and trainer.is_world_process_zero():
        removed = remove_checkpoints(training_args.output_dir)
        if removed:
            logger.info(f"Removed {removed} checkpoint folder(s) of the finished run; --keep_checkpoints keeps them.")
    return results


# ---- helpers ------------------------------------------------------------------------------------------------------


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
