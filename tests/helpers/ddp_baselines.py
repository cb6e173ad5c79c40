"""One SGD step of a teacher-free baseline, run alone or under torchrun; saves the parameters (and PS-KD's table).

Usage: ddp_baselines.py REGULARIZATION PER_DEVICE_BATCH OUT.pt OUTPUT_DIR
The data (8 examples) and the model are the same in every process; with 2 processes x batch 4 the step, and the
table every process holds, must equal 1 process x batch 8.
"""

from __future__ import annotations

import sys

from pseudo_kd_hf import PseudoKDTrainer
from tests.helpers.ddp_step import save_and_exit
from tests.helpers.tiny import sgd_args, tiny_bert, tiny_dataset, trained_parameters


def main() -> None:
    regularization, batch_size, out_path, output_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    args = sgd_args(output_dir, regularization=regularization, alpha=0.3, per_device_train_batch_size=batch_size)
    dataset = tiny_dataset(8, 3).add_column("idx", [5, 2, 7, 0, 3, 6, 1, 4])
    trainer = PseudoKDTrainer(model=tiny_bert(3), args=args, train_dataset=dataset)
    results = {"parameters": trained_parameters(trainer)}
    if regularization == "ps_kd":
        results["previous_predictions"] = trainer.regularizer.previous_predictions.probs
    save_and_exit(results, out_path, rank=1)  # the process that did not write the checkpointed state holds it too


if __name__ == "__main__":
    main()
