"""PseudoKDTrainer refuses heads its losses do not fit (multi-label, per-token) when it is built."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForTokenClassification
from transformers.models.auto.modeling_auto import MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES

from pseudo_kd_hf import PseudoKDTrainer
from pseudo_kd_hf.cli import main
from pseudo_kd_hf.trainer import UnsupportedHeadError
from tests.helpers.glue_models import save_tiny_student
from tests.helpers.tiny import SEQ_LEN, VOCAB, sgd_args, tiny_bert, tiny_dataset
from tests.test_cli import assert_one_line_error, run_flags

SUPPORTED = "supports single-label classification and regression"


def tiny_token_classifier(num_labels: int = 3) -> BertForTokenClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    config.num_labels = num_labels
    return BertForTokenClassification(config)


def test_a_multi_label_head_is_refused_when_the_trainer_is_built(tmp_path: Path) -> None:
    model = tiny_bert(problem_type="multi_label_classification")
    with pytest.raises(UnsupportedHeadError, match=f"multi-label head .*{SUPPORTED}"):
        PseudoKDTrainer(model=model, args=sgd_args(str(tmp_path)), train_dataset=tiny_dataset())


def test_a_token_classification_head_is_refused_when_the_trainer_is_built(tmp_path: Path) -> None:
    # SEQ_LEN labels: the padded length equals num_labels, where the loss would be silently wrong.
    model = tiny_token_classifier(num_labels=SEQ_LEN)
    with pytest.raises(UnsupportedHeadError, match=f"BertForTokenClassification.*{SUPPORTED}"):
        PseudoKDTrainer(model=model, args=sgd_args(str(tmp_path)), train_dataset=tiny_dataset(num_labels=SEQ_LEN))
    with pytest.raises(UnsupportedHeadError):  # also from model_init
        PseudoKDTrainer(model_init=lambda: tiny_token_classifier(), args=sgd_args(str(tmp_path)))


def test_every_auto_token_classifier_is_named_like_one() -> None:
    """The refusal reads the class name: every class transformers maps for token classification matches it."""
    names = MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES.values()
    assert names and all(name.endswith("ForTokenClassification") for name in names)


@pytest.mark.parametrize("num_labels, problem_type", [(3, None), (3, "single_label_classification"), (1, "regression")])
def test_single_label_and_regression_heads_are_accepted(tmp_path: Path, num_labels: int, problem_type) -> None:
    model = tiny_bert(num_labels=num_labels, problem_type=problem_type)
    PseudoKDTrainer(model=model, args=sgd_args(str(tmp_path)), train_dataset=tiny_dataset(num_labels=num_labels))


def test_the_runner_refuses_a_multi_label_checkpoint_in_one_line(
    minilm_path: Path, shared_glue_data: Path, tmp_path: Path, capsys
) -> None:
    student = save_tiny_student(tmp_path / "student", minilm_path)
    config = student / "config.json"
    config.write_text(config.read_text().replace("{", '{"problem_type": "multi_label_classification",', 1))
    flags = run_flags(student, tmp_path / "out", "rte", "--data_dir", shared_glue_data, "--do_train")
    code = main([*flags, "--max_train_samples", "8"])
    assert_one_line_error(capsys, code, f"--model_name_or_path {student}: PseudoKDTrainer does not train a multi-label")
    assert not (tmp_path / "out" / "all_results.json").exists()
