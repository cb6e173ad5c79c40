"""The label regularisers: one `Regularizer` per method, registered by name (`register_regularizer`).

Importing this package registers the built-in methods, in this order: the paper's methods (none, ls, kd,
pseudo_kd), then its teacher-free baselines (tf_reg, ps_kd, cs_kd, beta_ls).
"""

from . import none, ls, kd, pseudo_kd, tf_reg, ps_kd, cs_kd, beta_ls  # noqa: F401, I001  (registration order)
from .base import (
    Regularizer,
    get_regularizer,
    import_regularizer_module,
    register_regularizer,
    registered_regularizers,
)
from .beta_ls import EMAUpdateCallback
from .cs_kd import ClassPairBatchSampler
from .ps_kd import EXAMPLE_ID_COLUMN, PreviousPredictions

# The built-in methods' names (`registered_regularizers()` also lists the ones registered since).
REGULARIZATIONS = tuple(registered_regularizers())
TEACHER_FREE_BASELINES = ("tf_reg", "ps_kd", "cs_kd", "beta_ls")
# Built-in methods that reshape a classification target: on a regression head they train on the MSE instead.
CLASSIFICATION_ONLY = tuple(name for name, cls in registered_regularizers().items() if not cls.supports_regression)

__all__ = [
    "CLASSIFICATION_ONLY",
    "EXAMPLE_ID_COLUMN",
    "REGULARIZATIONS",
    "TEACHER_FREE_BASELINES",
    "ClassPairBatchSampler",
    "EMAUpdateCallback",
    "PreviousPredictions",
    "Regularizer",
    "get_regularizer",
    "import_regularizer_module",
    "register_regularizer",
    "registered_regularizers",
]
