"""`--task_name all` (every task, resumable, one submission and one table) and `pseudo-kd-glue-submit`."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import pytest

from pseudo_kd_hf.cli import main
from pseudo_kd_hf.glue.submission import validate_submission, write_leaderboard_file
from pseudo_kd_hf.submit import main as submit_main
from tests.helpers.glue_models import save_tiny_student
from tests.test_cli import assert_one_line_error, leaderboard_rows, run_flags, write_cola, write_wnli


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return save_tiny_student(tmp_path_factory.mktemp("models") / "student", minilm_path)


def test_suite_runs_each_task_resumes_and_packages(
    student: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "glue"
    write_cola(data_dir)
    write_wnli(data_dir)
    root = tmp_path / "suite"
    flags = run_flags(student, root, "all", "--data_dir", data_dir, "--do_train", "--do_eval", "--do_predict")
    flags.append("--keep_checkpoints")  # so that the interruption simulated below has a checkpoint to resume
    with caplog.at_level(logging.INFO, logger="pseudo_kd_hf.suite"), caplog.at_level(logging.INFO, "pseudo_kd_hf.cli"):
        assert main([*flags, "--preset", "paper"]) == 0
    assert "sst2 skipped" in caplog.text
    assert len(leaderboard_rows(root / "cola" / "CoLA.tsv")) == 1063
    assert len(leaderboard_rows(root / "wnli" / "WNLI.tsv")) == 146
    assert validate_submission(root / "submission" / "submission.zip") == []
    filled = (root / "submission" / "FILLED.txt").read_text()
    assert "RTE.tsv" in filled and "CoLA.tsv" not in filled
    table = (root / "results.md").read_text()
    assert "| cola | matthews_correlation |" in table and "| wnli | accuracy |" in table
    assert "| rte | accuracy | not run |" in table

    # An interrupted task (no all_results.json) resumes from its checkpoint; a finished one is skipped.
    (root / "wnli" / "all_results.json").unlink()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pseudo_kd_hf.suite"), caplog.at_level(logging.INFO, "pseudo_kd_hf.cli"):
        assert main([*flags, "--preset", "paper"]) == 0
    assert "cola already finished" in caplog.text
    assert "Resuming from" in caplog.text and str(root / "wnli") in caplog.text
    assert (root / "wnli" / "all_results.json").is_file()


def test_submit_collects_fills_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    rte_run = write_leaderboard_file("rte", [0, 1] * 1500, tmp_path / "runs" / "rte").parent
    wnli_run = write_leaderboard_file("wnli", [1] * 146, tmp_path / "runs" / "wnli").parent
    output_dir = tmp_path / "glue_submissions" / "first"
    assert_one_line_error(capsys, submit_main([str(rte_run), "--output_dir", str(output_dir)]), "fill_missing")
    assert submit_main([str(rte_run), str(wnli_run), "--output_dir", str(output_dir), "--fill_missing"]) == 0
    out = capsys.readouterr().out
    table = {line.split()[0]: line.split() for line in out.splitlines()}
    assert table["RTE.tsv"] == ["RTE.tsv", str(rte_run / "RTE.tsv"), "3000"]
    assert table["AX.tsv"][1] == "filled:" and table["AX.tsv"][-1] == "1104"
    zip_path = output_dir / "submission.zip"
    assert validate_submission(zip_path) == []
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.read("RTE.tsv").decode().splitlines()[1:3] == ["0\tentailment", "1\tnot_entailment"]
    again = [str(rte_run), "--output_dir", str(output_dir), "--fill_missing"]
    assert_one_line_error(capsys, submit_main(again), "overwrite")
    assert submit_main([*again, "--overwrite"]) == 0
