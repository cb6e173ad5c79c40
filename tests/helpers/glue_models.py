"""Tiny text models saved like Hub checkpoints, for the CLI and teacher-cache tests (built from configs, offline)."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel, PreTrainedTokenizerFast

# A teacher vocabulary unlike the student's (MiniLM's WordPiece): the teacher must tokenise with its own tokenizer.
TEACHER_WORDS = "the a of and to in is was that it for on with as he she they not no be by".split()


def save_tiny_student(path: Path, tokenizer_path: Path) -> Path:
    """A 2-layer, 32-wide BERT encoder without a classifier head (like a pretrained checkpoint) + MiniLM's tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def word_level_tokenizer() -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer over TEACHER_WORDS, with BERT's special-token template."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {token: token_id for token_id, token in enumerate([*specials, *TEACHER_WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_max_length=64,
    )


def save_tiny_teacher(path: Path, label_names: list[str], seed: int = 1) -> Path:
    """A 1-layer BERT classifier (no dropout) naming `label_names`, with its own word-level tokenizer."""
    tokenizer = word_level_tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: label_id for label_id, name in enumerate(label_names)},
    )
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
