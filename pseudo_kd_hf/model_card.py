"""The model card of a training run: `output_dir/README.md` as run_glue.py writes it, naming the method too.

`Trainer.create_model_card` writes the card (metadata, dev results, hyperparameters, framework versions) from the
trainer's state; it knows nothing of the label regulariser, so its "Model description" placeholder is replaced by
the method and its settings (`Regularizer.describe()`) and, for KD, the teacher.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from transformers import Trainer

from .arguments import DataTrainingArguments, ModelArguments

_DESCRIPTION_PLACEHOLDER = "## Model description\n\nMore information needed\n"


@dataclass(frozen=True)
class ModelCard:
    """What the card says beyond the trainer's state: run_glue's `create_model_card` arguments and the teacher."""

    card_kwargs: dict[str, Any]
    teacher: str | None = None  # KD: the teacher model, or the file its logits came from

    @classmethod
    def for_run(cls, model_args: ModelArguments, data_args: DataTrainingArguments) -> ModelCard:
        """run_glue's arguments (GLUE's tags for a GLUE task; the dataset's name for --dataset_name)."""
        kwargs: dict[str, Any] = {"finetuned_from": model_args.model_name_or_path, "tasks": "text-classification"}
        if data_args.task_name is not None:
            kwargs |= {
                "language": "en",
                "dataset_tags": "glue",
                "dataset_args": data_args.task_name,
                "dataset": f"GLUE {data_args.task_name.upper()}",
            }
        elif data_args.dataset_name is not None:
            kwargs |= {"dataset": data_args.dataset_name, "dataset_args": data_args.dataset_config_name}
        teacher = model_args.teacher_name_or_path
        if model_args.teacher_logits is not None:
            teacher = f"the logits in {model_args.teacher_logits}"
        return cls(kwargs, teacher)

    def write(self, trainer: Trainer) -> None:
        """Write the card (main process only, as `create_model_card` does), then name the method in it."""
        trainer.create_model_card(**self.card_kwargs)
        if not trainer.is_world_process_zero():
            return
        method = trainer.regularizer
        lines = [f"Fine-tuned with the label regulariser {method.describe()}."]
        if method.uses_teacher and self.teacher is not None:
            lines.append(f"Teacher: {self.teacher}.")
        description = "## Model description\n\n" + "\n".join(lines) + "\n"
        path = os.path.join(trainer.args.output_dir, "README.md")
        with open(path, encoding="utf-8") as file:
            card = file.read()
        if _DESCRIPTION_PLACEHOLDER in card:
            card = card.replace(_DESCRIPTION_PLACEHOLDER, description, 1)
        else:  # another transformers layout: add the section at the end
            card = card.rstrip("\n") + "\n\n" + description
        with open(path, "w", encoding="utf-8") as file:
            file.write(card)
