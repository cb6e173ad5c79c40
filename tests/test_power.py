"""benchmarks/power.py: the power of the paired seed comparison, checked against simulated t-tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from benchmarks import power


def simulated_power(delta: float, sd: float, n: int, trials: int = 40_000, seed: int = 0) -> float:
    """The share of simulated paired t-tests (normal differences) that reject at the 5% level."""
    differences = np.random.default_rng(seed).normal(delta, sd, size=(trials, n))
    t = differences.mean(axis=1) / (differences.std(axis=1, ddof=1) / math.sqrt(n))
    return float((np.abs(t) > stats.t.ppf(0.975, n - 1)).mean())


@pytest.mark.parametrize(("sd", "n"), [(1.5, 5), (3.0, 5), (1.0, 12), (0.43, 2), (0.43, 3)])
def test_the_detectable_difference_is_detected_with_power_0_8(sd: float, n: int) -> None:
    delta = power.detectable_difference(sd, n)
    assert simulated_power(delta, sd, n) == pytest.approx(0.8, abs=0.01)
    assert simulated_power(0.0, sd, n) == pytest.approx(0.05, abs=0.005)  # no difference: the test's level


def test_seeds_needed_is_the_first_count_with_enough_power() -> None:
    n = power.seeds_needed(1.0, 1.5)
    assert power.paired_t_power(1.0, 1.5, n) >= 0.8 > power.paired_t_power(1.0, 1.5, n - 1)
    assert power.seeds_needed(1.0, 3.0) > n  # more spread, more seeds


def test_power_stays_a_probability_for_few_pairs_and_a_large_difference() -> None:
    """scipy's nct.cdf gives NaN in this corner (it stopped the report at 2 pairs of STS-B)."""
    assert power.paired_t_power(3.44, 0.43, 2) == pytest.approx(simulated_power(3.44, 0.43, 2), abs=0.01)
    assert power.paired_t_power(6.88, 0.43, 4) == pytest.approx(1.0)


def test_a_single_pair_has_no_test() -> None:
    with pytest.raises(ValueError, match="at least 2 pairs"):
        power.detectable_difference(1.0, 1)


def test_rows_pair_methods_with_none_by_seed(tmp_path: Path) -> None:
    raw = tmp_path / "raw" / "full"
    raw.mkdir(parents=True)
    scores = {"none": [50.0, 52.0, 51.0], "ls": [51.0, 52.5, 53.0]}
    for method, values in scores.items():
        for seed, score in zip((42, 43, 44), values, strict=True):
            run = {"name": f"rte_{method}_seed{seed}", "task": "rte", "method": method, "seed": seed, "score": score}
            (raw / f"rte_{method}_seed{seed}.json").write_text(json.dumps(run), encoding="utf-8")
    select = {"name": "rte_select_lr0.0001_ep3", "task": "rte", "method": "none", "seed": 0, "score": 99.0}
    (raw / "rte_select_lr0.0001_ep3.json").write_text(json.dumps(select), encoding="utf-8")
    assert power.main([str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "power.json").read_text(encoding="utf-8"))["rows"]
    assert (row["task"], row["method"], row["pairs"]) == ("rte", "ls", 3)
    assert row["mean_difference"] == pytest.approx(3.5 / 3)  # (1 + 0.5 + 2) / 3
    assert row["sd_difference"] == pytest.approx(np.std([1.0, 0.5, 2.0], ddof=1))
    assert "| rte | ls | 3 | +1.17 |" in (tmp_path / "power.md").read_text(encoding="utf-8")
