"""One SGD step of PseudoKDTrainer with the fast step compiled (aot_eager on CPU), alone or under torchrun.

Usage: ddp_fast_step.py REGULARIZATION PER_DEVICE_BATCH OUT.pt OUTPUT_DIR
Like ddp_step.py (8 examples, the same in every process), with `--fast_step`'s static shapes, compiled training model
and persistent gradients forced on (on CPU the flag alone leaves the step eager).
"""

from __future__ import annotations

import sys

import torch

from pseudo_kd_hf import PseudoKDTrainer
from pseudo_kd_hf.fast_step import FastStepPlan
from tests.helpers.ddp_step import save_and_exit
from tests.helpers.tiny import sgd_args, tiny_bert, tiny_dataset, trained_parameters


def main() -> None:
    regularization, batch_size, out_path, output_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    args = sgd_args(
        output_dir,
        regularization=regularization,
        alpha=0.3,
        beta=1.5,
        per_device_train_batch_size=batch_size,
        fast_step=True,
    )
    trainer = PseudoKDTrainer(model=tiny_bert(3), args=args, train_dataset=tiny_dataset(8, 3))
    trainer.fast_step_plan = FastStepPlan(compile_options={"backend": "aot_eager", "dynamic": False})
    parameters = trained_parameters(trainer)
    if not torch._dynamo.utils.counters["stats"]["unique_graphs"]:
        raise RuntimeError("the fast step was not compiled")
    save_and_exit(parameters, out_path)


if __name__ == "__main__":
    main()
