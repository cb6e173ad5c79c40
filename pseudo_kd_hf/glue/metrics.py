"""Scoring model outputs for the runner and for Trainer users, through the package's GLUE ``evaluate`` metric.

:class:`~pseudo_kd_hf.glue.metric.GlueMetric` takes class ids or scores, as the Hub's ``glue`` metric does; this module
turns what a model returns (logits (N, num_labels), a regression head's (N, 1), a tuple with extra outputs) into
those, refuses NaN or infinite predictions before the argmax could hide them, and names the task in every error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .metric import CUSTOM_METRIC_KEYS as CUSTOM_METRIC_KEYS
from .metric import GlueMetric, check_finite_predictions, check_labels
from .tasks import GlueTask, get_task

if TYPE_CHECKING:
    from transformers import EvalPrediction

    from ..custom_data import CustomTask

# The file ``evaluate.load`` opens: ``evaluate.load(GLUE_METRIC_PATH, "cola")`` works offline.
GLUE_METRIC_PATH = str(Path(__file__).with_name("pseudo_kd_glue.py"))


def _prepare(task: GlueTask | CustomTask, predictions, references) -> tuple[np.ndarray, np.ndarray]:
    """Turn logits or ids (scores for STS-B) into a 1-D array matching the 1-D references, or say what is wrong."""
    predictions = np.asarray(predictions)
    references = np.asarray(references)
    if references.ndim != 1:
        raise ValueError(f"{task.name}: references have shape {references.shape}; pass one label per example (1-D).")
    for name, values in (("predictions", predictions), ("references", references)):
        if values.dtype.kind not in "biuf":
            raise ValueError(f"{task.name}: {name} have dtype {values.dtype}; pass numbers (ids, logits or scores).")
    check_finite_predictions(task.name, predictions)
    if task.is_regression:
        if predictions.ndim == 2 and predictions.shape[1] == 1:
            predictions = predictions[:, 0]
        if predictions.ndim != 1:
            raise ValueError(
                f"{task.name}: predictions have shape {predictions.shape}; pass one score per example, (N,) or (N, 1)."
            )
    else:
        if predictions.ndim == 2:
            if predictions.shape[1] != task.num_labels:
                raise ValueError(
                    f"{task.name}: logits have {predictions.shape[1]} columns; the task has {task.num_labels} labels."
                )
            predictions = predictions.argmax(axis=-1)
        if predictions.ndim != 1:
            raise ValueError(
                f"{task.name}: predictions have shape {predictions.shape}; pass class ids (N,) or logits (N, "
                f"{task.num_labels})."
            )
    if len(predictions) != len(references):
        raise ValueError(
            f"{task.name}: {len(predictions)} predictions but {len(references)} references; pass one per example."
        )
    check_labels(task.name, task.num_labels, predictions, references)
    return predictions, references


def _metric_config(task: GlueTask | CustomTask) -> str:
    if isinstance(task, GlueTask):
        return task.name
    return "regression" if task.is_regression else "classification"


def _score(task: GlueTask | CustomTask, metric: GlueMetric, predictions, references) -> dict[str, float]:
    predictions, references = _prepare(task, predictions, references)
    return metric.compute(predictions=predictions, references=references)


def _metric(task: GlueTask | CustomTask) -> GlueMetric:
    """In memory: no cache files, so any number of runs may score at once."""
    return GlueMetric(config_name=_metric_config(task), keep_in_memory=True)


def compute_glue_metrics(task_name: str, predictions, references) -> dict[str, float]:
    """Score predictions on a GLUE task as the Hub's ``glue`` metric would, plus ``combined_score`` for two metrics.

    ``predictions`` are class ids (N,) or logits (N, num_labels), argmaxed here; for STS-B scores (N,) or (N, 1).
    ``references`` are Hub label ids (scores for STS-B). Values come back as python floats. Predictions holding NaN
    or infinity raise :class:`NonFinitePredictionsError` rather than being scored.
    """
    task = get_task(task_name)
    return _score(task, _metric(task), predictions, references)


def compute_custom_metrics(task: CustomTask, predictions, references) -> dict[str, float]:
    """Score predictions on your own data: accuracy and macro-F1 over the classes, or Pearson and Spearman.

    The same checks as :func:`compute_glue_metrics` (NaN or infinite predictions are refused), without GLUE's score
    range.
    """
    return _score(task, _metric(task), predictions, references)


def compute_metrics_fn(task: GlueTask | CustomTask) -> Callable[[EvalPrediction], dict[str, float]]:
    """The Trainer's ``compute_metrics`` for a GLUE task or for your own data, scoring through :class:`GlueMetric`.

    When the model (or a Trainer subclass) returns extra outputs, the Trainer hands predictions as a tuple whose
    first element is the logits; only that element is scored.
    """
    metric = _metric(task)  # built once: an unknown config fails here, not after the first evaluation

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        predictions = eval_prediction.predictions
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        return _score(task, metric, predictions, eval_prediction.label_ids)

    return compute_metrics


def compute_metrics(task_name: str) -> Callable[[EvalPrediction], dict[str, float]]:
    """A ``compute_metrics`` for ``transformers.Trainer`` on a GLUE task: ``Trainer(..., compute_metrics=
    compute_metrics("rte"))``. It takes the model's logits (or scores), as :func:`compute_glue_metrics` does."""
    return compute_metrics_fn(get_task(task_name))
