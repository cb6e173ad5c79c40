"""`PseudoKDTrainer.hyperparameter_search(backend="optuna")`: each trial is the run its settings describe."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from pseudo_kd_hf import PseudoKDTrainer
from tests.helpers.tiny import sgd_args, tiny_bert, tiny_dataset

EXAMPLE_ID = "idx"


class Record(TrainerCallback):
    """Each run's method and settings at its start, and its weights at its end."""

    def __init__(self) -> None:
        self.started: list[tuple[str, float]] = []
        self.weights: list[torch.Tensor] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started.append((args.regularization, args.beta))

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.weights.append(torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()]))


def dataset() -> Any:
    return tiny_dataset(8, num_labels=3).map(lambda _, i: {EXAMPLE_ID: i}, with_indices=True)


def base_args(output_dir: str, **settings: Any) -> Any:
    """Two epochs of one step, so PS-KD's table of the first epoch and the EMA model act in the second."""
    return sgd_args(
        output_dir,
        max_steps=-1,
        num_train_epochs=2,
        per_device_train_batch_size=8,
        learning_rate=0.1,
        logging_steps=100,
        **settings,
    )


def trainer_for(args: Any, record: Record) -> PseudoKDTrainer:
    data = dataset()
    return PseudoKDTrainer(
        model_init=lambda: tiny_bert(seed=0), args=args, train_dataset=data, eval_dataset=data, callbacks=[record]
    )


def search(tmp_path: Any, regularization: str, trials: list[dict[str, Any]]) -> Record:
    record = Record()
    trainer = trainer_for(base_args(str(tmp_path / "search"), regularization=regularization), record)
    trainer.hyperparameter_search(
        hp_space=lambda trial: trials[trial.number], backend="optuna", n_trials=len(trials), direction="minimize"
    )
    return record


def direct_run(tmp_path: Any, settings: dict[str, Any]) -> Record:
    record = Record()
    trainer_for(base_args(str(tmp_path / "direct"), **settings), record).train()
    return record


@pytest.mark.parametrize(
    ("regularization", "trials"),
    [
        ("ps_kd", [{"ps_kd_alpha_T": 0.8}, {"ps_kd_alpha_T": 0.8}]),
        ("beta_ls", [{"beta_ls_ema_decay": 0.5}, {"beta_ls_ema_decay": 0.5}]),
        ("pseudo_kd", [{"alpha": 0.3, "pseudo_kd_temperature": 0.5}, {"regularization": "ls", "alpha": 0.4}]),
    ],
)
def test_each_trial_equals_a_direct_run_with_its_settings(tmp_path, regularization, trials):
    """Fresh method state per trial (PS-KD's table, the EMA model), a searched temperature sets beta, a searched
    method is the one that trains."""
    searched = search(tmp_path, regularization, trials)
    for number, settings in enumerate(trials):
        direct = direct_run(tmp_path / str(number), {"regularization": regularization, **settings})
        assert searched.started[number] == direct.started[0]
        assert torch.equal(searched.weights[number], direct.weights[0]), f"trial {number}: {settings}"
    if regularization == "pseudo_kd":
        assert searched.started == [("pseudo_kd", pytest.approx(0.15)), ("ls", 2.0)]


def test_an_out_of_range_trial_is_refused_before_training_starts(tmp_path):
    record = Record()
    trainer = trainer_for(base_args(str(tmp_path)), record)
    with pytest.raises(ValueError, match=r"^alpha must be in \[0, 1\], got 1.5"):
        trainer.hyperparameter_search(
            hp_space=lambda trial: {"alpha": 1.5}, backend="optuna", n_trials=1, direction="minimize"
        )
    assert record.started == []
