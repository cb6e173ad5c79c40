"""GLUE metrics computed locally, with the keys evaluate's ``glue`` metric reports.

``evaluate.load("glue", ...)`` downloads its script from the Hub and so fails offline; scikit-learn and scipy compute
the same numbers here. Like HF ``run_glue.py``, tasks with two metrics also get their mean as ``combined_score``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef

from .finite import check_finite_predictions
from .tasks import METRIC_KEYS, STSB_RANGE, GlueTask, get_task

if TYPE_CHECKING:
    from transformers import EvalPrediction

    from ..custom_data import CustomTask

# Your own data (--train_file, no --task_name): accuracy and macro-F1, or Pearson and Spearman for regression.
CUSTOM_METRIC_KEYS = {"classification": ("accuracy", "macro_f1"), "regression": ("pearson", "spearmanr")}


def _matthews_correlation(predictions: np.ndarray, references: np.ndarray) -> float:
    return matthews_corrcoef(references, predictions)


def _accuracy(predictions: np.ndarray, references: np.ndarray) -> float:
    return (predictions == references).mean()


def _f1(predictions: np.ndarray, references: np.ndarray) -> float:
    return f1_score(references, predictions)  # binary, positive class 1: what evaluate's glue metric reports


def _macro_f1(predictions: np.ndarray, references: np.ndarray) -> float:
    return f1_score(references, predictions, average="macro")


def _pearson(predictions: np.ndarray, references: np.ndarray) -> float:
    return pearsonr(predictions, references)[0]


def _spearmanr(predictions: np.ndarray, references: np.ndarray) -> float:
    return spearmanr(predictions, references)[0]


# One function per key of METRIC_KEYS; every metric family is a selection of these.
_METRIC_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "matthews_correlation": _matthews_correlation,
    "accuracy": _accuracy,
    "f1": _f1,
    "macro_f1": _macro_f1,
    "pearson": _pearson,
    "spearmanr": _spearmanr,
}


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
        predictions, references = predictions.astype(np.float64), references.astype(np.float64)
        low, high = STSB_RANGE
        if isinstance(task, GlueTask) and not np.all((references >= low) & (references <= high)):
            raise ValueError(
                f"{task.name}: references hold scores outside [{low:g}, {high:g}] (-1 marks an unlabelled test "
                "split); pass gold similarity scores."
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
        for name, values in (("predictions", predictions), ("references", references)):
            if values.size and not np.all((values == np.round(values)) & (values >= 0) & (values < task.num_labels)):
                raise ValueError(
                    f"{task.name}: {name} hold values outside the class ids 0..{task.num_labels - 1} "
                    "(-1 marks an unlabelled test split); pass label ids."
                )
        predictions, references = predictions.astype(np.int64), references.astype(np.int64)
    if len(predictions) != len(references):
        raise ValueError(
            f"{task.name}: {len(predictions)} predictions but {len(references)} references; pass one per example."
        )
    if not len(references):
        raise ValueError(f"{task.name}: no examples to score; pass at least one prediction and reference.")
    return predictions, references


def compute_glue_metrics(task_name: str, predictions, references) -> dict[str, float]:
    """Score predictions on a GLUE task as evaluate's ``glue`` metric would, plus ``combined_score`` for two metrics.

    ``predictions`` are class ids (N,) or logits (N, num_labels), argmaxed here; for STS-B scores (N,) or (N, 1).
    ``references`` are Hub label ids (scores for STS-B). Values come back as python floats. Predictions holding NaN
    or infinity raise :class:`NonFinitePredictionsError` rather than being scored.
    """
    task = get_task(task_name)
    predictions, references = _prepare(task, predictions, references)
    result = {key: float(_METRIC_FUNCTIONS[key](predictions, references)) for key in METRIC_KEYS[task.metric]}
    if len(result) > 1:
        result["combined_score"] = float(np.mean(list(result.values())))
    return result


def compute_custom_metrics(task: CustomTask, predictions, references) -> dict[str, float]:
    """Score predictions on your own data: accuracy and macro-F1 over the classes, or Pearson and Spearman.

    The same checks as :func:`compute_glue_metrics` (NaN or infinite predictions are refused), without GLUE's score
    range.
    """
    predictions, references = _prepare(task, predictions, references)
    keys = CUSTOM_METRIC_KEYS["regression" if task.is_regression else "classification"]
    return {key: float(_METRIC_FUNCTIONS[key](predictions, references)) for key in keys}


def compute_metrics_fn(task: GlueTask | CustomTask) -> Callable[[EvalPrediction], dict[str, float]]:
    """The Trainer's ``compute_metrics`` for a GLUE task or for your own data."""
    if isinstance(task, GlueTask):
        return glue_compute_metrics_fn(task.name)

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        predictions = eval_prediction.predictions
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        return compute_custom_metrics(task, predictions, eval_prediction.label_ids)

    return compute_metrics


def glue_compute_metrics_fn(task_name: str) -> Callable[[EvalPrediction], dict[str, float]]:
    """A ``compute_metrics`` for ``Trainer``: scores an ``EvalPrediction`` with :func:`compute_glue_metrics`.

    When the model (or a Trainer subclass) returns extra outputs, the Trainer hands predictions as a tuple whose
    first element is the logits; only that element is scored.
    """
    task = get_task(task_name)  # fail at construction, not after the first evaluation

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        predictions = eval_prediction.predictions
        if isinstance(predictions, tuple):
            predictions = predictions[0]
        return compute_glue_metrics(task.name, predictions, eval_prediction.label_ids)

    return compute_metrics
