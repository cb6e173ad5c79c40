"""GLUE metrics: evaluate's keys, the same numbers as scikit-learn/scipy, logits or ids, and clear input errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef
from transformers import EvalPrediction

from pseudo_kd_hf.glue.finite import NonFinitePredictionsError
from pseudo_kd_hf.glue.metrics import compute_glue_metrics, compute_metrics
from pseudo_kd_hf.glue.tasks import METRIC_KEYS, TASKS

RNG_SEED = 1234


def _random_task_data(task_name: str, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Logits and references for a task (scores for STS-B), correlated so every metric is away from 0."""
    rng = np.random.default_rng(RNG_SEED)
    task = TASKS[task_name]
    if task.is_regression:
        references = rng.uniform(0, 5, n)
        return references + rng.normal(0, 1.0, n), references
    references = rng.integers(0, task.num_labels, n)
    logits = rng.normal(0, 1, (n, task.num_labels))
    logits[np.arange(n), references] += 1.0
    return logits, references


@pytest.mark.parametrize("task_name", list(TASKS))
def test_keys_follow_the_registry_and_values_are_python_floats(task_name):
    predictions, references = _random_task_data(task_name)
    result = compute_glue_metrics(task_name, predictions, references)
    keys = METRIC_KEYS[TASKS[task_name].metric]
    assert list(result) == list(keys) + (["combined_score"] if len(keys) == 2 else [])
    assert all(type(value) is float for value in result.values())


def test_matthews_matches_sklearn():
    logits, references = _random_task_data("cola")
    result = compute_glue_metrics("cola", logits, references)
    assert result == {"matthews_correlation": pytest.approx(matthews_corrcoef(references, logits.argmax(-1)))}
    assert 0.1 < result["matthews_correlation"] < 1


@pytest.mark.parametrize("task_name", ["mrpc", "qqp"])
def test_accuracy_f1_match_sklearn_and_combine(task_name):
    logits, references = _random_task_data(task_name)
    ids = logits.argmax(-1)
    result = compute_glue_metrics(task_name, logits, references)
    accuracy, f1 = float((ids == references).mean()), f1_score(references, ids)
    assert result["accuracy"] == pytest.approx(accuracy)
    assert result["f1"] == pytest.approx(f1)
    assert result["combined_score"] == pytest.approx((accuracy + f1) / 2)


def test_pearson_spearman_match_scipy_and_squeeze_a_column():
    scores, references = _random_task_data("stsb")
    result = compute_glue_metrics("stsb", scores[:, None], references)  # a regression head's (N, 1) output
    pearson, spearman = pearsonr(scores, references)[0], spearmanr(scores, references)[0]
    assert result["pearson"] == pytest.approx(pearson)
    assert result["spearmanr"] == pytest.approx(spearman)
    assert result["combined_score"] == pytest.approx((pearson + spearman) / 2)
    assert result == compute_glue_metrics("stsb", scores, references)


@pytest.mark.parametrize("task_name", ["sst2", "mnli", "qnli", "rte", "wnli", "ax"])
def test_accuracy_tasks_score_logits_as_their_argmax(task_name):
    logits, references = _random_task_data(task_name)
    from_logits = compute_glue_metrics(task_name, logits, references)
    from_ids = compute_glue_metrics(task_name, logits.argmax(-1), references)
    assert from_logits == from_ids == {"accuracy": pytest.approx(float((logits.argmax(-1) == references).mean()))}


def test_hand_computed_values():
    predictions, references = [1, 0, 1, 1], [1, 1, 1, 0]  # TP 2, TN 0, FP 1, FN 1
    assert compute_glue_metrics("mrpc", predictions, references) == pytest.approx(
        {"accuracy": 0.5, "f1": 2 / 3, "combined_score": (0.5 + 2 / 3) / 2}
    )
    assert compute_glue_metrics("cola", predictions, references) == pytest.approx({"matthews_correlation": -1 / 3})
    # A monotonic but non-linear prediction: perfect rank correlation, imperfect linear correlation.
    result = compute_glue_metrics("stsb", [0.0, 1.0, 8.0, 27.0], [0.0, 1.0, 2.0, 3.0])
    assert result["spearmanr"] == pytest.approx(1.0)
    assert 0.9 < result["pearson"] < 0.99


@pytest.mark.parametrize(
    ("task_name", "predictions", "references", "message"),
    [
        ("rte", [0, 1, 1], [0, 1], "3 predictions but 2 references"),
        ("rte", np.zeros((2, 3)), [0, 1], "logits have 3 columns; the task has 2 labels"),
        ("mnli", np.zeros((2, 3, 1)), [0, 1], "predictions have shape (2, 3, 1)"),
        ("cola", [0, 1], [[0, 1]], "references have shape (1, 2)"),
        ("rte", [0, 1], [-1, -1], "references hold values outside the class ids 0..1"),
        ("rte", [0, 2], [0, 1], "predictions hold values outside the class ids 0..1"),
        ("stsb", np.zeros((2, 2)), [1.0, 2.0], "predictions have shape (2, 2)"),
        ("stsb", [1.0, 2.0], [-1.0, -1.0], "references hold scores outside [0, 5]"),
        ("sst2", ["positive", "negative"], [1, 0], "predictions have dtype <U8"),
        ("sst2", [], [], "no examples to score"),
    ],
)
def test_bad_input_raises_naming_it(task_name, predictions, references, message):
    with pytest.raises(ValueError, match=f"^{task_name}: .*" + re.escape(message)):
        compute_glue_metrics(task_name, predictions, references)


def test_unknown_task_raises():
    with pytest.raises(ValueError, match="Unknown GLUE task 'squad'"):
        compute_glue_metrics("squad", [0], [0])
    with pytest.raises(ValueError, match="Unknown GLUE task 'squad'"):
        compute_metrics("squad")


def test_trainer_compute_metrics_takes_the_first_of_a_predictions_tuple():
    logits, references = _random_task_data("mrpc")
    trainer_metrics = compute_metrics("MRPC")
    expected = compute_glue_metrics("mrpc", logits, references)
    assert trainer_metrics(EvalPrediction(predictions=logits, label_ids=references)) == expected
    extra_outputs = np.zeros((len(references), 7))  # e.g. hidden states or a Trainer subclass's extra outputs
    assert trainer_metrics(EvalPrediction(predictions=(logits, extra_outputs), label_ids=references)) == expected


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_logits_are_not_scored(bad_value):
    logits, references = _random_task_data("rte", n=10)
    logits[[2, 7], 1] = bad_value  # NaN would argmax to class 0 and be scored as a prediction
    logits[7, 0] = bad_value  # a row with two bad values is one row
    with pytest.raises(NonFinitePredictionsError, match=r"^rte: 2 of 10 rows of predictions are not finite") as error:
        compute_glue_metrics("rte", logits, references)
    assert "\n" not in str(error.value)
    trainer_metrics = compute_metrics("rte")
    with pytest.raises(NonFinitePredictionsError, match=r"^rte: 2 of 10 rows"):
        trainer_metrics(EvalPrediction(predictions=(logits, np.zeros((10, 3))), label_ids=references))


def test_a_diverged_regression_head_is_not_scored():
    scores, references = _random_task_data("stsb", n=6)
    scores[0] = np.nan
    with pytest.raises(NonFinitePredictionsError, match=r"^stsb: 1 of 6 rows of predictions are not finite"):
        compute_glue_metrics("stsb", scores[:, None], references)
    # Extra outputs beside the logits are not scored, so a NaN there does not stop an evaluation.
    logits, labels = _random_task_data("sst2", n=6)
    extra = np.full((6, 2), np.nan)
    assert compute_metrics("sst2")(EvalPrediction(predictions=(logits, extra), label_ids=labels)) == (
        compute_glue_metrics("sst2", logits, labels)
    )
