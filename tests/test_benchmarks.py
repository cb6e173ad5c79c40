"""The pure helpers of benchmarks/glue.py and benchmarks/speed.py: no training, no data, no network."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from types import ModuleType

import pytest
import torch
from datasets import Dataset

from pseudo_kd_hf import PseudoKDTrainer, PseudoKDTrainingArguments
from pseudo_kd_hf.regularizers import CLASSIFICATION_ONLY
from tests.helpers.tiny import tiny_bert


@pytest.fixture(scope="module")
def glue() -> ModuleType:
    from benchmarks import glue

    return glue


@pytest.fixture(scope="module")
def report() -> ModuleType:
    from benchmarks import glue_report

    return glue_report


@pytest.fixture(scope="module")
def speed() -> ModuleType:
    from benchmarks import speed

    return speed


# ---- benchmarks.glue: report ----------------------------------------------------------------------------------------


def run(task: str, method: str, seed: int, score: float, wall_s: float = 10.0) -> dict:
    return {
        "name": f"{task}_{method}_seed{seed}",
        "task": task,
        "method": method,
        "seed": seed,
        "score": score,
        "wall_s": wall_s,
    }


def make_grid() -> list[dict]:
    """CoLA: none, ls, kd at seeds 42-44, but ls never finished seed 44. STS-B: none and kd at seeds 42 and 43."""
    return [
        run("cola", "none", 42, 50.0, 10.0),
        run("cola", "none", 43, 54.0, 20.0),
        run("cola", "none", 44, 90.0, 99.0),  # seed 44 is incomplete: left out
        run("cola", "ls", 42, 52.0, 11.0),
        run("cola", "ls", 43, 57.0, 13.0),
        run("cola", "kd", 42, 60.0, 30.0),
        run("cola", "kd", 43, 61.0, 40.0),
        run("cola", "kd", 44, 10.0, 99.0),
        run("stsb", "none", 42, 80.0, 5.0),
        run("stsb", "none", 43, 84.0, 7.0),
        run("stsb", "kd", 42, 86.0, 6.0),
        run("stsb", "kd", 43, 88.0, 8.0),
    ]


def test_summarize_counts_only_the_seeds_where_every_method_finished(report: ModuleType) -> None:
    cola = report.summarize(make_grid())["cola"]
    assert set(cola) == {"none", "ls", "kd"}  # methods never run on the task are absent, not empty
    expected = {  # by hand, over seeds 42 and 43 only: mean, sample std, mean wall
        "none": (52.0, math.sqrt(8.0), 15.0),
        "ls": (54.5, math.sqrt(12.5), 12.0),
        "kd": (60.5, math.sqrt(0.5), 35.0),
    }
    for method, (mean, std, wall) in expected.items():
        row = cola[method]
        assert row["n"] == 2, method
        assert row["seeds"] == [42, 43], method
        assert row["mean"] == pytest.approx(mean), method
        assert row["std"] == pytest.approx(std), method
        assert row["wall_s"] == pytest.approx(wall), method
        assert row["as_none"] is False, method


def test_summarize_single_seed_has_zero_std(report: ModuleType) -> None:
    summary = report.summarize([run("rte", "none", 42, 70.0), run("rte", "ls", 42, 71.0)])
    assert summary["rte"]["ls"] == {
        "mean": 71.0,
        "std": 0.0,
        "n": 1,
        "seeds": [42],
        "wall_s": 10.0,
        "as_none": False,
        "vs_none": {"mean": 1.0, "low": None, "high": None, "n": 1, "seeds": [42]},  # one pair: no interval
    }
    assert summary["rte"]["none"]["vs_none"] is None
    assert "cola" not in summary and "stsb" not in summary


def test_summarize_regression_shows_none_for_the_classification_only_methods(report: ModuleType) -> None:
    stsb = report.summarize(make_grid())["stsb"]
    assert set(stsb) == {"none", "kd", "ls"}  # ls ran on cola; the methods run nowhere are not shown
    assert stsb["ls"]["as_none"] is True
    assert stsb["ls"]["mean"] == pytest.approx(82.0)  # the none runs: 80, 84
    assert stsb["ls"]["std"] == pytest.approx(math.sqrt(8.0))
    assert stsb["ls"]["n"] == 2
    assert stsb["ls"]["vs_none"] is None
    assert stsb["none"]["as_none"] is False
    assert stsb["none"]["mean"] == pytest.approx(82.0)
    assert stsb["kd"]["as_none"] is False  # kd applies to regression: its own runs
    assert stsb["kd"]["mean"] == pytest.approx(87.0)
    assert stsb["kd"]["std"] == pytest.approx(math.sqrt(2.0))
    assert stsb["kd"]["wall_s"] == pytest.approx(7.0)


def test_other_metrics_pair_stsb_spearman_on_the_counted_seeds(glue: ModuleType, report: ModuleType) -> None:
    spearman = {("none", 42): 0.80, ("none", 43): 0.82, ("kd", 42): 0.83, ("kd", 43): 0.86, ("none", 44): 0.99}
    grid = [*make_grid(), run("stsb", "none", 44, 99.0)]
    for result in grid:
        if result["task"] == "stsb":
            result["metrics"] = {"eval_pearson": result["score"] / 100}
            result["metrics"]["eval_spearmanr"] = spearman[result["method"], result["seed"]]
    summary = report.summarize(grid)
    table = report.other_metrics(grid)
    assert set(table) == {"stsb"}  # cola has one metric; mrpc ran nowhere
    stsb = table["stsb"]["spearmanr"]
    assert stsb["none"]["mean"] == pytest.approx(81.0)  # seed 44 has no kd run: left out, as in the score table
    assert stsb["none"]["n"] == 2 and stsb["none"]["vs_none"] is None
    assert stsb["ls"]["as_none"] and stsb["ls"]["mean"] == pytest.approx(81.0) and stsb["ls"]["vs_none"] is None
    assert stsb["kd"]["vs_none"]["mean"] == pytest.approx(3.5)  # 3 and 4 points, paired by seed
    assert stsb["kd"]["vs_none"]["low"] < 3.0 < 4.0 < stsb["kd"]["vs_none"]["high"]

    args = glue.parse_args(["--max_train_samples", "64"])
    lines = report.markdown_table(args, summary, report.glue_average(summary), grid, []).splitlines()
    assert (
        "| stsb, spearmanr | 81.00 ± 1.41 (2) | 81.00 ± 1.41 (2) † | 84.50 ± 2.12 (2), +3.50 [-2.85, +9.85] (2) |"
        in lines
    )


def row(mean: float) -> dict:
    return {"mean": mean, "std": 0.0, "n": 1, "seeds": [42], "wall_s": 1.0, "as_none": False}


def test_reported_methods_follow_methods_order(report: ModuleType) -> None:
    summary = {"cola": {"kd": row(1.0), "ls": row(2.0)}, "rte": {"beta_ls": row(3.0), "none": row(4.0)}}
    assert report.reported_methods(summary) == ["none", "ls", "kd", "beta_ls"]
    assert report.reported_methods({}) == []
    assert report.reported_methods(report.summarize(make_grid())) == ["none", "ls", "kd"]
    assert report.reported_methods({"rte": {"zeta": row(1.0), "alpha_2": row(1.0), "ls": row(1.0)}}) == [
        "ls",
        "alpha_2",
        "zeta",
    ]  # other variants after the methods, by name


def test_glue_average_over_tasks_where_every_reported_method_exists(report: ModuleType) -> None:
    summary = {
        "cola": {"ls": row(40.0), "none": row(30.0)},
        "mrpc": {"none": row(80.0), "ls": row(90.0)},
        "rte": {"none": row(60.0)},  # no ls run: left out of the average
    }
    average = report.glue_average(summary)
    assert average["tasks"] == ["cola", "mrpc"]
    assert average["none"] == pytest.approx(55.0)
    assert average["ls"] == pytest.approx(65.0)
    assert set(average) == {"tasks", "none", "ls"}
    assert report.glue_average({"cola": {"none": row(1.0)}, "rte": {"ls": row(2.0)}}) == {}
    assert report.glue_average({}) == {}


def test_markdown_table(glue: ModuleType, report: ModuleType) -> None:
    args = glue.parse_args(["--max_train_samples", "64", "--alpha", "0.2", "--batch_size", "16"])
    grid = [*make_grid(), run("stsb", "pseudo_kd_tau", 42, 85.0), run("stsb", "pseudo_kd_tau", 43, 85.5)]
    summary = report.summarize(grid)
    average = report.glue_average(summary)
    assert average["tasks"] == ["stsb"]  # cola has no pseudo_kd_tau
    selection = [
        {"task": "cola", "learning_rate": 1e-4, "num_train_epochs": 3.0, "score": 51.5, "wall_s": 12.0},
        {"task": "cola", "learning_rate": 5e-5, "num_train_epochs": 3.0, "score": 49.25, "wall_s": 11.0},
    ]
    text = report.markdown_table(args, summary, average, grid, selection)
    lines = text.splitlines()
    methods = ["none", "ls", "kd", "pseudo_kd_tau"]  # the methods in METHODS order, then the other variants
    header = "| task | " + " | ".join(methods) + " |"
    assert lines[0] == "## GLUE dev results: MiniLM-L6, first 64 training examples of each task"
    assert lines.count(header) == 2  # scores and wall seconds
    assert "alpha 0.2, beta 2.0" in text and "batch 16," in text
    assert "Ran on: cpu (1 run(s) at once)." in text

    cola_row = next(line for line in lines if line.startswith("| cola |") and "±" in line)
    cola_cells = cola_row.strip("| ").split(" | ")[1:]
    assert dict(zip(methods, cola_cells, strict=True)) == {
        "none": "52.00 ± 2.83 (2)",
        "ls": "54.50 ± 3.54 (2)",
        "kd": "60.50 ± 0.71 (2)",
        "pseudo_kd_tau": "not run",
    }
    stsb_line = next(line for line in lines if line.startswith("| stsb |") and "±" in line)
    stsb_cells = dict(zip(methods, stsb_line.strip("| ").split(" | ")[1:], strict=True))
    assert stsb_cells == {
        "none": "82.00 ± 2.83 (2)",
        "ls": "82.00 ± 2.83 (2) †",
        "kd": "87.00 ± 1.41 (2)",
        "pseudo_kd_tau": "85.25 ± 0.35 (2)",
    }
    assert "†" not in cola_row
    footnote = next(line for line in lines if line.startswith("†"))
    assert all(method in footnote for method in CLASSIFICATION_ONLY)

    average_line = next(line for line in lines if line.startswith("| average (stsb) |"))
    assert average_line.split(" | ")[1:3] == ["82.00", "82.00"]

    assert "Only seeds where every method finished are counted: left out cola seeds 44." in lines
    assert "stsb seeds" not in text

    # paired by seed, t(0.975, 1 df) = 12.71: cola ls - none = 2, 3; kd - none = 10, 7;
    # stsb kd - none = 6, 4; pseudo_kd_tau - none = 5, 1.5
    paired_header = lines.index("| task | ls | kd | pseudo_kd_tau |")
    assert lines[paired_header + 2 : paired_header + 4] == [
        "| cola | +2.50 [-3.85, +8.85] (2) | +8.50 [-10.56, +27.56] (2) | - |",
        "| stsb | - | +5.00 [-7.71, +17.71] (2) | +3.25 [-18.99, +25.49] (2) |",
    ]

    stsb_walls = [line for line in lines if line.startswith("| stsb |") and "±" not in line and "[" not in line]
    assert len(stsb_walls) == 1
    walls = dict(zip(methods, stsb_walls[0].strip("| ").split(" | ")[1:], strict=True))
    assert walls == {"none": "6", "ls": "-", "kd": "7", "pseudo_kd_tau": "10"}  # ls shows none: not its own runs
    # the selection runs, sorted by learning rate
    assert lines[-2:] == ["| cola | 5e-05 | 3 | 49.25 | 11 |", "| cola | 0.0001 | 3 | 51.50 | 12 |"]


def test_markdown_table_without_incomplete_seeds_has_no_left_out_note(glue: ModuleType, report: ModuleType) -> None:
    args = glue.parse_args(["--max_train_samples", "8"])
    grid = [run("rte", "none", 42, 60.0), run("rte", "ls", 42, 61.0)]
    summary = report.summarize(grid)
    text = report.markdown_table(args, summary, report.glue_average(summary), grid, [])
    assert "Only seeds where every method finished are counted." in text.splitlines()
    assert "left out" not in text
    assert "†" not in text  # no regression task, so no footnote
    assert "| average (rte) | 60.00 | 61.00 |" in text.splitlines()


# ---- benchmarks.glue: runs ------------------------------------------------------------------------------------------


def test_portable_argv_names_folders_by_role(glue: ModuleType) -> None:
    args = glue.parse_args(["--runs_dir", "/scratch/runs", "--glue_data", "/data/glue"])
    args.model = "/models/minilm"
    argv = [
        "--model_name_or_path", "/models/minilm",
        "--data_dir", "/data/glue",
        "--output_dir", "/scratch/runs/n64/rte/rte_none_seed42",
        "--teacher_name_or_path", "/scratch/runs/n64/rte/rte_select_lr0.0001_ep3_seed0",
        "--learning_rate", "0.0001",
        "--seed", "42",
        "--other", "/elsewhere/scratch/runs",
        "--teacher_logits", str(glue.REPO_ROOT / "benchmarks" / "logits.safetensors"),
    ]  # fmt: skip
    assert glue.portable_argv(args, argv) == [
        "--model_name_or_path", "<model>",
        "--data_dir", "<glue_data>",
        "--output_dir", "<runs_dir>/n64/rte/rte_none_seed42",
        "--teacher_name_or_path", "<runs_dir>/n64/rte/rte_select_lr0.0001_ep3_seed0",
        "--learning_rate", "0.0001",
        "--seed", "42",
        "--other", "/elsewhere/scratch/runs",
        "--teacher_logits", "benchmarks/logits.safetensors",  # a file in the repository: by its path in it
    ]  # fmt: skip


def test_raw_path_separates_subsets(glue: ModuleType, tmp_path: Path) -> None:
    full = glue.parse_args(["--output_dir", str(tmp_path)])
    subset = glue.parse_args(["--output_dir", str(tmp_path), "--max_train_samples", "64"])
    assert glue.raw_path(full, "x") == tmp_path / "raw" / "full" / "x.json"
    assert glue.raw_path(subset, "x") == tmp_path / "raw" / "n64" / "x.json"


def runner_args(glue: ModuleType, tmp_path: Path, deadline: float | None):
    args = glue.parse_args(
        ["--output_dir", str(tmp_path / "out"), "--runs_dir", str(tmp_path / "runs"), "--max_train_samples", "8"]
    )
    args.model = str(tmp_path / "model")
    args.deadline = deadline
    args.jobs = 1
    return args


def forbid_training(glue: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    def run_glue(argv):  # pragma: no cover - the test fails if reached
        pytest.fail(f"run_once trained: {argv}")

    monkeypatch.setattr(glue, "run_glue", run_glue)


def test_run_once_reads_a_finished_run(glue: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_training(glue, monkeypatch)
    settings = {"learning_rate": 1e-4, "num_train_epochs": 3.0}
    stored = {**run("rte", "ls", 43, 66.5), "learning_rate": 1e-4}
    for deadline in (None, time.monotonic() - 1):  # a finished run is read even after the time budget ran out
        args = runner_args(glue, tmp_path, deadline)
        path = glue.raw_path(args, "rte_ls_seed43")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored), encoding="utf-8")
        assert glue.run_once(args, "rte", "ls", 43, settings) == stored
    assert not (tmp_path / "runs").exists()


def test_run_once_past_the_deadline_starts_nothing(
    glue: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_training(glue, monkeypatch)
    args = runner_args(glue, tmp_path, time.monotonic() - 1)
    settings = {"learning_rate": 1e-4, "num_train_epochs": 3.0}
    assert glue.run_once(args, "rte", "none", 42, settings) is None
    assert glue.run_once(args, "rte", "none", 0, settings, name="rte_select_lr0.0001_ep3_seed0") is None
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("code", [143, 130])
def test_a_signal_that_stops_a_run_stops_the_grid(
    glue: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, code: int
) -> None:
    """The runner's exit code after SIGTERM/SIGINT ends the benchmark with that code; the point is not run again as
    a failed trial (which swallowed the signal and trained the run a second time)."""
    calls = []
    monkeypatch.setattr(glue, "run_glue", lambda argv: calls.append(argv) or code)
    argv = ["--tasks", "rte", "--methods", "none", "--select_learning_rates", "1e-4", "--seeds", "42"]
    argv += ["--output_dir", str(tmp_path / "out"), "--runs_dir", str(tmp_path / "runs"), "--model", "unused"]
    assert glue.main(argv) == code
    assert len(calls) == 1
    assert "run rte_select_lr0.0001_ep3_seed0 stopped by SIG" in capsys.readouterr().err
    assert not (tmp_path / "out" / "raw").exists()


def selection_result(name: str, learning_rate: float, score: float) -> dict:
    return {"name": name, "learning_rate": learning_rate, "num_train_epochs": 3.0, "score": score}


@pytest.mark.parametrize("case", ["no weights", "weights kept", "kd runs done", "select only"])
def test_choose_settings_trains_the_kd_teacher_again_only_when_its_weights_are_gone(
    glue: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    args = runner_args(glue, tmp_path, None)
    args.seeds = [42, 43]
    args.select_learning_rates, args.select_epochs = [1e-4, 2e-4], [3.0]
    args.variants = glue.method_variants(glue.METHODS)
    best = selection_result("rte_select_lr0.0002_ep3_seed0", 2e-4, 58.0)
    runs = [selection_result("rte_select_lr0.0001_ep3_seed0", 1e-4, 55.0), best]
    teacher = glue.run_path(args, "rte", best["name"])
    best_file = glue.raw_path(args, best["name"])
    best_file.parent.mkdir(parents=True)
    best_file.write_text(json.dumps(best), encoding="utf-8")
    if case == "weights kept":
        teacher.mkdir(parents=True)
        (teacher / "model.safetensors").write_bytes(b"")
    args.select_only = case == "select only"  # no grid runs follow: no teacher needed
    if case == "kd runs done":
        for seed in args.seeds:
            glue.raw_path(args, f"rte_kd_seed{seed}").write_text("{}", encoding="utf-8")
    calls = []

    def run_once(*call_args):
        calls.append(call_args)
        return {**best, "score": 57.0}

    monkeypatch.setattr(glue, "run_once", run_once)
    settings = glue.choose_settings(args, "rte", runs)
    assert settings == {"learning_rate": 2e-4, "num_train_epochs": 3.0, "teacher": str(teacher)}
    if case == "no weights":
        assert [call[1:] for call in calls] == [
            (
                "rte",
                "none",
                args.select_seed,
                {"learning_rate": 2e-4, "num_train_epochs": 3.0},
                None,
                best["name"],
                True,
            )
        ]
        assert not best_file.exists()  # the stale result goes, so run_once trains instead of reading it
    else:
        assert calls == [] and best_file.exists()
    assert glue.choose_settings(args, "rte", runs[:1]) is None  # a selection run did not finish: no settings


# ---- benchmark_speed -----------------------------------------------------------------------------------------------


def speed_batch(batch_size: int = 4, seq_len: int = 3) -> dict[str, torch.Tensor]:
    return {
        "input_ids": torch.arange(batch_size * seq_len).view(batch_size, seq_len),
        "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long),
        "labels": torch.tensor([0, 1, 1, 0])[:batch_size],
    }


def speed_trainer(speed: ModuleType, tmp_path: Path, method: str) -> PseudoKDTrainer:
    """benchmark_speed's trainer for `method` on the 4-example batch, with a tiny student and teacher."""
    batch, logits = speed_batch(), torch.randn(4, 2)
    args = argparse.Namespace(dtype="fp32", device="cpu", batch_size=4)
    student, teacher = tiny_bert(num_labels=2), tiny_bert(num_labels=2, seed=1)
    train_dataset = speed.training_dataset(method, batch, logits)
    return speed.build_trainer(method, student, teacher, train_dataset, args, str(tmp_path))


@pytest.mark.parametrize(
    ("method", "extra_columns"),
    [("kd_cached", {"teacher_logits"}), ("kd_online", set()), ("ps_kd", {"idx"}), ("none", set()), ("tf_reg", set())],
)
def test_first_batch_carries_the_methods_own_columns(speed: ModuleType, tmp_path: Path, method, extra_columns) -> None:
    batch = speed.first_batch(speed_trainer(speed, tmp_path, method))
    assert set(batch) == {"input_ids", "attention_mask", "labels", *extra_columns}
    assert batch["input_ids"].shape == (4, 3)
    if "teacher_logits" in batch:
        assert batch["teacher_logits"].shape == (4, 2)


def test_first_batch_cs_kd_appends_a_partner_per_example(speed: ModuleType, tmp_path: Path) -> None:
    batch = speed.first_batch(speed_trainer(speed, tmp_path, "cs_kd"))
    assert batch["input_ids"].shape == (8, 3)
    assert (batch["labels"][4:] == -100).all()  # only the anchors count; partners share their class
    rows = {tuple(row): label for row, label in zip(speed_batch()["input_ids"].tolist(), [0, 1, 1, 0], strict=True)}
    assert [rows[tuple(row)] for row in batch["input_ids"][4:].tolist()] == batch["labels"][:4].tolist()


def tiny_trainer(tmp_path: Path, regularization: str, train_dataset: Dataset | None = None) -> PseudoKDTrainer:
    args = PseudoKDTrainingArguments(
        output_dir=str(tmp_path), regularization=regularization, use_cpu=True, report_to="none"
    )
    return PseudoKDTrainer(model=tiny_bert(num_labels=2), args=args, train_dataset=train_dataset)


def state_dict_bytes(model: torch.nn.Module) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in model.state_dict().values())


def test_persistent_state_bytes_none_is_zero(speed: ModuleType, tmp_path: Path) -> None:
    assert speed.persistent_state_bytes(tiny_trainer(tmp_path, "none")) == 0


def test_persistent_state_bytes_beta_ls_is_the_ema_model(speed: ModuleType, tmp_path: Path) -> None:
    trainer = tiny_trainer(tmp_path, "beta_ls")
    expected = state_dict_bytes(trainer.model)
    assert expected > 10_000  # float32 weights of the tiny BERT
    assert speed.persistent_state_bytes(trainer) == expected


def test_persistent_state_bytes_ps_kd_is_the_table(speed: ModuleType, tmp_path: Path) -> None:
    n, k = 10, 2
    train = Dataset.from_dict({"idx": list(range(n)), "label": [i % k for i in range(n)]})
    trainer = tiny_trainer(tmp_path, "ps_kd", train)
    assert speed.persistent_state_bytes(trainer) == n * k * 4 + n * 8


def test_run_once_refuses_a_stored_result_run_with_other_flags(
    glue: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variant named like a method (e.g. a tuned `none`) must not be served the old method's result."""
    forbid_training(glue, monkeypatch)
    args = runner_args(glue, tmp_path, None)
    settings = {"learning_rate": 1e-4, "num_train_epochs": 3.0}
    run_dir = glue.run_path(args, "rte", "rte_none_seed42")
    argv = glue.runner_argv(args, "rte", 42, settings, ["--regularization", "none"], run_dir)
    stored = {**run("rte", "none", 42, 60.0), "argv": [*glue.portable_argv(args, argv), "--use_cpu"]}
    path = glue.raw_path(args, "rte_none_seed42")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(stored), encoding="utf-8")
    assert glue.run_once(args, "rte", "none", 42, settings) == stored  # same flags (--use_cpu aside): read
    with pytest.raises(RuntimeError, match="other flags"):
        glue.run_once(args, "rte", "none", 42, settings, ["--regularization", "none", "--learning_rate", "3e-5"])
