"""A stand-in for `python -m pseudo_kd_hf CONFIG` in the multi-worker tests: it writes its pid and a weights file,
sleeps `FAKE_RUNNER_SLEEP_S` seconds (a trial mid-training), then the held-out results a sweep reads."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import yaml

config = yaml.safe_load(Path(sys.argv[1]).read_text(encoding="utf-8"))
run_dir = Path(config["output_dir"])
(run_dir / "runner.pid").write_text(str(os.getpid()))
(run_dir / "model.safetensors").write_bytes(b"weights")
time.sleep(float(os.environ.get("FAKE_RUNNER_SLEEP_S", "0.2")))
results = {"eval_split": "heldout", "eval_accuracy": float(config["learning_rate"])}
(run_dir / "all_results.json").write_text(json.dumps(results), encoding="utf-8")
