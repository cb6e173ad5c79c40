"""`python -m pseudo_kd_hf ...` is `pseudo-kd-glue ...`: how a sweep starts each trial in a fresh process."""

import sys

from .cli import main

sys.exit(main())
