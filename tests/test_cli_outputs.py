"""pseudo-kd-glue as a run_glue.py user expects it: own data files, prediction files, --help, logs."""

from __future__ import annotations

import csv
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pseudo_kd_hf import PseudoKDTrainingArguments, cli
from pseudo_kd_hf.cli import main
from pseudo_kd_hf.custom_data import CustomTask
from pseudo_kd_hf.glue.finite import NonFinitePredictionsError
from pseudo_kd_hf.glue.metrics import compute_custom_metrics
from pseudo_kd_hf.parsing import build_arguments, read_arguments
from pseudo_kd_hf.regularizers import get_regularizer
from pseudo_kd_hf.suite import write_predict_results
from tests.helpers.glue_models import TEACHER_WORDS, save_tiny_student, save_tiny_teacher

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
LABELS = ("happy", "sad", "angry")  # written unsorted; run_glue numbers them in sorted order


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return save_tiny_student(tmp_path_factory.mktemp("models") / "student", minilm_path)


def sentence(row: int, length: int = 5) -> str:
    return " ".join(TEACHER_WORDS[(row * 7 + k * 3) % len(TEACHER_WORDS)] for k in range(length))


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def own_files(folder: Path, regression: bool = False) -> list[str]:
    """Pair-task CSV files: 24 training rows, 9 dev rows, 7 unlabelled test rows."""

    def label(i: int) -> str | float:
        return round((i % 11) / 2, 1) if regression else LABELS[i % 3]

    def rows(count: int, offset: int, labelled: bool = True) -> list[dict]:
        return [
            {"premise": sentence(i + offset), "hypothesis": sentence(i, 3), **({"label": label(i)} if labelled else {})}
            for i in range(count)
        ]

    folder.mkdir(parents=True, exist_ok=True)
    train = write_csv(folder / "train.csv", rows(24, 0))
    dev = write_csv(folder / "dev.csv", rows(9, 1))
    test = write_csv(folder / "test.csv", rows(7, 2, labelled=False))
    return ["--train_file", str(train), "--validation_file", str(dev), "--test_file", str(test)]


def run_flags(student: Path, output_dir: Path, *extra: str | Path) -> list[str]:
    flags = [
        *("--model_name_or_path", student, "--output_dir", output_dir, "--use_cpu", "--report_to", "none"),
        *("--max_seq_length", "48", "--max_steps", "2", "--per_device_train_batch_size", "8"),
        *("--per_device_eval_batch_size", "64", "--disable_tqdm", "true"),
        *extra,
    ]
    return [str(flag) for flag in flags]


def prediction_rows(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "index\tprediction"
    rows = [line.split("\t") for line in lines[1:]]
    assert [row[0] for row in rows] == [str(i) for i in range(len(rows))]
    return [row[1] for row in rows]


# ---- item 1: own data files --------------------------------------------------------------------------------------


def test_own_classification_files_train_evaluate_and_predict(student: Path, tmp_path: Path) -> None:
    output_dir = tmp_path / "run"
    flags = run_flags(student, output_dir, *own_files(tmp_path / "data"), "--regularization", "pseudo_kd")
    assert main([*flags, "--do_train", "--do_eval", "--do_predict"]) == 0
    results = json.loads((output_dir / "eval_results.json").read_text())
    assert {"eval_accuracy", "eval_macro_f1", "eval_loss"} <= set(results) and results["eval_samples"] == 9
    config = json.loads((output_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "angry", "1": "happy", "2": "sad"}
    assert config["label2id"] == {"angry": 0, "happy": 1, "sad": 2}
    predictions = prediction_rows(output_dir / "predict_results_custom.txt")
    assert len(predictions) == 7 and set(predictions) <= set(LABELS)
    assert not list(output_dir.glob("*.tsv"))  # no leaderboard file for your own data


def test_own_regression_files_score_pearson_and_write_scores(student: Path, tmp_path: Path) -> None:
    output_dir = tmp_path / "run"
    flags = run_flags(student, output_dir, *own_files(tmp_path / "data", regression=True), "--regularization", "none")
    assert main([*flags, "--do_train", "--do_eval", "--do_predict"]) == 0
    results = json.loads((output_dir / "eval_results.json").read_text())
    assert {"eval_pearson", "eval_spearmanr"} <= set(results) and "eval_accuracy" not in results
    predictions = prediction_rows(output_dir / "predict_results_custom.txt")
    assert len(predictions) == 7 and all(re.fullmatch(r"-?\d+\.\d{3}", value) for value in predictions)


def test_own_files_with_a_kd_teacher_matched_by_label_name(student: Path, tmp_path: Path) -> None:
    """The teacher names the labels in another order: its logits are mapped onto the student's by name."""
    teacher = save_tiny_teacher(tmp_path / "teacher", list(LABELS))
    flags = run_flags(student, tmp_path / "run", *own_files(tmp_path / "data"), "--do_train", "--regularization", "kd")
    assert main([*flags, "--teacher_name_or_path", str(teacher)]) == 0
    wrong = save_tiny_teacher(tmp_path / "wrong", ["yes", "no", "maybe"])
    assert main([*flags, "--teacher_name_or_path", str(wrong), "--overwrite_output_dir"]) == 2


@pytest.mark.parametrize(
    ("flags", "match"),
    [
        (["--task_name", "rte", "--train_file", "x.csv", "--do_train"], "pass a GLUE task or your own files"),
        (["--train_file", "x.csv", "--do_train", "--preset", "paper"], "drop it with --train_file"),
        (["--train_file", "TRAIN", "--do_eval"], "--do_eval with --train_file needs --validation_file"),
        (["--train_file", "missing.csv", "--do_train"], "--train_file missing.csv: no such file"),
    ],
)
def test_own_files_bad_input_is_one_line(flags: list[str], match: str, tmp_path: Path, capsys) -> None:
    train = own_files(tmp_path / "data")[1]
    code = main([*(train if flag == "TRAIN" else flag for flag in flags), "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and match in err.strip().splitlines()[-1]


def test_custom_metrics_accuracy_macro_f1_and_correlations() -> None:
    task = CustomTask(("sentence",), ("a", "b", "c"))
    logits = np.eye(3)[[0, 1, 2, 2]]
    metrics = compute_custom_metrics(task, logits, np.array([0, 1, 2, 0]))
    assert metrics == {"accuracy": pytest.approx(0.75), "macro_f1": pytest.approx((2 / 3 + 1 + 2 / 3) / 3)}
    regression = CustomTask(("sentence",), ())
    scores = compute_custom_metrics(regression, np.array([[1.0], [2.0], [7.0]]), np.array([10.0, 20.0, 30.0]))
    assert scores["pearson"] == pytest.approx(np.corrcoef([1, 2, 7], [10, 20, 30])[0, 1]) and scores["spearmanr"] == 1
    with pytest.raises(NonFinitePredictionsError):
        compute_custom_metrics(task, np.array([[0.0, np.nan, 1.0]]), np.array([0]))


# ---- item 2: prediction files ------------------------------------------------------------------------------------


def test_predict_results_file_with_max_predict_samples(student: Path, shared_glue_data: Path, tmp_path: Path) -> None:
    """run_glue's predict_results_<task>.txt is written for any number of rows; the leaderboard file only if whole."""
    output_dir = tmp_path / "rte"
    flags = run_flags(student, output_dir, "--task_name", "rte", "--data_dir", shared_glue_data, "--do_predict")
    assert main([*flags, "--max_predict_samples", "5"]) == 0
    predictions = prediction_rows(output_dir / "predict_results_rte.txt")
    assert len(predictions) == 5 and set(predictions) <= {"entailment", "not_entailment"}
    assert not (output_dir / "RTE.tsv").exists()


def test_predict_results_format_and_refusal_of_non_finite_logits(tmp_path: Path) -> None:
    path = tmp_path / "predict_results_x.txt"
    write_predict_results(path, np.array([[0.1, 2.0], [3.0, -1.0]]), ["neg", "pos"])
    assert path.read_text() == "index\tprediction\n0\tpos\n1\tneg\n"
    write_predict_results(path, np.array([[1.23456], [-0.5]]), None)
    assert path.read_text() == "index\tprediction\n0\t1.235\n1\t-0.500\n"
    with pytest.raises(NonFinitePredictionsError):
        write_predict_results(path, np.array([[np.nan], [1.0]]), None)
    assert path.read_text() == "index\tprediction\n0\t1.235\n1\t-0.500\n"  # the previous file stands
    assert [item.name for item in tmp_path.iterdir()] == [path.name]  # no temporary file left


# ---- item 3: --help and config files -----------------------------------------------------------------------------


def test_help_puts_this_projects_flags_first_in_titled_groups(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: pseudo-kd-glue [CONFIG.yaml | CONFIG.json] [--flag VALUE ...]\n")
    assert "flags given after the file override its values" in " ".join(out.split())
    titles = [line[:-1] for line in out.splitlines() if re.fullmatch(r"[A-Z][^ ].*:", line)]
    assert titles == [
        "Label regularisation method (this project)",
        "KD teacher (this project)",
        "Data: a GLUE task or your own files",
        "Model (run_glue.py's flags)",
        "Training (Hugging Face TrainingArguments)",
    ]
    sections = dict(zip(titles, re.split(r"^[A-Z][^ ].*:$", out, flags=re.MULTILINE)[1:], strict=True))
    for title, flags in {
        "Label regularisation method (this project)": ("--regularization", "--alpha", "--beta", "--fast_step"),
        "KD teacher (this project)": ("--teacher_name_or_path", "--kd_online"),
        "Data: a GLUE task or your own files": ("--task_name", "--train_file", "--test_file", "--max_train_samples"),
        "Model (run_glue.py's flags)": ("--model_name_or_path", "--cache_dir"),
        "Training (Hugging Face TrainingArguments)": ("--learning_rate", "--output_dir", "--do_predict"),
    }.items():
        for flag in flags:
            assert re.search(rf"^  {flag} ", sections[title], re.MULTILINE), (flag, title)
    assert "--alpha" not in sections["Training (Hugging Face TrainingArguments)"]


def test_an_invalid_choice_prints_a_short_usage_line(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--task_name", "rte", "--preset", "papr"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    usage, error = err.splitlines()  # one usage line, not 150 flags, then the error
    assert usage == "usage: pseudo-kd-glue [CONFIG.yaml | CONFIG.json] [--flag VALUE ...]"
    assert error.startswith("pseudo-kd-glue: error: argument --preset: invalid choice: 'papr'")


def test_flags_after_a_config_file_override_it(tmp_path: Path) -> None:
    config = tmp_path / "rte.yaml"
    config.write_text("task_name: rte\nseed: 1\nlearning_rate: 3e-5\ndo_train: true\n")
    values = read_arguments([str(config), "--seed", "3", "--alpha", "0.2"])
    assert values == {"task_name": "rte", "seed": 3, "learning_rate": 3e-5, "do_train": True, "alpha": 0.2}
    _, _, args = build_arguments({**values, "output_dir": str(tmp_path)})
    assert (args.seed, args.alpha, args.learning_rate) == (3, 0.2, 3e-5)


# ---- item 4: logs ------------------------------------------------------------------------------------------------


def test_each_method_describes_itself_in_one_line(tmp_path: Path) -> None:
    args = PseudoKDTrainingArguments(output_dir=str(tmp_path), alpha=0.1, beta=0.2, use_cpu=True)
    assert get_regularizer("pseudo_kd")(args).describe() == "Pseudo-KD: alpha 0.1, beta 0.2 (P* = softmax(0.5 z))"
    assert (
        get_regularizer("tf_reg")(args).describe()
        == "tf_reg: alpha 0.1, tf_reg_temperature 20, tf_reg_teacher_prob 0.99"
    )
    assert "Label smoothing: alpha 0.1" in get_regularizer("ls")(args).describe()
    assert args.dataloader_pin_memory is False  # on CPU: torch would warn at every evaluation


def test_run_log_starts_with_the_method_and_says_where_teacher_logits_came_from(
    student: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first line of the run's log names the method; KD says where its teacher logits came from."""
    teacher = save_tiny_teacher(tmp_path / "teacher", list(LABELS))
    flags = run_flags(student, tmp_path / "first", *own_files(tmp_path / "data"), "--do_train", "--regularization")
    flags += ["kd", "--teacher_name_or_path", str(teacher), "--logging_steps", "50"]
    with caplog.at_level(logging.INFO, logger="pseudo_kd_hf"):
        assert main(flags) == 0
        first = [record.getMessage() for record in caplog.records if record.name.startswith("pseudo_kd_hf")][0]
        assert first == "KD: alpha 0.1, temperature 1 (target 0.9 onehot(y) + 0.1 teacher)"
        assert "Teacher logits computed by the teacher for 24 examples: " in caplog.text
        caplog.clear()
        second = [
            *flags[: flags.index("--output_dir") + 1],
            str(tmp_path / "second"),
            *flags[flags.index("--output_dir") + 2 :],
        ]
        assert main(second) == 0
    assert re.search(r"Teacher logits served from the cache: \S+\.arrow", caplog.text)
    state = json.loads((tmp_path / "first" / "trainer_state.json").read_text())
    [end] = [entry for entry in state["log_history"] if "train_runtime" in entry]
    assert {"ce_loss", "regularizer_loss"} <= set(end)  # 2 steps < --logging_steps 50: logged once, at the end


# ---- item 6: small things ----------------------------------------------------------------------------------------


def test_max_train_samples_does_not_change_the_dev_sets_tokenisation_cache(minilm_path: Path, tmp_path: Path) -> None:
    """`datasets` keys `.map`'s cache on the tokenising function and what it captures: not on unrelated flags."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from pseudo_kd_hf.arguments import DataTrainingArguments
    from pseudo_kd_hf.glue.tasks import get_task

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    dev = Dataset.from_dict({"sentence1": ["a b", "c"], "sentence2": ["d", "e f"], "label": [0, 1], "idx": [0, 1]})
    _, _, training_args = build_arguments({"task_name": "rte", "output_dir": str(tmp_path), "use_cpu": True})

    def fingerprint(**settings) -> str:
        data_args = DataTrainingArguments(task_name="rte", **settings)
        return cli.tokenize_split(dev, get_task("rte"), tokenizer, data_args, training_args, 48)._fingerprint

    assert fingerprint(max_train_samples=8) == fingerprint(max_train_samples=16) == fingerprint()
    assert fingerprint(pad_to_max_length=True) != fingerprint()  # a setting the tokenisation uses still counts


def test_unknown_task_name_lists_all_and_explains_ax(tmp_path: Path, capsys) -> None:
    output_dir = ["--output_dir", str(tmp_path), "--do_train"]
    assert main(["--task_name", "foo", *output_dir]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        "cola, sst2" in error and "or all for every task" in error and "ax (the diagnostic set) is not trained" in error
    )
    assert main(["--task_name", "ax", *output_dir]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the mnli model predicts it" in error and "--task_name mnli --do_predict" in error


def test_tensorboard_records_the_loss_parts(tmp_path: Path) -> None:
    """`--report_to tensorboard` gets `ce_loss` and `regularizer_loss` at each logging step and at the end."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from pseudo_kd_hf import PseudoKDTrainer
    from tests.helpers.tiny import sgd_args, tiny_bert, tiny_dataset

    args = sgd_args(str(tmp_path), max_steps=3, logging_steps=2, report_to="tensorboard", regularization="pseudo_kd")
    trainer = PseudoKDTrainer(model=tiny_bert(3), args=args, train_dataset=tiny_dataset(16, 3))
    trainer.train()
    [event_file] = tmp_path.glob("**/events.out.tfevents.*")
    events = EventAccumulator(str(event_file.parent)).Reload()
    logged = [entry for entry in trainer.state.log_history if "ce_loss" in entry]
    assert [entry["step"] for entry in logged] == [2, 3]  # step 2's log, then the end for step 3
    for part in ("ce_loss", "regularizer_loss"):
        scalars = events.Scalars(f"train/{part}")
        assert [scalar.step for scalar in scalars] == [2, 3]
        assert [scalar.value for scalar in scalars] == pytest.approx([entry[part] for entry in logged], rel=1e-6)


@pytest.mark.slow
def test_a_log_written_to_a_file_has_no_escape_codes_or_pin_memory_warnings(student: Path, tmp_path: Path) -> None:
    """The runner as a user starts it, its output sent to a file: transformers' bold load report and nested progress
    bars would write terminal escape codes; every CPU evaluation would warn about pin_memory."""
    flags = run_flags(student, tmp_path / "run", *own_files(tmp_path / "data"), "--do_train", "--do_eval")
    del flags[flags.index("--disable_tqdm") : flags.index("--disable_tqdm") + 2]  # the default, as a user runs it
    log = tmp_path / "log.txt"
    with log.open("w") as output:
        command = [
            sys.executable,
            str(SCRIPTS / "run_glue.py"),
            *flags,
            "--eval_strategy",
            "steps",
            "--eval_steps",
            "1",
        ]
        subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, check=True, cwd=tmp_path)
    text = log.read_text(encoding="utf-8")
    assert "LOAD REPORT" in text  # the message that carried escape codes is there, without them
    assert "\x1b" not in text
    assert "pin_memory" not in text
    assert "\r" not in text and "'ce_loss'" in text  # no progress bars; the Trainer prints its logs as lines


def test_submit_summary_counts_one_file_in_the_singular(tmp_path: Path, capsys) -> None:
    from pseudo_kd_hf.glue.submission import write_leaderboard_file
    from pseudo_kd_hf.submit import main as submit_main

    run = write_leaderboard_file("rte", [0, 1] * 1500, tmp_path / "runs" / "rte").parent
    assert submit_main([str(run), "--output_dir", str(tmp_path / "submission"), "--fill_missing"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].endswith("(1 file from runs, 10 filled).")
