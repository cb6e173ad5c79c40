"""benchmarks/gpu_step.py runs end to end (`--quick`: tiny models on CPU), so the GPU sitting runs it once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.glue_models import save_tiny_student


@pytest.fixture(scope="module")
def benchmark():
    from benchmarks import gpu_step

    return gpu_step


@pytest.mark.slow
def test_quick_run_writes_every_part(benchmark, tmp_path: Path, shared_glue_data: Path, minilm_path: Path) -> None:
    student = save_tiny_student(tmp_path / "student", minilm_path)
    argv = ["--quick", "--model", str(student), "--glue_data", str(shared_glue_data), "--output_dir", str(tmp_path)]
    variants = ["plain_trainer", "pseudo_kd_eager", "pseudo_kd_fast", "none_fast", "pseudo_kd_bare_loop_cudagraphs"]
    assert benchmark.main([*argv, "--variants", *variants, "--time_budget_s", "600"]) == 0

    result = json.loads((tmp_path / "speed_gpu_step.json").read_text(encoding="utf-8"))
    assert result["finished"] and not result["errors"] and not result["skipped"]
    assert [row["variant"] for row in result["variants"]] == variants
    for row in result["variants"]:
        assert row["median_step_ms"] > 0 and row["device"] == result["device"] and len(row["losses"]) == 12
    by_name = {row["variant"]: row for row in result["variants"]}
    assert by_name["pseudo_kd_fast"]["dynamo_compile_s"] > 0 == by_name["pseudo_kd_eager"]["dynamo_compile_s"]
    assert by_name["plain_trainer"]["speedup_vs_plain_trainer"] == 1.0
    curves = {(curve["reference"], curve["fast"]): curve for curve in result["loss_curves"]}
    assert set(curves) == {("pseudo_kd_eager", "pseudo_kd_fast"), ("plain_trainer", "none_fast")}
    assert all(curve["max_abs_diff"] < 1e-4 and curve["steps"] == 12 for curve in curves.values())  # fp32 on CPU

    epoch = result["epoch"]
    assert epoch["train_rows"] == 64 and [run["variant"] for run in epoch["runs"]] == ["plain_trainer", "none_fast"]
    assert all(0.0 <= run["dev_accuracy"] <= 1.0 and run["steps"] == 2 for run in epoch["runs"])
    table = (tmp_path / "speed_gpu_step.md").read_text(encoding="utf-8")
    assert "| pseudo_kd_fast | PseudoKDTrainer | fast |" in table and "One epoch of sst2 (64 rows" in table
    assert "less without its compilation" in table


def test_a_spent_time_budget_skips_every_part_and_says_so(benchmark, tmp_path: Path) -> None:
    argv = ["--quick", "--output_dir", str(tmp_path), "--time_budget_s", "0", "--variants", "plain_trainer"]
    assert benchmark.main(argv) == 0
    result = json.loads((tmp_path / "speed_gpu_step.json").read_text(encoding="utf-8"))
    assert result["variants"] == [] and result["epoch"] is None and result["finished"]
    assert [item["part"] for item in result["skipped"]] == ["plain_trainer", "epoch"]  # --variants keeps the epoch
    assert "Skipped epoch: time budget" in (tmp_path / "speed_gpu_step.md").read_text(encoding="utf-8")
