"""`PseudoKDTrainingArguments`: every setting is checked when the arguments are built, naming the field."""

from __future__ import annotations

import dataclasses
import math
import sys

import pytest
import torch
from transformers import TrainingArguments

from pseudo_kd_hf import PseudoKDTrainer, PseudoKDTrainingArguments
from pseudo_kd_hf.cli import main
from tests.helpers.tiny import tiny_bert
from tests.test_cli import assert_one_line_error

OWN_FLOAT_SETTINGS = [
    setting.name
    for setting in dataclasses.fields(PseudoKDTrainingArguments)
    if setting.name not in {inherited.name for inherited in dataclasses.fields(TrainingArguments)}
    and isinstance(setting.default, float)
]


@pytest.mark.parametrize(
    ("method", "field", "value"),
    [
        ("pseudo_kd", "alpha", 1.2),
        ("ls", "alpha", -0.5),
        ("pseudo_kd", "beta", 0.0),
        ("kd", "temperature", -1.0),
        ("pseudo_kd", "regularization", "distill"),
        ("tf_reg", "tf_reg_temperature", 0.0),
        ("tf_reg", "tf_reg_teacher_prob", 1.0),
        ("ps_kd", "ps_kd_alpha_T", 1.5),
        ("cs_kd", "cs_kd_lambda", -0.1),
        ("cs_kd", "cs_kd_temperature", -4.0),
        ("beta_ls", "beta_ls_alpha", 1.1),
        ("beta_ls", "beta_ls_beta", 0.0),
        ("beta_ls", "beta_ls_ema_decay", 1.0),
    ],
)
def test_arguments_are_validated_naming_the_field(tmp_path, method, field, value):
    with pytest.raises(ValueError, match=field):
        PseudoKDTrainingArguments(output_dir=str(tmp_path), **{"regularization": method, field: value})


def test_only_the_chosen_methods_settings_are_range_checked(tmp_path):
    """A setting another method owns is that method's business: out of its range, it is not refused here."""
    args = PseudoKDTrainingArguments(output_dir=str(tmp_path), regularization="ls", ps_kd_alpha_T=1.5, beta=0.0)
    assert (args.ps_kd_alpha_T, args.beta) == (1.5, 0.0)
    with pytest.raises(ValueError, match="ps_kd_alpha_T must be in"):
        PseudoKDTrainingArguments(output_dir=str(tmp_path), regularization="ps_kd", ps_kd_alpha_T=1.5)


INHERITED_FLOATS = ["learning_rate", "max_grad_norm", "adam_beta1", "adam_beta2", "adam_epsilon", "weight_decay"]
INHERITED_FLOATS += ["warmup_steps", "num_train_epochs", "logging_steps", "save_steps", "eval_steps"]


@pytest.mark.parametrize("field", INHERITED_FLOATS)
@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_inherited_float_settings_must_be_finite(tmp_path, field, value):
    with pytest.raises(ValueError, match=rf"^{field} must be a finite number, got {value}\.$"):
        PseudoKDTrainingArguments(output_dir=str(tmp_path), **{field: value})


@pytest.mark.parametrize("flag", ["--learning_rate", "--max_grad_norm", "--adam_beta1", "--adam_epsilon"])
def test_a_non_finite_inherited_flag_is_one_error_line(tmp_path, capsys, flag):
    flags = ["--task_name", "rte", "--do_train", "--output_dir", str(tmp_path / "out")]
    for value in ("nan", "inf"):
        assert_one_line_error(capsys, main([*flags, flag, value]), f"{flag} must be a finite number, got {value}")
    assert not (tmp_path / "out").exists()


def test_building_the_arguments_has_no_side_effects(tmp_path):
    """Building the arguments imports nothing and leaves pin_memory and the fast-step settings to the trainer."""
    args = PseudoKDTrainingArguments(output_dir=str(tmp_path), fast_step=True, regularizer_module="x.y")
    assert args.dataloader_pin_memory is True and args.accelerator_config.non_blocking is False
    assert "x" not in sys.modules
    PseudoKDTrainer(model=tiny_bert(), args=args)  # applies them where they act
    assert args.dataloader_pin_memory is torch.cuda.is_available() and args.accelerator_config.non_blocking is True


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
    with pytest.raises(ValueError, match=r"^beta must be > 0, got 0.0"):  # beta = alpha * tau, in its bounds
        PseudoKDTrainingArguments(output_dir=str(tmp_path), alpha=0.0, pseudo_kd_temperature=2.0)
