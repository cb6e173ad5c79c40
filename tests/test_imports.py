"""What importing the package costs: the GLUE table, the submission writer and `pseudo-kd-glue-submit` load neither
torch nor transformers; the lazy exports resolve; and no module imports another that imports it back."""

from __future__ import annotations

import ast
import configparser
import importlib
import json
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import numpy as np
import pytest

import pseudo_kd_hf
import pseudo_kd_hf.glue
from pseudo_kd_hf.glue.submission import SUBMISSION_ZIP, validate_submission, write_leaderboard_file
from tests.helpers.scripts import REPO, repo_env

HEAVY = ("torch", "transformers", "datasets")
# Run in the child after its statement, at exit (argparse's --help exits through SystemExit): the heavy ones loaded.
REPORT_HEAVY = (
    "import atexit, json, sys; atexit.register(lambda: sys.stderr.write("
    f"'HEAVY=' + json.dumps([name for name in {HEAVY!r} if name in sys.modules]) + chr(10)))"
)


def heavy_modules_loaded(code: str, *argv: str) -> tuple[list[str], subprocess.CompletedProcess]:
    """Run `code` in a fresh interpreter with this repository first on the path; the heavy libraries it loaded."""
    result = subprocess.run(
        [sys.executable, "-c", f"{REPORT_HEAVY}\n{code}", *argv],
        env=repo_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = [line for line in result.stderr.splitlines() if line.startswith("HEAVY=")]
    assert report, result.stderr
    return json.loads(report[-1].removeprefix("HEAVY=")), result


def submit_entry_point() -> str:
    """The `pseudo-kd-glue-submit` console script as setup.cfg declares it, as pip's generated script runs it."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    scripts = dict(
        (part.strip() for part in line.split("="))
        for line in config["options.entry_points"]["console_scripts"].strip().splitlines()
    )
    module, function = scripts["pseudo-kd-glue-submit"].split(":")
    return f"from {module} import {function}\nsys.exit({function}())"


@pytest.mark.parametrize(
    "statement", ["import pseudo_kd_hf", "import pseudo_kd_hf.glue.tasks", "import pseudo_kd_hf.glue.submission"]
)
def test_the_package_and_the_glue_table_load_no_heavy_library(statement):
    loaded, result = heavy_modules_loaded(statement)
    assert result.returncode == 0, result.stderr
    assert loaded == []


def test_submodules_are_attributes_of_the_lazy_package():
    loaded, result = heavy_modules_loaded("import pseudo_kd_hf\nassert 'rte' in pseudo_kd_hf.glue.tasks.TASKS")
    assert result.returncode == 0, result.stderr
    assert loaded == []


def test_submit_help_loads_no_heavy_library():
    loaded, result = heavy_modules_loaded(submit_entry_point(), "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: pseudo-kd-glue-submit" in result.stdout
    assert loaded == []


def test_a_real_submission_loads_no_heavy_library(tmp_path):
    run_dir, output_dir = tmp_path / "rte_run", tmp_path / "submission"
    write_leaderboard_file("rte", np.zeros(3000, dtype=int), run_dir)
    loaded, result = heavy_modules_loaded(
        submit_entry_point(), str(run_dir), "--output_dir", str(output_dir), "--fill_missing"
    )
    assert result.returncode == 0, result.stderr
    assert validate_submission(output_dir / SUBMISSION_ZIP) == []
    assert loaded == []


@pytest.mark.parametrize("package", [pseudo_kd_hf, pseudo_kd_hf.glue], ids=lambda package: package.__name__)
def test_every_export_resolves_to_its_submodules_object(package):
    exported = {name: module for module, names in package.EXPORTS.items() for name in names}
    assert sorted(exported) == sorted(package.__all__)
    for name, module in exported.items():
        assert getattr(package, name) is getattr(importlib.import_module(module, package.__name__), name)
    assert set(package.__all__) <= set(dir(package))
    namespace: dict = {}
    exec(f"from {package.__name__} import *", namespace)
    assert set(package.__all__) <= set(namespace)
    with pytest.raises(AttributeError, match="no attribute 'not_an_export'"):
        package.not_an_export  # noqa: B018


@pytest.mark.parametrize("package", [pseudo_kd_hf, pseudo_kd_hf.glue], ids=lambda package: package.__name__)
def test_type_checkers_see_the_same_exports(package):
    tree = ast.parse(Path(package.__file__).read_text(encoding="utf-8"))
    checked = next(node for node in tree.body if isinstance(node, ast.If) and _is_type_checking(node.test))
    imported = {}
    for node in checked.body:
        imported.setdefault(f"{'.' * node.level}{node.module}", set()).update(alias.name for alias in node.names)
    assert imported == {module: set(names) for module, names in package.EXPORTS.items()}


# ---- import cycles -----------------------------------------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_imports(statements: list[ast.stmt]):
    """The import statements that run when the module is imported: not in functions, not under TYPE_CHECKING."""
    for node in statements:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_time_imports(node.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                yield from _import_time_imports(getattr(node, field, []))


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each module of the package in folder `root` -> the package's modules it imports at import time.

    `from .x import name` reads `x`; `from . import sub` imports the submodule `sub`; either also runs the
    `__init__` of every package above its target that is not already running above the importing module
    (`from .regularizers.base import x` runs `regularizers/__init__.py`).
    """
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        targets = set()
        for node in _import_time_imports(ast.parse(path.read_text(encoding="utf-8")).body):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            base = ".".join(package.split(".")[: package.count(".") + 2 - node.level]) if node.level else ""
            base = ".".join(filter(None, (base, node.module)))
            submodules = {f"{base}.{alias.name}" for alias in node.names} & set(modules)
            targets |= submodules if len(submodules) == len(node.names) else {base, *submodules}
        above = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        run_first = {".".join(t.split(".")[:i]) for t in targets for i in range(1, t.count(".") + 1)} - above
        graph[name] = (targets | run_first) & set(modules) - {name}
    return graph


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in {"__init__.py": "", **files}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text, encoding="utf-8")
    return root


def test_the_package_has_no_import_cycle():
    graph = import_graph(REPO / "pseudo_kd_hf")
    assert graph["pseudo_kd_hf.trainer"] >= {"pseudo_kd_hf.losses", "pseudo_kd_hf.regularizers"}  # edges are seen
    TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


PLANTED_CYCLES = {
    "through a package's __init__": (
        {
            "a.py": "from .sub.b import helper\n",
            "sub/__init__.py": "",
            "sub/b.py": "from .. import c\n",
            "c.py": "import planted.a\n",
        },
        {"planted.a", "planted.sub.b", "planted.c"},
    ),
    "a module reading its parent package": (
        {"reads/__init__.py": "from .child import value\n", "reads/child.py": "from planted.reads import other\n"},
        {"planted.reads", "planted.reads.child"},
    ),
}


@pytest.mark.parametrize(("files", "cycle"), PLANTED_CYCLES.values(), ids=PLANTED_CYCLES)
def test_a_planted_cycle_is_found(tmp_path, files, cycle):
    with pytest.raises(CycleError) as error:
        TopologicalSorter(import_graph(_write_package(tmp_path / "planted", files))).prepare()
    assert set(error.value.args[1]) == cycle


def test_imports_in_functions_or_for_type_checkers_make_no_cycle(tmp_path):
    package = _write_package(
        tmp_path / "planted",
        {
            "__init__.py": "from . import later\n",
            "deferred.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .later import x\n",
            "later.py": "from . import deferred\n\ndef load():\n    import planted\n",
        },
    )
    graph = import_graph(package)
    assert graph == {"planted": {"planted.later"}, "planted.later": {"planted.deferred"}, "planted.deferred": set()}
    TopologicalSorter(graph).prepare()
