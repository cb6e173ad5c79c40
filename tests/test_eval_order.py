"""Evaluation and prediction run in batches of similar length; every output comes back in dataset order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding, EvalPrediction, Trainer
from transformers.trainer_utils import PredictionOutput

from pseudo_kd_hf import PseudoKDTrainer
from pseudo_kd_hf.length_order import LengthSortedSampler, in_dataset_order
from tests.helpers.glue_models import word_level_tokenizer
from tests.helpers.tiny import sgd_args, tiny_bert

VOCAB_SIZE = 24  # word_level_tokenizer's vocabulary


def varied_lengths(num_examples: int = 37) -> Dataset:
    generator = torch.Generator().manual_seed(3)
    lengths = torch.randint(2, 30, (num_examples,), generator=generator).tolist()
    return Dataset.from_dict(
        {
            "input_ids": [torch.randint(4, VOCAB_SIZE, (n,), generator=generator).tolist() for n in lengths],
            "attention_mask": [[1] * n for n in lengths],
            "label": torch.randint(0, 3, (num_examples,), generator=generator).tolist(),
        }
    )


def predicting_trainer(
    tmp_path: Path, file_order: bool, monkeypatch: pytest.MonkeyPatch, **settings: object
) -> PseudoKDTrainer:
    if file_order:  # today's batches: the Trainer's sequential sampler
        monkeypatch.setattr(PseudoKDTrainer, "_get_eval_sampler", Trainer._get_eval_sampler)
    model = tiny_bert()
    tokenizer = word_level_tokenizer()
    args = sgd_args(str(tmp_path), per_device_eval_batch_size=8, **settings)
    trainer = PseudoKDTrainer(
        model=model,
        args=args,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=first_label_and_accuracy,
    )
    trainer.padded_lengths = []
    record = trainer.padded_lengths.append
    trainer.model.register_forward_pre_hook(
        lambda _, args, kwargs: record(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    return trainer


def predict_in_file_order(tmp_path: Path, dataset: Dataset, monkeypatch: pytest.MonkeyPatch) -> PredictionOutput:
    """What a Trainer in today's file order predicts on `dataset`."""
    with monkeypatch.context() as patch:
        return predicting_trainer(tmp_path, file_order=True, monkeypatch=patch).predict(dataset)


def file_order_padding(dataset: Dataset, batch_size: int = 8) -> list[int]:
    """The padded length of each batch of `batch_size` rows in file order."""
    lengths = [len(ids) for ids in dataset["input_ids"]]
    return [max(lengths[k : k + batch_size]) for k in range(0, len(lengths), batch_size)]


def first_label_and_accuracy(prediction: EvalPrediction) -> dict[str, float]:
    """The first row's label shows which row the metrics see first."""
    accuracy = (prediction.predictions.argmax(-1) == prediction.label_ids).mean()
    return {"first_label": float(prediction.label_ids[0]), "accuracy": float(accuracy)}


def test_batches_are_grouped_by_length_and_outputs_match_file_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = varied_lengths()
    old_output = predict_in_file_order(tmp_path, dataset, monkeypatch)
    new = predicting_trainer(tmp_path, file_order=False, monkeypatch=monkeypatch)
    new_output = new.predict(dataset)
    assert np.array_equal(new_output.label_ids, dataset["label"])  # dataset order
    assert new_output.metrics["test_first_label"] == dataset["label"][0]  # metrics saw dataset order too
    np.testing.assert_allclose(new_output.predictions, old_output.predictions, rtol=0, atol=1e-5)
    assert np.array_equal(new_output.predictions.argmax(-1), old_output.predictions.argmax(-1))
    assert new_output.metrics["test_accuracy"] == old_output.metrics["test_accuracy"]
    assert new_output.metrics["test_loss"] == pytest.approx(old_output.metrics["test_loss"], rel=1e-6)
    # each row predicted alone, unpadded: the same outputs, row for row
    alone = np.concatenate([new.predict(dataset.select([i])).predictions for i in range(len(dataset))])
    np.testing.assert_allclose(new_output.predictions, alone, rtol=0, atol=1e-5)


def test_evaluation_pads_less_than_file_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = varied_lengths()
    trainer = predicting_trainer(tmp_path, file_order=False, monkeypatch=monkeypatch)
    trainer.evaluate(dataset)
    lengths = [len(ids) for ids in dataset["input_ids"]]
    longest_first = sorted(lengths, reverse=True)
    assert trainer.padded_lengths == [longest_first[k] for k in range(0, len(lengths), 8)]
    assert sum(trainer.padded_lengths) < sum(file_order_padding(dataset))


def test_eval_sort_by_length_false_keeps_the_trainers_file_order_bit_for_bit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = varied_lengths()
    old_output = predict_in_file_order(tmp_path, dataset, monkeypatch)
    off = predicting_trainer(tmp_path, file_order=False, monkeypatch=monkeypatch, eval_sort_by_length=False)
    off_output = off.predict(dataset)
    assert off.padded_lengths == file_order_padding(dataset)
    assert np.array_equal(off_output.predictions, old_output.predictions)
    assert off_output.metrics["test_loss"] == old_output.metrics["test_loss"]


def test_in_dataset_order_inverts_the_sampler() -> None:
    sampler = LengthSortedSampler([3, 5, 5, 1, 4])
    assert list(sampler) == [1, 2, 4, 0, 3]  # longest first, ties in dataset order
    rows = np.array([[10.0], [20.0], [40.0], [0.0], [30.0]])[list(sampler)]  # in iteration order
    restored = in_dataset_order((rows, {"labels": rows[:, 0]}), sampler.order)
    assert restored[0][:, 0].tolist() == [10.0, 20.0, 40.0, 0.0, 30.0]
    assert restored[1]["labels"].tolist() == [10.0, 20.0, 40.0, 0.0, 30.0]
