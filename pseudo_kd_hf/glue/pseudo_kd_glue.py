"""The file ``evaluate.load(pseudo_kd_hf.glue.GLUE_METRIC_PATH, config)`` opens.

evaluate copies this file into its module cache and imports the copy, so it only re-exports the package's metric
(absolute import, which evaluate leaves alone): the loaded class is the package's own, and so are its errors.
"""

from pseudo_kd_hf.glue.metric import GlueMetric

__all__ = ["GlueMetric"]
