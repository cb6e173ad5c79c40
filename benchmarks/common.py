"""What every benchmark shares: the model shapes it builds, the device sync around a timing, the environment it
records and how it writes its results (a JSON file and a markdown table, side by side)."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch
import transformers

from pseudo_kd_hf.glue.submission import write_atomically

REPO_ROOT = Path(__file__).resolve().parents[1]
# The paper's student and teacher (Section 5 / Appendix C), and a tiny one for quick CPU runs; built from configs,
# since only their cost matters here.
DISTILROBERTA = {"num_hidden_layers": 6, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072}
ROBERTA_LARGE = {"num_hidden_layers": 24, "hidden_size": 1024, "num_attention_heads": 16, "intermediate_size": 4096}
TINY_ROBERTA = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
ROBERTA_SHARED = {"vocab_size": 50265, "max_position_embeddings": 514, "type_vocab_size": 1, "pad_token_id": 1}


def synchronize(device: str) -> None:
    """Wait for the device's queued work, so a timer read after it covers that work (a no-op on CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def device_name(device: str) -> str:
    """The accelerator's name, or the CPU's."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()})"


def environment(device: str) -> dict[str, Any]:
    """The versions and the machine a result was measured with."""
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": str(torch.version.cuda),
        "transformers": transformers.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "accelerator": torch.cuda.get_device_name() if device.startswith("cuda") else None,
    }


def write_outputs(output_dir: Path, name: str, result: dict[str, Any], table: str) -> None:
    """Write `<name>.json` and `<name>.md` into `output_dir`, each whole or not at all (the package's result writer)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    write_atomically(output_dir / f"{name}.json", (json.dumps(result, indent=2) + "\n").encode("utf-8"))
    write_atomically(output_dir / f"{name}.md", table.encode("utf-8"))
