"""The runner's arguments: read once from argv or a config file, only what was set; `--preset paper` fills the rest."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pseudo_kd_hf.errors import UsageError
from pseudo_kd_hf.glue.tasks import get_task
from pseudo_kd_hf.parsing import apply_preset, build_arguments, read_arguments


def test_read_arguments_returns_only_what_was_set() -> None:
    values = read_arguments(["--task_name", "rte", "--learning-rate", "3e-5", "--no_remove_unused_columns"])
    assert values == {"task_name": "rte", "learning_rate": 3e-5, "remove_unused_columns": False}


def test_paper_preset_fills_the_rest_and_explicit_flags_win(caplog: pytest.LogCaptureFixture) -> None:
    flags = ["--task_name", "sst2", "--preset", "paper", "--output_dir", "unused"]
    _, _, args = build_arguments(apply_preset(read_arguments(flags), get_task("sst2")))
    # Appendix C's beta column (5 for SST-2) is read as the temperature tau = beta / alpha: beta = 0.1 * 5.
    assert (args.alpha, args.beta, args.per_device_train_batch_size, args.learning_rate) == (0.1, 0.5, 64, 2e-5)
    assert args.pseudo_kd_temperature == 5.0
    # An explicit value wins even where it equals the TrainingArguments default (batch size 8).
    explicit = read_arguments([*flags, "--per_device_train_batch_size", "8", "--learning_rate", "3e-5"])
    _, _, args = build_arguments(apply_preset(explicit, get_task("sst2")))
    assert (args.beta, args.per_device_train_batch_size, args.learning_rate) == (0.5, 8, 3e-5)
    with caplog.at_level(logging.INFO, logger="pseudo_kd_hf.parsing"):
        apply_preset({"task_name": "stsb"}, get_task("stsb"))
    assert "paper lists no STS-B setting" in caplog.text
    assert "per_device_train_batch_size=16 (paper)" in caplog.text


def test_paper_beta_readings_and_the_preset_log_line(caplog: pytest.LogCaptureFixture) -> None:
    flags = ["--task_name", "cola", "--preset", "paper", "--output_dir", "unused"]
    with caplog.at_level(logging.INFO, logger="pseudo_kd_hf.parsing"):
        _, _, args = build_arguments(apply_preset(read_arguments(flags), get_task("cola")))
    assert (args.alpha, args.beta, args.pseudo_kd_temperature) == (0.1, pytest.approx(0.2), 2.0)
    assert "beta=0.2 (paper's beta column 2 read as the temperature tau = beta / alpha" in caplog.text
    caplog.clear()
    literal = read_arguments([*flags, "--paper_beta_reading", "literal"])
    with caplog.at_level(logging.INFO, logger="pseudo_kd_hf.parsing"):
        _, _, args = build_arguments(apply_preset(literal, get_task("cola")))
    assert (args.beta, args.pseudo_kd_temperature) == (2.0, None)
    assert "beta=2, tau=20 (paper's beta column read literally)" in caplog.text
    # Your own beta or temperature wins over either reading.
    _, _, args = build_arguments(apply_preset(read_arguments([*flags, "--beta", "0.3"]), get_task("cola")))
    assert (args.beta, args.pseudo_kd_temperature) == (0.3, None)
    yours = read_arguments([*flags, "--pseudo_kd_temperature", "4", "--paper_beta_reading", "literal"])
    _, _, args = build_arguments(apply_preset(yours, get_task("cola")))
    assert args.beta == pytest.approx(0.4)


def test_pseudo_kd_temperature_sets_beta_and_refuses_beta_beside_it() -> None:
    task = ["--task_name", "rte", "--output_dir", "unused"]
    _, _, args = build_arguments(read_arguments([*task, "--alpha", "0.2", "--pseudo_kd_temperature", "2.5"]))
    assert args.beta == pytest.approx(0.5)
    with pytest.raises(UsageError, match="--pseudo_kd_temperature sets --beta .* not both"):
        build_arguments(read_arguments([*task, "--pseudo_kd_temperature", "2", "--beta", "2"]))
    with pytest.raises(UsageError, match="pseudo_kd_temperature must be > 0"):
        build_arguments(read_arguments([*task, "--pseudo_kd_temperature", "0"]))
    with pytest.raises(UsageError, match="pseudo_kd_temperature must be a finite number"):
        build_arguments(read_arguments([*task, "--pseudo_kd_temperature", "inf"]))


def test_yaml_and_json_config_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "run.yaml"
    # YAML reads 3e-5 as a string: the CLI converts it like the command line would.
    yaml_file.write_text("task_name: sst2\npreset: paper\nlearning_rate: 3e-5\nper_device_train_batch_size: 8\n")
    values = read_arguments([str(yaml_file)])
    _, data_args, args = build_arguments(apply_preset(values, get_task("sst2")))
    assert data_args.task_name == "sst2"
    assert (args.beta, args.per_device_train_batch_size, args.learning_rate) == (0.5, 8, 3e-5)
    json_file = tmp_path / "run.json"
    json_file.write_text(json.dumps({"task_name": "RTE", "regularization": "ls", "alpha": 0.2, "do_eval": True}))
    model_args, data_args, args = build_arguments(read_arguments([str(json_file)]))
    assert (data_args.task_name, args.regularization, args.alpha, args.do_eval) == ("rte", "ls", 0.2, True)
    assert model_args.model_name_or_path == "distilroberta-base"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alpha: [0.1, 0.2]\n", "alpha takes one value, not a list"),
        ("seed: 7.5\n", "seed must be a whole number, got 7.5"),
        ("output_dir: 2024\n", "output_dir must be text, got 2024"),
        ("learning_rate: .inf\n", "--learning_rate must be a finite number, got inf"),
        ("max_grad_norm: .nan\n", "--max_grad_norm must be a finite number, got nan"),
        ("seed: .inf\n", "seed must be a whole number, got inf"),
        ("do_train: null\n", "do_train needs a value, got null"),
        ("alpha: 0.1\nseed: 3\nalpha: 0.2\n", "alpha is given twice (line 4)"),
    ],
)
def test_a_bad_yaml_value_is_one_error_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("task_name: rte\n" + text)
    with pytest.raises(UsageError) as error:
        build_arguments(read_arguments([str(config)]))
    assert message in str(error.value)


def test_a_duplicate_json_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text('{"task_name": "rte", "alpha": 0.1, "alpha": 0.2}')
    with pytest.raises(UsageError, match=r"run.json: alpha is given twice; keep one"):
        read_arguments([str(config)])
