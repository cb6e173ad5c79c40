"""heldout_split: the stratified, seeded held-out part `--heldout_fraction` selects on instead of the dev set."""

from __future__ import annotations

from collections import Counter

import pytest
from datasets import Dataset

from pseudo_kd_hf.glue.data import heldout_split


def classes(counts: dict[int, int]) -> Dataset:
    labels = [label for label, count in counts.items() for _ in range(count)]
    return Dataset.from_dict({"idx": list(range(len(labels))), "label": labels})


def test_classes_keep_their_shares_and_rows_are_not_lost() -> None:
    dataset = classes({0: 60, 1: 30, 2: 10})
    rest, heldout = heldout_split(dataset, 0.2, seed=0, is_regression=False)
    assert Counter(heldout["label"]) == {0: 12, 1: 6, 2: 2}
    assert Counter(rest["label"]) == {0: 48, 1: 24, 2: 8}
    assert sorted(list(rest["idx"]) + list(heldout["idx"])) == list(range(100))  # a partition
    for part in (rest, heldout):  # file order kept
        assert list(part["idx"]) == sorted(part["idx"])


def test_total_is_the_rounded_fraction_spread_by_largest_remainder() -> None:
    dataset = classes({0: 7, 1: 7, 2: 6})  # 10 % of 20 = 2 rows: shares 0.7, 0.7, 0.6
    _, heldout = heldout_split(dataset, 0.1, seed=3, is_regression=False)
    assert Counter(heldout["label"]) == {0: 1, 1: 1}
    _, one = heldout_split(classes({0: 3, 1: 2}), 0.01, seed=0, is_regression=False)
    assert len(one) == 1  # at least one row is held out
    rest, _ = heldout_split(classes({0: 1, 1: 1}), 0.99, seed=0, is_regression=False)
    assert len(rest) == 1  # and at least one is left to train on


def test_same_seed_same_split_other_seed_other_split() -> None:
    dataset = classes({0: 50, 1: 50})
    first = list(heldout_split(dataset, 0.3, seed=0, is_regression=False)[1]["idx"])
    assert list(heldout_split(dataset, 0.3, seed=0, is_regression=False)[1]["idx"]) == first
    assert list(heldout_split(dataset, 0.3, seed=1, is_regression=False)[1]["idx"]) != first


def test_regression_is_stratified_by_score_bins() -> None:
    scores = [0.2] * 10 + [1.5] * 10 + [2.5] * 10 + [3.9] * 10 + [4.0] * 5 + [5.0] * 5  # 4.0 and 5.0: one bin
    dataset = Dataset.from_dict({"idx": list(range(50)), "label": scores})
    _, heldout = heldout_split(dataset, 0.2, seed=0, is_regression=True)
    bins = Counter(min(int(score), 4) for score in heldout["label"])
    assert bins == {0: 2, 1: 2, 2: 2, 3: 2, 4: 2}


@pytest.mark.parametrize(("fraction", "rows", "match"), [(0.0, 10, r"\(0, 1\)"), (1.0, 10, r"\(0, 1\)"), (0.5, 1, "2")])
def test_bad_fraction_or_too_few_rows(fraction: float, rows: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        heldout_split(classes({0: rows}), fraction, seed=0, is_regression=False)
