"""Lazy package exports: a package names what it exports, and the submodule holding a name is imported on first use.

Why these twenty lines and not `transformers.utils.import_utils._LazyModule` (TRL vendors its own copy of it in
`trl/import_utils.py`): importing that module runs `transformers/__init__.py` and its dependency checks (about 570
modules, 3.7 s on this loaded 2-core CPU), the very cost this laziness exists to avoid; and `_LazyModule` replaces
the package in `sys.modules` by an instance of its own class, with backend bookkeeping this package has no use for.
scientific-python's `lazy_loader` (SPEC 1) does what this module does, but would be one more dependency. PEP 562's
module `__getattr__` and `__dir__` leave the package a plain module: `from pseudo_kd_hf import PseudoKDTrainer`
imports `pseudo_kd_hf.trainer` (and so torch) then, not before, and `import pseudo_kd_hf.glue.tasks` imports only
the table. Each package repeats its exports as imports under `if TYPE_CHECKING:` so that type checkers and IDEs see
the real objects, and as a literal `__all__`; tests/test_imports.py checks that the three lists agree.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The `__getattr__` and `__dir__` of `package`, where `exports` maps each submodule (relative, e.g.
    ``".trainer"``) to the names it exports, as transformers' `_import_structure` does. A name is imported once:
    it is then set on the package like any attribute. Submodules are attributes too, as when the package imported
    them eagerly (`pseudo_kd_hf.losses.kd_loss` after `import pseudo_kd_hf`)."""
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in module_of:
            value = getattr(importlib.import_module(module_of[name], package), name)
        elif not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *module_of})

    return __getattr__, __dir__
