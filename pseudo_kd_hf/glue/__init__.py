"""GLUE for Pseudo-KD: the task registry, offline/Hub loading, the `evaluate` metric and leaderboard submissions.

The names below are imported on first use (`pseudo_kd_hf.lazy`): the task table and the submission writer load
neither torch, transformers nor datasets.
"""

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

if TYPE_CHECKING:
    from .data import GlueDataError, load_glue_task, missing_splits, required_splits
    from .finite import NonFinitePredictionsError
    from .metric import GlueMetric
    from .metrics import GLUE_METRIC_PATH, compute_glue_metrics, compute_metrics
    from .submission import (
        SubmissionError,
        SubmissionSummary,
        collect_leaderboard_files,
        package_submission,
        read_leaderboard_file,
        validate_submission,
        write_leaderboard_file,
        write_submission,
    )
    from .tasks import get_task, text_columns

__all__ = [
    "GLUE_METRIC_PATH",
    "GlueDataError",
    "GlueMetric",
    "NonFinitePredictionsError",
    "SubmissionError",
    "SubmissionSummary",
    "collect_leaderboard_files",
    "compute_glue_metrics",
    "compute_metrics",
    "get_task",
    "load_glue_task",
    "missing_splits",
    "package_submission",
    "read_leaderboard_file",
    "required_splits",
    "text_columns",
    "validate_submission",
    "write_leaderboard_file",
    "write_submission",
]

EXPORTS = {
    ".data": ("GlueDataError", "load_glue_task", "missing_splits", "required_splits"),
    ".finite": ("NonFinitePredictionsError",),
    ".metric": ("GlueMetric",),
    ".metrics": ("GLUE_METRIC_PATH", "compute_glue_metrics", "compute_metrics"),
    ".submission": (
        "SubmissionError",
        "SubmissionSummary",
        "collect_leaderboard_files",
        "package_submission",
        "read_leaderboard_file",
        "validate_submission",
        "write_leaderboard_file",
        "write_submission",
    ),
    ".tasks": ("get_task", "text_columns"),
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
