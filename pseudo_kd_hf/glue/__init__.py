"""GLUE for Pseudo-KD: the task registry, offline/Hub loading, the `evaluate` metric and leaderboard submissions."""

from .data import GlueDataError as GlueDataError
from .data import load_glue_task as load_glue_task
from .data import missing_splits as missing_splits
from .data import required_splits as required_splits
from .metric import GlueMetric as GlueMetric
from .metrics import GLUE_METRIC_PATH as GLUE_METRIC_PATH
from .metrics import NonFinitePredictionsError as NonFinitePredictionsError
from .metrics import compute_glue_metrics as compute_glue_metrics
from .metrics import compute_metrics as compute_metrics
from .submission import SubmissionError as SubmissionError
from .submission import SubmissionSummary as SubmissionSummary
from .submission import collect_leaderboard_files as collect_leaderboard_files
from .submission import package_submission as package_submission
from .submission import read_leaderboard_file as read_leaderboard_file
from .submission import validate_submission as validate_submission
from .submission import write_leaderboard_file as write_leaderboard_file
from .submission import write_submission as write_submission
from .tasks import get_task as get_task
from .tasks import text_columns as text_columns
