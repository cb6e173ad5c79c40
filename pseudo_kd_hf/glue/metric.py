"""GLUE's metrics as an ``evaluate.Metric``: the Hub's ``glue`` configs, keys and values, offline, plus your own data.

``evaluate.load("glue", ...)`` downloads its script from the Hub and so fails offline; this module is the same metric
inside the package. Load it with ``evaluate.load(GLUE_METRIC_PATH, "cola")`` (``pseudo_kd_hf.glue.GLUE_METRIC_PATH``)
or build :class:`GlueMetric` directly. The runner and :func:`pseudo_kd_hf.glue.compute_metrics` score through it.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
from scipy.stats import pearsonr, spearmanr

from .finite import check_finite_predictions
from .tasks import METRIC_KEYS, STSB_RANGE, TASKS

# Your own data (--train_file, no --task_name): accuracy and macro-F1, or Pearson and Spearman for regression.
CUSTOM_METRIC_KEYS = {"classification": ("accuracy", "macro_f1"), "regression": ("pearson", "spearmanr")}

_HUB_ALIASES = {"mnli_matched": "mnli", "mnli_mismatched": "mnli"}  # the Hub metric's names for MNLI's two sets
# Config -> (keys, number of classes; 1 for a regression, None where the classes are the data's own).
CONFIGS: dict[str, tuple[tuple[str, ...], int | None]] = {
    **{name: (METRIC_KEYS[task.metric], task.num_labels) for name, task in TASKS.items()},
    **{alias: (METRIC_KEYS[TASKS[name].metric], TASKS[name].num_labels) for alias, name in _HUB_ALIASES.items()},
    "hans": (("accuracy",), 2),
    "classification": (CUSTOM_METRIC_KEYS["classification"], None),
    "regression": (CUSTOM_METRIC_KEYS["regression"], 1),
}

_DESCRIPTION = """\
GLUE's metrics with the keys and values of the Hub's `glue` metric, computed offline, plus one for your own data.

Configs and keys: cola -> matthews_correlation; mrpc, qqp -> accuracy, f1 (binary, positive class 1); stsb ->
pearson, spearmanr; sst2, mnli, mnli_matched, mnli_mismatched, qnli, rte, wnli, ax, hans -> accuracy. A config with
two keys also reports their mean as combined_score, as run_glue.py does. Own data: `classification` -> accuracy,
macro_f1 (the mean of the per-class F1 over the classes present in references or predictions, as scikit-learn's
f1_score(average="macro")); `regression` -> pearson, spearmanr. Values are python floats.

Edge cases: matthews_correlation is 0.0 when the predictions or the references hold a single class (scikit-learn's
value); f1 is 0.0 when there is no true positive (including no positive at all in predictions and references);
pearson and spearmanr are NaN when the predictions or the references are constant (scipy's value, with its
ConstantInputWarning), and so is combined_score then.

Unlike the Hub's metric, scores (stsb, regression) stay float64 (the Hub's metric rounds them to float32), and inputs
are checked: NaN or infinite predictions raise NonFinitePredictionsError; class ids outside the config's classes, GLUE
scores outside [0, 5] (-1 marks an unlabelled test split), and an empty input raise ValueError.
"""

_INPUTS_DESCRIPTION = """
Args:
    predictions: class ids (N,), or scores for stsb / regression. Logits are argmaxed by
        pseudo_kd_hf.glue.compute_metrics, not here.
    references: gold class ids (N,), or gold scores.
Returns: a dict of python floats, keys as in the description.
Example:
    >>> import evaluate
    >>> from pseudo_kd_hf.glue import GLUE_METRIC_PATH
    >>> evaluate.load(GLUE_METRIC_PATH, "mrpc").compute(predictions=[1, 0, 1, 1], references=[1, 1, 1, 0])
    {'accuracy': 0.5, 'f1': 0.6666666666666666, 'combined_score': 0.5833333333333333}
"""


def check_labels(name: str, num_labels: int | None, predictions: np.ndarray, references: np.ndarray) -> None:
    """Refuse what cannot be scored: no examples, class ids outside ``0..num_labels - 1``, GLUE scores outside 0-5.

    ``num_labels`` is 1 for a regression, None for classes that are the data's own (only negative ids are refused).
    """
    if not len(references):
        raise ValueError(f"{name}: no examples to score; pass at least one prediction and reference.")
    if num_labels == 1:
        low, high = STSB_RANGE
        if name in TASKS and not np.all((references >= low) & (references <= high)):
            raise ValueError(
                f"{name}: references hold scores outside [{low:g}, {high:g}] (-1 marks an unlabelled test "
                "split); pass gold similarity scores."
            )
        return
    for role, values in (("predictions", predictions), ("references", references)):
        high = np.inf if num_labels is None else num_labels
        if not np.all((values == np.round(values)) & (values >= 0) & (values < high)):
            classes = "non-negative class ids" if num_labels is None else f"the class ids 0..{num_labels - 1}"
            raise ValueError(
                f"{name}: {role} hold values outside {classes} (-1 marks an unlabelled test split); pass label ids."
            )


def matthews_correlation(predictions: np.ndarray, references: np.ndarray) -> float:
    """scikit-learn's ``matthews_corrcoef`` (its multiclass form), step for step: 0.0 where it is undefined."""
    num_classes = int(max(predictions.max(), references.max())) + 1
    confusion = np.bincount(references * num_classes + predictions, minlength=num_classes**2)
    confusion = confusion.reshape(num_classes, num_classes)
    true_sum = confusion.sum(axis=1, dtype=np.float64)
    predicted_sum = confusion.sum(axis=0, dtype=np.float64)
    n_correct = np.trace(confusion, dtype=np.float64)
    n_samples = predicted_sum.sum()
    cov_true_predicted = n_correct * n_samples - np.dot(true_sum, predicted_sum)
    cov_predicted = n_samples**2 - np.dot(predicted_sum, predicted_sum)
    cov_true = n_samples**2 - np.dot(true_sum, true_sum)
    if cov_predicted * cov_true == 0:
        return 0.0
    return float(cov_true_predicted / np.sqrt(cov_predicted * cov_true))


def _class_f1(predictions: np.ndarray, references: np.ndarray, label: int) -> float:
    true_positives = np.sum((predictions == label) & (references == label), dtype=np.float64)
    denominator = np.sum(references == label, dtype=np.float64) + np.sum(predictions == label, dtype=np.float64)
    return 0.0 if denominator == 0 else float(2 * true_positives / denominator)


def _accuracy(predictions: np.ndarray, references: np.ndarray) -> float:
    return float((predictions == references).mean())


def _f1(predictions: np.ndarray, references: np.ndarray) -> float:
    return _class_f1(predictions, references, 1)  # binary, positive class 1: what the Hub's glue metric reports


def _macro_f1(predictions: np.ndarray, references: np.ndarray) -> float:
    labels = np.union1d(predictions, references)
    return float(np.mean([_class_f1(predictions, references, label) for label in labels]))


def _pearson(predictions: np.ndarray, references: np.ndarray) -> float:
    return float(pearsonr(predictions, references)[0])


def _spearmanr(predictions: np.ndarray, references: np.ndarray) -> float:
    return float(spearmanr(predictions, references)[0])


_METRIC_FUNCTIONS = {
    "matthews_correlation": matthews_correlation,
    "accuracy": _accuracy,
    "f1": _f1,
    "macro_f1": _macro_f1,
    "pearson": _pearson,
    "spearmanr": _spearmanr,
}


class GlueMetric(evaluate.Metric):
    """The Hub's ``glue`` metric, offline, checked, and with configs for your own data (see ``description``)."""

    def _info(self) -> evaluate.MetricInfo:
        if self.config_name not in CONFIGS:
            choices = ", ".join(CONFIGS)
            raise KeyError(f"Unknown config {self.config_name!r} of the GLUE metric: choose one of {choices}.")
        dtype = "float64" if CONFIGS[self.config_name][1] == 1 else "int64"
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value(dtype), "references": datasets.Value(dtype)}),
        )  # no format="numpy": datasets' numpy formatter rounds floats to float32

    def _compute(self, predictions: list, references: list) -> dict[str, float]:
        keys, num_labels = CONFIGS[self.config_name]
        dtype = np.float64 if num_labels == 1 else np.int64
        predictions, references = np.asarray(predictions, dtype=dtype), np.asarray(references, dtype=dtype)
        check_finite_predictions(self.config_name, predictions)
        check_labels(self.config_name, num_labels, predictions, references)
        result = {key: _METRIC_FUNCTIONS[key](predictions, references) for key in keys}
        if len(result) > 1 and self.config_name not in CUSTOM_METRIC_KEYS:  # run_glue's mean, for GLUE only
            result["combined_score"] = float(np.mean(list(result.values())))
        return result
