"""README.md and docs/: every command in them parses (or runs), the Python examples run, and the flag tables list
every flag."""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from accelerate.commands.launch import launch_command_parser
from torch.distributed.run import get_args_parser as torchrun_parser
from transformers import HfArgumentParser, TrainingArguments

import pseudo_kd_hf
from benchmarks import glue as benchmark_glue
from pseudo_kd_hf import PseudoKDTrainer, PseudoKDTrainingArguments
from pseudo_kd_hf.arguments import ARGUMENT_CLASSES
from pseudo_kd_hf.glue.submission import validate_submission, write_leaderboard_file
from pseudo_kd_hf.glue.tasks import get_task
from pseudo_kd_hf.parsing import apply_preset, build_arguments, read_arguments
from pseudo_kd_hf.submit import main as submit_main
from pseudo_kd_hf.teacher_file import TeacherLogitsArguments
from pseudo_kd_hf.tuning import sweep
from pseudo_kd_hf.tuning.space import build_space, read_space_text
from pseudo_kd_hf.tuning.variants import parse_variants
from tests.helpers.glue_models import save_tiny_student
from tests.helpers.tiny import tiny_bert, tiny_dataset

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"
PAGES = {path: path.read_text(encoding="utf-8") for path in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]}
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")
DEMO_DATA = Path(pseudo_kd_hf.__file__).resolve().parent / "demo_data"
CODE_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
GLUE_COMMANDS = (["pseudo-kd-glue"], ["python", "scripts/run_glue.py"])
SUBMIT_COMMANDS = (["pseudo-kd-glue-submit"], ["python", "scripts/submit_glue.py"])
TEACHER_LOGITS_COMMANDS = (["pseudo-kd-glue-teacher-logits"], ["python", "scripts/teacher_logits.py"])
SWEEP_COMMANDS = (["pseudo-kd-glue-sweep"],)
BENCHMARK_COMMANDS = (["python", "-m", "benchmarks.glue"],)


def code_blocks(language: str, texts: Iterable[str] = PAGES.values()) -> list[str]:
    """The code blocks in `language` of `texts`: by default README.md and every docs page."""
    return [body for text in texts for lang, body in CODE_BLOCK.findall(text) if lang == language]


def shell_commands(texts: Iterable[str] = PAGES.values()) -> list[list[str]]:
    """Each command of the bash blocks as argv, without leading VAR=value settings."""
    commands = []
    for block in code_blocks("bash", texts):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            while argv and re.fullmatch(r"[A-Z_]+=\S*", argv[0]):
                argv = argv[1:]
            if argv:
                commands.append(argv)
    return commands


def without_prefix(argv: list[str], prefixes: tuple[list[str], ...]) -> list[str] | None:
    for prefix in prefixes:
        if argv[: len(prefix)] == prefix:
            return argv[len(prefix) :]
    return None


def check_glue_argv(argv: list[str]) -> None:
    """The arguments parse into the three dataclasses (every value checked), and a preset exists for the task."""
    values = read_arguments(argv)
    build_arguments(values)
    if values.get("preset") == "paper" and values["task_name"] != "all":
        build_arguments(apply_preset(values, get_task(values["task_name"])))


def check_launcher(argv: list[str]) -> None:
    """`accelerate launch` / `torchrun`: the launcher's own flags parse, and it runs scripts/run_glue.py with ours."""
    parser = launch_command_parser() if argv[:2] == ["accelerate", "launch"] else torchrun_parser()
    launched = parser.parse_args(argv[2:] if argv[0] == "accelerate" else argv[1:])
    assert launched.training_script == "scripts/run_glue.py"
    check_glue_argv(launched.training_script_args)


def check_submit(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run it for real in tmp_path, on a run folder holding a complete RTE.tsv."""
    monkeypatch.chdir(tmp_path)
    for run_dir in (arg for arg in argv if arg.startswith("runs/")):
        write_leaderboard_file("rte", np.zeros(get_task("rte").split_sizes["test"], dtype=int), run_dir)
    assert submit_main(argv) == 0
    output_dir = Path(argv[argv.index("--output_dir") + 1])
    assert validate_submission(output_dir / "submission.zip") == []


def test_readme_has_the_main_commands_and_the_docs_the_rest() -> None:
    readme = [" ".join(argv) for argv in shell_commands([README])]
    assert "make demo" in readme and "make test" in readme
    assert any(
        command.startswith("pseudo-kd-glue --task_name rte --regularization pseudo_kd --preset paper")
        for command in readme
    )
    assert any("--teacher_name_or_path" in command for command in readme)
    assert any("--task_name all" in command for command in readme)
    assert any(command.startswith("pseudo-kd-glue-submit") for command in readme)
    assert any(command.startswith("pseudo-kd-glue-sweep") for command in readme)
    assert "See [benchmarks/README.md](benchmarks/README.md)" in README
    docs = [" ".join(argv) for argv in shell_commands()]
    assert any(command.startswith("accelerate launch") for command in docs)
    assert any(command.startswith("torchrun") for command in docs)
    assert any(command.startswith("pseudo-kd-glue-sweep") and "--storage" in command for command in docs)


def test_every_readme_command_parses_or_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = shell_commands()
    assert len(commands) >= 10
    for number, argv in enumerate(commands):
        folder = tmp_path / str(number)  # where a command that writes files runs
        folder.mkdir()
        if argv[0] == "make":
            for target in argv[1:]:
                assert re.search(rf"^{target}:", MAKEFILE, re.MULTILINE), f"Makefile has no target {target}"
        elif argv[:2] == ["pip", "install"]:
            assert f"$(BIN)/pip install {shlex.join(argv[2:])}".replace("'", '"') in MAKEFILE, argv
        elif argv[0] in ("accelerate", "torchrun"):
            check_launcher(argv)
        elif (rest := without_prefix(argv, SUBMIT_COMMANDS)) is not None:
            check_submit(rest, folder, monkeypatch)
        elif (rest := without_prefix(argv, TEACHER_LOGITS_COMMANDS)) is not None:
            monkeypatch.chdir(folder)  # its --output_file must not exist yet
            HfArgumentParser(TeacherLogitsArguments).parse_args_into_dataclasses(rest)
        elif (rest := without_prefix(argv, SWEEP_COMMANDS)) is not None:
            check_sweep(rest)
        elif (rest := without_prefix(argv, BENCHMARK_COMMANDS)) is not None:
            args = benchmark_glue.parse_args(rest)
            parse_variants(args.variant, args.variants_file)
        elif (rest := without_prefix(argv, GLUE_COMMANDS)) is not None:
            if rest[0].endswith(".yaml"):  # a config file, the docs' YAML block of that name, maybe then flags
                check_config_file(rest, folder, monkeypatch)
            else:
                write_regularizer_module(rest, folder, monkeypatch)
                check_glue_argv(rest)
        else:
            pytest.fail(f"Docs command {shlex.join(argv)} is neither run nor parsed by a test: add a check here.")


def write_regularizer_module(argv: list[str], folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A command with `--regularizer_module FILE` runs where FILE holds the docs' regulariser example."""
    if "--regularizer_module" in argv:
        [block] = [block for block in code_blocks("python") if "@register_regularizer" in block]
        (folder / argv[argv.index("--regularizer_module") + 1]).write_text(block, encoding="utf-8")
        monkeypatch.chdir(folder)


def check_config_file(argv: list[str], folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [block] = [block for block in code_blocks("yaml") if block.startswith(f"# {argv[0]}\n")]
    (folder / argv[0]).write_text(block, encoding="utf-8")
    monkeypatch.chdir(folder)
    check_glue_argv(argv)


def check_sweep(argv: list[str]) -> None:
    """The sweep's own flags and the runner flags parse (every value checked), and the search space builds."""
    args, values = sweep.parse_args(argv)
    user_space = read_space_text(args.search_space) if args.search_space else {}
    build_space(values.get("regularization", "pseudo_kd"), values, user_space)


def test_ci_runs_the_readme_test_command() -> None:
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(encoding="utf-8"), re.MULTILINE)


@pytest.mark.parametrize("task", ["rte", "sst2"])
def test_python_example_runs(
    task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minilm_path: Path, request: pytest.FixtureRequest
) -> None:
    """The example as written, for a sentence-pair and a single-sentence task, with a tiny local model for
    distilroberta-base, 2 steps: RTE from the real GLUE files, SST-2 from the demo's sample."""
    [example] = [block for block in code_blocks("python") if "PseudoKDTrainer(" in block]
    assert len([line for line in example.splitlines() if line and not line.startswith(("from ", "import "))]) == 7
    data_dir = request.getfixturevalue("shared_glue_data") if task == "rte" else DEMO_DATA
    model = save_tiny_student(tmp_path / "tiny-student", minilm_path)
    substitutions = {
        'task = "rte"': f"task = {task!r}",
        '"distilroberta-base"': repr(str(model)),
        "load_glue_task(task)": f"load_glue_task(task, data_dir={str(data_dir)!r})",
        'output_dir="runs/glue"': 'output_dir="runs/glue", max_steps=2, use_cpu=True, disable_tqdm=True',
    }
    for old, new in substitutions.items():
        assert old in example, f"docs/python-api.md's example no longer contains {old}: update this test"
        example = example.replace(old, new)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(example, "docs/python-api.md", "exec"), namespace)
    assert namespace["result"].global_step == 2
    assert namespace["args"].regularization == "pseudo_kd"
    assert set(get_task(task).text_columns) <= set(namespace["data"]["train"].column_names)
    assert (1 in namespace["data"]["train"][0]["token_type_ids"]) == (task == "rte")  # the pair's second segment


def test_regularizer_example_trains(tmp_path: Path) -> None:
    """The docs' own regulariser, as written, registers and trains a tiny model for 2 steps."""
    [example] = [block for block in code_blocks("python") if "@register_regularizer" in block]
    namespace: dict = {}
    exec(compile(example, "docs/python-api.md", "exec"), namespace)
    args = PseudoKDTrainingArguments(
        output_dir=str(tmp_path), regularization="confidence_penalty", max_steps=2, logging_steps=1, use_cpu=True
    )
    trainer = PseudoKDTrainer(model=tiny_bert(3), args=args, train_dataset=tiny_dataset(16, 3))
    assert isinstance(trainer.regularizer, namespace["ConfidencePenalty"])
    assert trainer.train().global_step == 2
    assert all("regularizer_loss" in entry for entry in trainer.state.log_history if "loss" in entry)


def table_rows(page: str, section: str) -> list[list[list[str]]]:
    """The markdown tables under `## section` of docs/page, each as rows of cells (header and separator dropped)."""
    text = PAGES[DOCS / page].split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    tables = re.findall(r"((?:^\|.*\|\n)+)", text, re.MULTILINE)
    return [
        [[cell.strip() for cell in line.strip("|").split(" | ")] for line in table.splitlines()[2:]] for table in tables
    ]


def test_flag_tables_list_every_project_flag_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    added, kept = table_rows("runner.md", "Flags")
    [submit] = table_rows("submissions.md", "Flags")
    documented = {row[0].strip("`").removeprefix("--"): row[1].strip("`") for row in added + kept}
    assert len(documented) == len(added) + len(kept), "a flag is listed twice"
    own = {field.name for field in dataclasses.fields(TrainingArguments)}
    fields = {
        field.name: field
        for cls in ARGUMENT_CLASSES
        for field in dataclasses.fields(cls)
        if not (issubclass(cls, TrainingArguments) and field.name in own)
    }
    assert sorted(documented) == sorted(fields)
    for name, field in fields.items():
        assert documented[name] == str(field.default), f"docs/runner.md's default for --{name}"

    with pytest.raises(SystemExit):
        submit_main(["--help"])
    options = re.findall(r"^\s+(?:-\w, )?(--\w+)", capsys.readouterr().out, re.MULTILINE)  # argparse's option lines
    submit_flags = set(options) - {"--help"}
    assert {row[0].strip("`") for row in submit} == submit_flags
