"""add_teacher_logits: the teacher's own tokenizer, label reordering, and a disk cache that skips the teacher."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from pseudo_kd_hf import TEACHER_LOGITS_COLUMN
from pseudo_kd_hf.glue.data import load_glue_task
from pseudo_kd_hf.glue.finite import NonFinitePredictionsError
from pseudo_kd_hf.teacher import add_teacher_logits, fingerprint_teacher
from tests.helpers.glue_models import save_tiny_teacher

TEXT_COLUMNS = ("sentence1", "sentence2")


@pytest.fixture
def teacher(tmp_path: Path):
    path = save_tiny_teacher(tmp_path / "teacher", ["not_entailment", "entailment"])
    return AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def count_forwards(model: torch.nn.Module) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def expected_logits(model, tokenizer, dataset: Dataset, max_length: int) -> torch.Tensor:
    """The teacher run directly, one example at a time (no padding)."""
    rows = []
    with torch.no_grad():
        for example in dataset:
            encoded = tokenizer(*(example[c] for c in TEXT_COLUMNS), truncation=True, max_length=max_length)
            rows.append(model(**encoded.convert_to_tensors("pt", prepend_batch_axis=True)).logits[0])
    return torch.stack(rows)


def test_logits_match_the_teacher_and_are_reordered(teacher) -> None:
    model, tokenizer = teacher
    dataset = Dataset.from_dict({"sentence1": ["the a of", "he was not", "in it"], "sentence2": ["to", "she", "be"]})
    with_logits = add_teacher_logits(dataset, model, tokenizer, TEXT_COLUMNS, batch_size=2, max_length=16)
    expected = expected_logits(model, tokenizer, dataset, 16)
    assert with_logits.column_names == [*TEXT_COLUMNS, TEACHER_LOGITS_COLUMN]
    torch.testing.assert_close(torch.tensor(with_logits[TEACHER_LOGITS_COLUMN]), expected, atol=1e-5, rtol=1e-4)
    reordered = add_teacher_logits(dataset, model, tokenizer, TEXT_COLUMNS, max_length=16, label_order=[1, 0])
    torch.testing.assert_close(
        torch.tensor(reordered[TEACHER_LOGITS_COLUMN]), expected[:, [1, 0]], atol=1e-5, rtol=1e-4
    )


def test_second_call_is_served_from_the_cache_without_the_teacher(teacher, shared_glue_data: Path) -> None:
    model, tokenizer = teacher
    train = load_glue_task("rte", shared_glue_data)["train"].select(range(24))
    calls = count_forwards(model)
    first = add_teacher_logits(train, model, tokenizer, TEXT_COLUMNS, batch_size=8, max_length=32)
    assert calls[0] == 3
    second = add_teacher_logits(train, model, tokenizer, TEXT_COLUMNS, batch_size=8, max_length=32)
    assert calls[0] == 3  # nothing recomputed
    assert second.cache_files == first.cache_files
    assert Path(first.cache_files[0]["filename"]).parent == Path(train.cache_files[0]["filename"]).parent
    assert second[TEACHER_LOGITS_COLUMN] == first[TEACHER_LOGITS_COLUMN]
    add_teacher_logits(train, model, tokenizer, TEXT_COLUMNS, batch_size=8, max_length=16)  # another key
    assert calls[0] == 6


def test_fingerprint_follows_the_weights(teacher) -> None:
    model, tokenizer = teacher
    before = fingerprint_teacher(model, tokenizer)
    assert fingerprint_teacher(model, tokenizer) == before
    with torch.no_grad():
        model.classifier.bias.add_(1.0)
    assert fingerprint_teacher(model, tokenizer) != before


def test_missing_text_column_is_named(teacher) -> None:
    model, tokenizer = teacher
    with pytest.raises(ValueError, match="sentence2"):
        add_teacher_logits(Dataset.from_dict({"sentence1": ["a"]}), model, tokenizer, TEXT_COLUMNS)


def test_a_diverged_teacher_never_reaches_the_student(teacher) -> None:
    """NaN logits would train the student on NaN targets; the rows are named by idx."""
    model, tokenizer = teacher
    with torch.no_grad():
        model.classifier.bias[1] = float("nan")
    dataset = Dataset.from_dict({"sentence1": ["the a", "he was"], "sentence2": ["to", "she"], "idx": [5, 8]})
    with pytest.raises(NonFinitePredictionsError, match="for 2 of 2 training examples \\(idx 5, 8\\)"):
        add_teacher_logits(dataset, model, tokenizer, TEXT_COLUMNS)
