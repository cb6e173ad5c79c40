"""pseudo-kd-glue: flags, one-line errors, offline end-to-end runs (see also test_parsing.py, test_suite.py)."""

from __future__ import annotations

import json
import logging
import runpy
import shutil
import sys
from pathlib import Path

import pytest

from pseudo_kd_hf import cli, run_folder
from pseudo_kd_hf.cli import main
from pseudo_kd_hf.glue.tasks import SUBMISSION_FILES
from pseudo_kd_hf.parsing import build_arguments, read_arguments
from pseudo_kd_hf.submit import main as submit_main
from pseudo_kd_hf.teacher_file import main as teacher_logits_main
from tests.helpers.glue_models import TEACHER_WORDS, save_tiny_student, save_tiny_teacher

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
NLI_LABELS = ("entailment", "neutral", "contradiction")


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return save_tiny_student(tmp_path_factory.mktemp("models") / "student", minilm_path)


def run_flags(student: Path, output_dir: Path, task: str = "rte", *extra: str | Path) -> list[str]:
    """A few CPU steps of a tiny model: enough to exercise every stage in seconds."""
    flags = [
        *("--model_name_or_path", student, "--task_name", task, "--output_dir", output_dir),
        *("--use_cpu", "--report_to", "none", "--max_seq_length", "48", "--max_steps", "2"),
        *("--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "64", "--disable_tqdm", "true"),
        *extra,
    ]
    return [str(flag) for flag in flags]


def sentence(row: int, length: int = 5) -> str:
    return " ".join(TEACHER_WORDS[(row * 7 + k * 3) % len(TEACHER_WORDS)] for k in range(length))


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_wnli(data_dir: Path, test_rows: int = 146) -> None:
    """WNLI in the original layout (header `index sentence1 sentence2 label`, labels 0/1)."""
    for name, rows in (("train.tsv", 16), ("dev.tsv", 8)):
        body = [f"{i}\t{sentence(i)}\t{sentence(i + 1, 3)}\t{i % 2}" for i in range(rows)]
        write_lines(data_dir / "WNLI" / name, ["index\tsentence1\tsentence2\tlabel", *body])
    body = [f"{i}\t{sentence(i)}\t{sentence(i + 2, 3)}" for i in range(test_rows)]
    write_lines(data_dir / "WNLI" / "test.tsv", ["index\tsentence1\tsentence2", *body])


def write_cola(data_dir: Path, test_rows: int = 1063) -> None:
    """CoLA in the original layout (no header in train/dev: source, label, mark, sentence)."""
    for name, rows in (("train.tsv", 16), ("dev.tsv", 8)):
        write_lines(data_dir / "CoLA" / name, [f"gj04\t{i % 2}\t\t{sentence(i)}" for i in range(rows)])
    write_lines(data_dir / "CoLA" / "test.tsv", ["index\tsentence", *(f"{i}\t{sentence(i)}" for i in range(test_rows))])


def write_mnli(data_dir: Path, test_rows: tuple[int, int], diagnostic_rows: int | None) -> None:
    """MNLI (text in fields 8 and 9, gold label last) and, unless None, the diagnostic set AX."""
    parses = "\t".join(["(a)", "(b)", "(ROOT a)", "(ROOT b)"])
    base = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse"
    base += "\tsentence2_parse\tsentence1\tsentence2"

    def labeled(rows: int, offset: int) -> list[str]:
        return [
            f"{i}\t{i}\t{i}n\tfiction\t{parses}\t{sentence(i + offset)}\t{sentence(i, 3)}\t{NLI_LABELS[i % 3]}"
            for i in range(rows)
        ]

    write_lines(data_dir / "MNLI" / "train.tsv", [base + "\tgold_label", *labeled(24, 0)])
    for name, offset in (("dev_matched.tsv", 1), ("dev_mismatched.tsv", 2)):
        write_lines(data_dir / "MNLI" / name, [base + "\tgold_label", *labeled(6, offset)])
    for name, rows in zip(("test_matched.tsv", "test_mismatched.tsv"), test_rows, strict=True):
        body = [f"{i}\t{i}\t{i}\tslate\t{parses}\t{sentence(i)}\t{sentence(i + 1, 3)}" for i in range(rows)]
        write_lines(data_dir / "MNLI" / name, [base, *body])
    if diagnostic_rows is not None:
        body = [f"{i}\t{sentence(i)}\t{sentence(i + 3, 4)}" for i in range(diagnostic_rows)]
        write_lines(data_dir / "diagnostic" / "diagnostic.tsv", ["index\tsentence1\tsentence2", *body])


def leaderboard_rows(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "index\tprediction"
    rows = [line.split("\t") for line in lines[1:]]
    assert [row[0] for row in rows] == [str(i) for i in range(len(rows))]
    return rows


def assert_one_line_error(capsys: pytest.CaptureFixture[str], code: int, match: str) -> None:
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1 and error_lines[0] == err.strip().splitlines()[-1]
    assert match in error_lines[0]


# ---- flags, presets, config files -----------------------------------------------------------------------------


def test_help_lists_the_project_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--model_name_or_path",
        "--task_name",
        "--data_dir",
        "--max_seq_length",
        "--max_predict_samples",
        "--preset",
        "--regularization",
        "--alpha",
        "--beta",
        "--temperature",
        "--teacher_name_or_path",
        "--kd_online",
        "--overwrite_output_dir",
        "--do_predict",
        "--output_dir",
    ):
        assert flag in out
    with pytest.raises(SystemExit) as exit_info:
        submit_main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "RUN_DIR" in out and "--fill_missing" in out and "--overwrite" in out


def test_scripts_call_the_console_entry_points(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    for script, flag in (("run_glue.py", "--kd_online"), ("submit_glue.py", "--fill_missing")):
        monkeypatch.setattr(sys, "argv", [script, "--help"])
        with pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(SCRIPTS / script), run_name="__main__")
        assert exit_info.value.code == 0
        assert flag in capsys.readouterr().out


# ---- bad input: one line, exit code 2 -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--task_name", "foo", "--do_train"], "--task_name 'foo' is not a GLUE task"),
        (["--do_train"], "--task_name is required"),
        (["--task_name", "ax", "--do_predict"], "--task_name mnli --do_predict"),
        (["--task_name", "rte", "--do_train", "--alpha", "1.5"], "alpha must be in [0, 1]"),
        (["--task_name", "rte", "--do_train", "--beta", "0"], "beta must be > 0"),
        (
            ["--task_name", "rte", "--do_train", "--regularization", "kd", "--temperature", "0"],
            "temperature must be > 0",
        ),
        (["--task_name", "rte"], "Nothing to do"),
        (["--task_name", "rte", "--do_train", "--regularization", "kd"], "pass --teacher_name_or_path"),
        (["--task_name", "rte", "--do_train", "--teacher_name_or_path", "t"], "only by --regularization kd"),
        (["--task_name", "rte", "--do_train", "--kd_online"], "--kd_online runs a teacher"),
        (["--task_name", "rte", "--do_eval", "--model_name_or_path", "./no/such/model"], "no such folder"),
    ],
)
def test_bad_flags_fail_with_one_line(flags: list[str], match: str, capsys, tmp_path: Path) -> None:
    assert_one_line_error(capsys, main([*flags, "--output_dir", str(tmp_path / "out")]), match)


def test_bad_config_files_fail_with_one_line(tmp_path: Path, capsys) -> None:
    assert_one_line_error(capsys, main([str(tmp_path / "missing.json")]), "not found")
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"task_name": "rte", "learning_rat": 1e-5}))
    assert_one_line_error(capsys, main([str(unknown)]), "unknown arguments learning_rat")
    not_a_number = tmp_path / "bad.yaml"
    not_a_number.write_text("task_name: rte\nlearning_rate: fast\n")
    assert_one_line_error(capsys, main([str(not_a_number)]), "learning_rate must be a number")


def test_data_dir_without_the_task_files_fails_with_one_line(tmp_path: Path, capsys) -> None:
    flags = ["--task_name", "rte", "--do_eval", "--output_dir", str(tmp_path / "out"), "--use_cpu"]
    assert_one_line_error(capsys, main([*flags, "--data_dir", str(tmp_path)]), "RTE")
    write_lines(tmp_path / "RTE" / "train.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment"])
    assert_one_line_error(capsys, main([*flags, "--data_dir", str(tmp_path)]), "dev.tsv")


def test_non_empty_output_dir_is_not_trained_over(tmp_path: Path, capsys) -> None:
    output_dir = tmp_path / "out"
    write_lines(output_dir / "notes.txt", ["mine"])
    flags = ["--task_name", "rte", "--do_train", "--output_dir", str(output_dir), "--use_cpu"]
    assert_one_line_error(capsys, main(flags), "--overwrite_output_dir")
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"):
        write_lines(output_dir / "checkpoint-7" / name, ["{}"])
    _, _, args = build_arguments(read_arguments(flags))
    assert run_folder.last_checkpoint(args, overwrite_output_dir=False) == str(output_dir / "checkpoint-7")
    assert run_folder.last_checkpoint(args, overwrite_output_dir=True) is None


def test_teacher_with_other_labels_or_vocabulary_fails_with_one_line(
    student: Path, shared_glue_data: Path, tmp_path: Path, capsys
) -> None:
    three_labels = save_tiny_teacher(tmp_path / "nli_teacher", list(NLI_LABELS))
    flags = run_flags(student, tmp_path / "out", "rte", "--data_dir", shared_glue_data, "--do_train")
    flags += ["--max_train_samples", "8", "--regularization", "kd"]
    assert_one_line_error(capsys, main([*flags, "--teacher_name_or_path", str(three_labels)]), "3 labels")
    teacher = save_tiny_teacher(tmp_path / "teacher", ["entailment", "not_entailment"])
    assert_one_line_error(capsys, main([*flags, "--teacher_name_or_path", str(teacher), "--kd_online"]), "vocabulary")


# ---- end to end -----------------------------------------------------------------------------------------------


def test_rte_train_eval_predict(student: Path, shared_glue_data: Path, tmp_path: Path) -> None:
    output_dir = tmp_path / "rte"
    flags = run_flags(student, output_dir, "rte", "--data_dir", shared_glue_data, "--regularization", "pseudo_kd")
    flags += ["--do_train", "--do_eval", "--do_predict", "--max_train_samples", "64", "--max_eval_samples", "32"]
    assert main(flags) == 0
    eval_results = json.loads((output_dir / "eval_results.json").read_text())
    assert {"eval_accuracy", "eval_loss", "eval_samples", "epoch"} <= set(eval_results)
    assert eval_results["eval_samples"] == 32
    all_results = json.loads((output_dir / "all_results.json").read_text())
    assert {"train_loss", "train_samples", "eval_accuracy"} <= set(all_results)
    assert all_results["train_samples"] == 64
    rows = leaderboard_rows(output_dir / "RTE.tsv")
    assert len(rows) == 3000
    assert {row[1] for row in rows} <= {"entailment", "not_entailment"}
    config = json.loads((output_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "entailment", "1": "not_entailment"}


def test_kd_caches_teacher_logits_and_reuses_them(
    student: Path, shared_glue_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The teacher has its own tokenizer and label order; a second run takes its logits from the datasets cache."""
    teacher = save_tiny_teacher(tmp_path / "teacher", ["not_entailment", "entailment"])
    forward_calls = []
    load_teacher = cli._load_teacher

    def counting_load_teacher(*args):
        model, tokenizer = load_teacher(*args)
        model.register_forward_hook(lambda *_: forward_calls.append(1))
        return model, tokenizer

    monkeypatch.setattr(cli, "_load_teacher", counting_load_teacher)
    flags = ["--data_dir", shared_glue_data, "--do_train", "--max_train_samples", "48", "--regularization", "kd"]
    flags += ["--teacher_name_or_path", teacher, "--alpha", "0.5", "--temperature", "2"]
    assert main(run_flags(student, tmp_path / "first", "rte", *flags)) == 0
    assert len(forward_calls) == 1  # 48 examples in one teacher batch (--per_device_eval_batch_size 64)
    assert main(run_flags(student, tmp_path / "second", "rte", *flags)) == 0
    assert len(forward_calls) == 1
    first, second = (json.loads((tmp_path / run / "train_results.json").read_text()) for run in ("first", "second"))
    assert first["train_loss"] == pytest.approx(second["train_loss"])


def test_kd_from_a_teacher_logits_file_with_the_teacher_gone(
    student: Path, shared_glue_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The file's logits train the same student as the teacher itself; a file for other data is refused in one line."""
    teacher = save_tiny_teacher(tmp_path / "teacher", ["not_entailment", "entailment"])
    logits_file = tmp_path / "rte_teacher.safetensors"
    teacher_flags = ["--task_name", "rte", "--data_dir", shared_glue_data, "--teacher_name_or_path", teacher]
    teacher_flags += ["--max_seq_length", "48"]  # as run_flags: the same logits as the in-run cache
    assert teacher_logits_main([str(flag) for flag in [*teacher_flags, "--output_file", logits_file]]) == 0
    flags = ["--data_dir", shared_glue_data, "--do_train", "--max_train_samples", "48", "--regularization", "kd"]
    flags += ["--alpha", "0.5", "--temperature", "2"]
    assert main(run_flags(student, tmp_path / "online_cache", "rte", *flags, "--teacher_name_or_path", teacher)) == 0
    shutil.rmtree(teacher)
    assert main(run_flags(student, tmp_path / "from_file", "rte", *flags, "--teacher_logits", logits_file)) == 0
    from_teacher, from_file = (
        json.loads((tmp_path / run / "train_results.json").read_text()) for run in ("online_cache", "from_file")
    )
    assert from_file["train_loss"] == pytest.approx(from_teacher["train_loss"], rel=1e-5)
    capsys.readouterr()
    # Made for RTE's training split: refused for MRPC (another task), and beside --teacher_name_or_path.
    assert main(run_flags(student, tmp_path / "mrpc", "mrpc", *flags, "--teacher_logits", logits_file)) == 2
    assert "another task" in capsys.readouterr().err
    both = [*flags, "--teacher_logits", logits_file, "--teacher_name_or_path", teacher]
    assert main(run_flags(student, tmp_path / "both", "rte", *both)) == 2
    assert "not both" in capsys.readouterr().err
    no_kd = ["--data_dir", shared_glue_data, "--do_train", "--regularization", "ls", "--teacher_logits", logits_file]
    assert main(run_flags(student, tmp_path / "ls", "rte", *no_kd)) == 2
    assert "--teacher_logits is used only by --regularization kd" in capsys.readouterr().err


def test_mnli_evaluates_both_dev_sets_and_skips_incomplete_files(
    student: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_mnli(tmp_path / "glue", test_rows=(5, 4), diagnostic_rows=None)
    output_dir = tmp_path / "mnli"
    flags = run_flags(student, output_dir, "mnli", "--data_dir", tmp_path / "glue", "--do_train", "--do_eval")
    with caplog.at_level(logging.WARNING, logger="pseudo_kd_hf.suite"):
        assert main([*flags, "--do_predict"]) == 0
    eval_results = json.loads((output_dir / "eval_results.json").read_text())
    assert {"eval_accuracy", "eval_accuracy_mm", "eval_samples", "eval_samples_mm"} <= set(eval_results)
    assert "AX.tsv skipped" in caplog.text
    assert "MNLI-m.tsv not written" in caplog.text and "MNLI-mm.tsv not written" in caplog.text
    assert not list(output_dir.glob("*.tsv"))


def test_mnli_writes_matched_mismatched_and_ax_files(student: Path, tmp_path: Path) -> None:
    sizes = {key: SUBMISSION_FILES[key].num_rows for key in ("mnli_matched", "mnli_mismatched", "ax")}
    write_mnli(tmp_path / "glue", (sizes["mnli_matched"], sizes["mnli_mismatched"]), sizes["ax"])
    output_dir = tmp_path / "mnli"
    flags = run_flags(student, output_dir, "mnli", "--data_dir", tmp_path / "glue", "--do_train", "--do_predict")
    assert main(flags) == 0
    for key, size in sizes.items():
        rows = leaderboard_rows(output_dir / SUBMISSION_FILES[key].file_name)
        assert len(rows) == size
        assert {row[1] for row in rows} <= set(NLI_LABELS)


def test_stsb_regression_predicts_clipped_scores(student: Path, shared_glue_data: Path, tmp_path: Path) -> None:
    output_dir = tmp_path / "stsb"
    flags = run_flags(student, output_dir, "stsb", "--data_dir", shared_glue_data, "--do_train", "--do_eval")
    flags += ["--do_predict", "--max_train_samples", "32", "--max_eval_samples", "32", "--preset", "paper"]
    assert main(flags) == 0
    assert {"eval_pearson", "eval_spearmanr", "eval_combined_score"} <= set(
        json.loads((output_dir / "eval_results.json").read_text())
    )
    scores = [float(row[1]) for row in leaderboard_rows(output_dir / "STS-B.tsv")]
    assert len(scores) == 1379 and all(0.0 <= score <= 5.0 for score in scores)
