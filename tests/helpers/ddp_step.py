"""One SGD step of PseudoKDTrainer, run alone or under torchrun; saves the updated parameters.

Usage: ddp_step.py REGULARIZATION PER_DEVICE_BATCH OUT.pt OUTPUT_DIR
The data (8 examples) and the models are the same in every process; with 2 processes x batch 4 the step must equal
1 process x batch 8. KD uses an online teacher.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist

from pseudo_kd_hf import PseudoKDTrainer
from tests.helpers.tiny import sgd_args, tiny_bert, tiny_dataset, trained_parameters


def main() -> None:
    regularization, batch_size, out_path, output_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    teacher = tiny_bert(3, seed=1, hidden_size=24) if regularization == "kd" else None
    args = sgd_args(
        output_dir, regularization=regularization, alpha=0.3, beta=1.5, per_device_train_batch_size=batch_size
    )
    trainer = PseudoKDTrainer(model=tiny_bert(3), args=args, train_dataset=tiny_dataset(8, 3), teacher_model=teacher)
    save_and_exit(trained_parameters(trainer), out_path)


def save_and_exit(result: object, out_path: str, rank: int = 0) -> None:
    """Save the result (alone: at once; under torchrun: from process `rank`), then end the worker."""
    if not dist.is_initialized():
        torch.save(result, out_path)
        return
    if dist.get_rank() == rank:
        torch.save(result, out_path)
    exit_without_teardown()


def exit_without_teardown() -> None:
    """End a torchrun worker at once, skipping the gloo process group's destruction.

    Destroying it (explicitly, or when the DDP reducer holding it is freed) can deadlock: the main thread joins gloo's
    worker thread while holding the GIL, and that thread waits for the GIL to free a finished collective's tensors
    (seen with torch 2.13 on CPU; left to interpreter exit, it can instead abort with "terminate called ...").
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
