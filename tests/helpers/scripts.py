"""Import the repository's scripts/ (not a package) as modules, so tests can call their functions; and the
environment in which a child Python process imports this repository's package."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"


def repo_env() -> dict[str, str]:
    """This process's environment with the repository first on PYTHONPATH (for `python -c` workers in tests)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def load_script(name: str) -> ModuleType:
    """Import scripts/<name>.py as a module named `scripts_<name>` (with scripts/ on the path, as when it runs, so it
    can import the scripts beside it)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.append(str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
