"""The package's GLUE `evaluate` metric: loadable offline, the Hub metric's keys, scikit-learn's and scipy's values."""

from __future__ import annotations

import warnings

import evaluate
import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score, matthews_corrcoef
from transformers import EvalPrediction

from pseudo_kd_hf.glue import GLUE_METRIC_PATH, GlueMetric, NonFinitePredictionsError, compute_metrics
from pseudo_kd_hf.glue.metric import CONFIGS

# The Hub's glue metric: its configs and the keys each reports (run_glue adds combined_score to two).
HUB_KEYS = {
    "cola": ["matthews_correlation"],
    "mrpc": ["accuracy", "f1", "combined_score"],
    "qqp": ["accuracy", "f1", "combined_score"],
    "stsb": ["pearson", "spearmanr", "combined_score"],
    **{name: ["accuracy"] for name in ("sst2", "mnli", "mnli_matched", "mnli_mismatched", "qnli", "rte", "wnli")},
    **{name: ["accuracy"] for name in ("hans", "ax")},
}
OWN_DATA_KEYS = {"classification": ["accuracy", "macro_f1"], "regression": ["pearson", "spearmanr"]}


def _random(config: str, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and references, correlated so that no metric sits at 0."""
    rng = np.random.default_rng(7)
    num_labels = CONFIGS[config][1] or 4
    if num_labels == 1:
        references = rng.uniform(0, 5, n)
        return references + rng.normal(0, 1, n), references
    references = rng.integers(0, num_labels, n)
    predictions = np.where(rng.random(n) < 0.6, references, rng.integers(0, num_labels, n))
    return predictions, references


def _expected(config: str, predictions: np.ndarray, references: np.ndarray) -> dict[str, float]:
    """What scikit-learn and scipy say, under the keys of the Hub's metric."""
    values = {
        "matthews_correlation": lambda: matthews_corrcoef(references, predictions),
        "accuracy": lambda: (predictions == references).mean(),
        "f1": lambda: f1_score(references, predictions),
        "macro_f1": lambda: f1_score(references, predictions, average="macro"),
        "pearson": lambda: pearsonr(predictions, references)[0],
        "spearmanr": lambda: spearmanr(predictions, references)[0],
    }
    keys = (HUB_KEYS | OWN_DATA_KEYS)[config]
    result = {key: float(values[key]()) for key in keys if key != "combined_score"}
    if "combined_score" in keys:
        result["combined_score"] = float(np.mean(list(result.values())))
    return result


def test_every_config_is_the_hubs_or_own_data():
    assert set(CONFIGS) == set(HUB_KEYS) | set(OWN_DATA_KEYS)


def test_loads_offline_through_evaluate_as_the_packages_class():
    metric = evaluate.load(GLUE_METRIC_PATH, "cola")
    assert isinstance(metric, GlueMetric)
    assert metric.compute(predictions=[1, 0, 1, 1], references=[1, 1, 1, 0]) == {"matthews_correlation": -1 / 3}
    assert "matthews_correlation" in metric.description and "NaN" in metric.description


@pytest.mark.parametrize("config", list(HUB_KEYS) + list(OWN_DATA_KEYS))
def test_matches_sklearn_and_scipy_on_random_predictions(config):
    predictions, references = _random(config)
    result = GlueMetric(config_name=config, keep_in_memory=True).compute(predictions=predictions, references=references)
    expected = _expected(config, predictions, references)
    assert result == expected  # the same floats, not only close ones
    assert all(type(value) is float for value in result.values())
    assert all(0.1 < value <= 1 for value in result.values())


@pytest.mark.parametrize("config", ["cola", "mrpc", "classification"])
def test_constant_predictions_give_sklearns_values(config):
    _, references = _random(config, n=50)
    for constant in (0, 1):
        predictions = np.full_like(references, constant)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn warns about the ill-defined F1
            expected = _expected(config, predictions, references)
        result = GlueMetric(config_name=config).compute(predictions=predictions, references=references)
        assert result == pytest.approx(expected, rel=1e-12, abs=0)
    # A single class everywhere: Matthews is 0.0, F1 of an absent positive class is 0.0.
    assert GlueMetric(config_name="cola").compute(predictions=[0, 0], references=[0, 0]) == {
        "matthews_correlation": 0.0
    }
    assert GlueMetric(config_name="mrpc").compute(predictions=[0, 0], references=[0, 0]) == {
        "accuracy": 1.0,
        "f1": 0.0,
        "combined_score": 0.5,
    }


@pytest.mark.parametrize("config", ["stsb", "regression"])
def test_a_constant_reference_or_prediction_gives_nan_correlations(config):
    metric = GlueMetric(config_name=config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's ConstantInputWarning
        constant_reference = metric.compute(predictions=[1.0, 2.0, 3.0], references=[2.5, 2.5, 2.5])
        constant_prediction = metric.compute(predictions=[2.0, 2.0, 2.0], references=[1.0, 2.0, 3.0])
    for result in (constant_reference, constant_prediction):
        assert all(np.isnan(value) for value in result.values())
        assert list(result) == list(_expected(config, np.arange(3.0), np.arange(3.0)))


def test_scores_stay_float64_where_the_hub_rounds_to_float32():
    predictions = np.array([1.0, 2.0, 3.0 + 1e-9, 4.5])
    references = np.array([1.1, 2.0, 2.9, 4.0])
    result = GlueMetric(config_name="stsb").compute(predictions=predictions, references=references)
    assert result["pearson"] == float(pearsonr(predictions, references)[0])


@pytest.mark.parametrize(
    ("config", "predictions", "references", "error", "message"),
    [
        ("stsb", [np.nan, 1.0], [1.0, 2.0], NonFinitePredictionsError, "stsb: 1 of 2 rows of predictions are not"),
        ("regression", [np.inf], [1.0], NonFinitePredictionsError, "regression: 1 of 1 rows"),
        ("rte", [0, 1], [0, -1], ValueError, "rte: references hold values outside the class ids 0..1"),
        ("mnli_matched", [3], [0], ValueError, "mnli_matched: predictions hold values outside the class ids 0..2"),
        ("classification", [0, -1], [0, 1], ValueError, "classification: predictions hold values outside non-neg"),
        ("stsb", [1.0], [-1.0], ValueError, "stsb: references hold scores outside [0, 5]"),
        ("cola", [], [], ValueError, "cola: no examples to score"),
    ],
)
def test_refuses_what_it_cannot_score(config, predictions, references, error, message):
    with pytest.raises(error, match="^" + message.replace("[", r"\[").replace("(", r"\(")):
        GlueMetric(config_name=config).compute(predictions=predictions, references=references)


def test_an_unknown_config_names_the_choices():
    with pytest.raises(KeyError, match="Unknown config 'squad' of the GLUE metric: choose one of cola"):
        GlueMetric(config_name="squad")


def test_compute_metrics_for_a_trainer_scores_logits_through_the_metric():
    predictions, references = _random("mrpc")
    logits = np.eye(2)[predictions] + 0.25  # the argmax is the prediction
    scored = compute_metrics("mrpc")(EvalPrediction(predictions=logits, label_ids=references))
    assert scored == GlueMetric(config_name="mrpc").compute(predictions=predictions, references=references)
    assert scored == pytest.approx(_expected("mrpc", predictions, references), rel=1e-12, abs=0)
