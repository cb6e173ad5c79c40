#!/usr/bin/env python
"""Fine-tune on GLUE with Pseudo-KD: the `pseudo-kd-glue` console script (`python scripts/run_glue.py --help`)."""

import sys

from pseudo_kd_hf.cli import main

if __name__ == "__main__":
    sys.exit(main())
