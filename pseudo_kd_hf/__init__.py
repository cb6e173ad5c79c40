"""Pseudo Knowledge Distillation for Hugging Face Transformers: optimal instance-specific label smoothing."""

__version__ = "0.1.0"
