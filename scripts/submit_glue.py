#!/usr/bin/env python
"""Package runs' leaderboard files into a GLUE submission: the `pseudo-kd-glue-submit` console script."""

import sys

from pseudo_kd_hf.submit import main

if __name__ == "__main__":
    sys.exit(main())
