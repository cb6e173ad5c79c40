"""Predictions holding NaN or infinity (a diverged model): refused before anything is scored or written.

A module of its own, with only numpy, so that the submission writer checks logits without importing the metrics'
libraries.
"""

from __future__ import annotations

import numpy as np


class NonFinitePredictionsError(ValueError):
    """Predictions (logits or scores) hold NaN or infinity: the model diverged, and no number may come from them."""


def check_finite_predictions(name: str, predictions: np.ndarray) -> None:
    """Raise :class:`NonFinitePredictionsError` naming ``name`` and counting the rows (examples) that are not finite.

    A NaN logit argmaxes to class 0 and would be scored, or written to a leaderboard file, as a real prediction.
    """
    if predictions.dtype.kind not in "fc" or predictions.size == 0:
        return
    predictions = np.atleast_1d(predictions)
    finite_rows = np.isfinite(predictions).reshape(len(predictions), -1).all(axis=1)
    if not finite_rows.all():
        bad = int((~finite_rows).sum())
        raise NonFinitePredictionsError(
            f"{name}: {bad} of {len(predictions)} rows of predictions are not finite (NaN or inf): the model "
            "diverged, so nothing was scored or written; lower the learning rate or resume from an earlier checkpoint."
        )
