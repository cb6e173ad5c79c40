"""`PseudoKDTrainingArguments`: every setting is checked when the arguments are built, naming the field."""

from __future__ import annotations

import dataclasses
import math

import pytest
from transformers import TrainingArguments

from pseudo_kd_hf import PseudoKDTrainingArguments
from pseudo_kd_hf.cli import main
from tests.test_cli import assert_one_line_error

OWN_FLOAT_SETTINGS = [
    setting.name
    for setting in dataclasses.fields(PseudoKDTrainingArguments)
    if setting.name not in {inherited.name for inherited in dataclasses.fields(TrainingArguments)}
    and isinstance(setting.default, float)
]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alpha", 1.2),
        ("alpha", -0.5),
        ("beta", 0.0),
        ("temperature", -1.0),
        ("regularization", "distill"),
        ("tf_reg_temperature", 0.0),
        ("tf_reg_teacher_prob", 1.0),
        ("ps_kd_alpha_T", 1.5),
        ("cs_kd_lambda", -0.1),
        ("cs_kd_temperature", -4.0),
        ("beta_ls_alpha", 1.1),
        ("beta_ls_beta", 0.0),
        ("beta_ls_ema_decay", 1.0),
    ],
)
def test_arguments_are_validated_naming_the_field(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        PseudoKDTrainingArguments(output_dir=str(tmp_path), **{field: value})


def test_every_float_setting_is_covered():
    assert len(OWN_FLOAT_SETTINGS) == 11 and "beta" in OWN_FLOAT_SETTINGS


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("field", OWN_FLOAT_SETTINGS)
def test_non_finite_settings_are_refused_naming_the_field(tmp_path, field, value):
    with pytest.raises(ValueError, match=rf"^{field} must be a finite number"):
        PseudoKDTrainingArguments(output_dir=str(tmp_path), **{field: value})


def test_infinite_beta_points_to_label_smoothing(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"--regularization ls is Pseudo-KD's beta -> inf limit"):
        PseudoKDTrainingArguments(output_dir=str(tmp_path), beta=math.inf)
    flags = ["--task_name", "rte", "--do_train", "--output_dir", str(tmp_path / "out")]
    assert_one_line_error(capsys, main([*flags, "--beta", "inf"]), "beta must be a finite number")
    assert_one_line_error(capsys, main([*flags, "--temperature", "nan"]), "temperature must be a finite number")


def test_label_smoothing_factor_is_refused(tmp_path):
    with pytest.raises(ValueError, match="regularization='ls'"):
        PseudoKDTrainingArguments(output_dir=str(tmp_path), label_smoothing_factor=0.1)


def test_cs_kd_refuses_batch_rebalance_sampling(tmp_path):
    with pytest.raises(ValueError, match="train_sampling_strategy"):
        PseudoKDTrainingArguments(
            output_dir=str(tmp_path), regularization="cs_kd", train_sampling_strategy="batch_rebalance"
        )


def test_pseudo_kd_temperature_sets_beta_and_a_contradicting_beta_is_refused(tmp_path) -> None:
    args = PseudoKDTrainingArguments(output_dir=str(tmp_path), alpha=0.1, pseudo_kd_temperature=2.0)
    assert args.beta == pytest.approx(0.2)
    # The same pair again (e.g. arguments saved and read back) is consistent, not a contradiction.
    again = PseudoKDTrainingArguments(output_dir=str(tmp_path), alpha=0.1, beta=args.beta, pseudo_kd_temperature=2.0)
    assert again.beta == pytest.approx(0.2)
    with pytest.raises(ValueError, match="pseudo_kd_temperature or beta, not both"):
        PseudoKDTrainingArguments(output_dir=str(tmp_path), alpha=0.1, beta=0.7, pseudo_kd_temperature=2.0)
    with pytest.raises(ValueError, match="use alpha > 0"):
        PseudoKDTrainingArguments(output_dir=str(tmp_path), alpha=0.0, pseudo_kd_temperature=2.0)
