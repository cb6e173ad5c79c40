"""Choosing settings with Optuna: search spaces, studies in a shared storage, and the `pseudo-kd-glue-sweep` CLI."""
