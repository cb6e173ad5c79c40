#!/usr/bin/env python
"""Write a KD teacher's logits over a GLUE training split to a file: `pseudo-kd-glue-teacher-logits`."""

import sys

from pseudo_kd_hf.teacher_file import main

if __name__ == "__main__":
    sys.exit(main())
