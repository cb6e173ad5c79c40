"""pseudo-kd-glue-sweep and --heldout_fraction: search spaces, held-out selection that never reads dev, a study
that continues, stale trials marked failed, and two workers sharing one study."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from pseudo_kd_hf import cli
from pseudo_kd_hf.errors import UsageError
from pseudo_kd_hf.tuning import report, space, sweep
from pseudo_kd_hf.tuning import study as study_module
from pseudo_kd_hf.tuning.storage import open_storage
from pseudo_kd_hf.tuning.study import load_study
from tests.helpers.glue_models import TEACHER_WORDS, save_tiny_student
from tests.helpers.scripts import repo_env


@pytest.fixture(scope="module")
def student(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    return save_tiny_student(tmp_path_factory.mktemp("models") / "student", minilm_path)


@pytest.fixture
def rte_without_dev(tmp_path: Path) -> Path:
    """RTE with a training file and no dev.tsv at all: a run that touched the dev set could not succeed."""
    rows = [
        f"{i}\t{' '.join(TEACHER_WORDS[(i * 7 + k) % len(TEACHER_WORDS)] for k in range(5))}\tthe a of\t"
        f"{('entailment', 'not_entailment')[i % 2]}"
        for i in range(40)
    ]
    folder = tmp_path / "glue" / "RTE"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text("\n".join(["index\tsentence1\tsentence2\tlabel", *rows]) + "\n")
    return tmp_path / "glue"


def runner_flags(student: Path, data_dir: Path, output_dir: Path) -> list[str]:
    flags = [
        *("--model_name_or_path", student, "--task_name", "rte", "--data_dir", data_dir, "--output_dir", output_dir),
        *("--use_cpu", "--max_seq_length", "32", "--max_steps", "2", "--per_device_train_batch_size", "8"),
        *("--per_device_eval_batch_size", "32", "--regularization", "pseudo_kd"),
    ]
    return [str(flag) for flag in flags]


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and not any("Traceback" in line for line in lines)
    return lines[-1]


# ---- search spaces ---------------------------------------------------------------------------------------------


def test_default_space_per_method_less_the_fixed_flags() -> None:
    assert set(space.default_space("none", {})) == {"learning_rate"}
    assert set(space.default_space("pseudo_kd", {})) == {"learning_rate", "alpha", "tau"}
    assert set(space.default_space("kd", {"learning_rate": 1e-4})) == {"alpha", "temperature"}
    assert set(space.default_space("pseudo_kd", {"beta": 2.0})) == {"learning_rate", "alpha"}  # beta fixes tau
    assert set(space.default_space("pseudo_kd", {"pseudo_kd_temperature": 2.0})) == {"learning_rate", "alpha"}
    assert all(set(space.default_space(method, {})) >= {"learning_rate"} for method in space.METHOD_SPACES)


def test_user_yaml_narrows_adds_and_pins(tmp_path: Path) -> None:
    text = "learning_rate: {low: 1e-5, high: 1e-4, log: true}\nalpha: [0.1, 0.2, 0.5]\n"
    text += "per_device_train_batch_size: {low: 16, high: 64, step: 16}\nnum_train_epochs: 3\n"
    path = tmp_path / "space.yaml"
    path.write_text(text)
    for spec in (str(path), text):  # a file or the YAML inline
        searched, pinned = space.build_space("pseudo_kd", {}, space.read_space_text(spec))
        assert searched["learning_rate"] == FloatDistribution(1e-5, 1e-4, log=True)
        assert searched["alpha"] == CategoricalDistribution([0.1, 0.2, 0.5])
        assert searched["per_device_train_batch_size"] == IntDistribution(16, 64, step=16)
        assert searched["tau"] == space.METHOD_SPACES["pseudo_kd"]["tau"]  # the default for what the YAML leaves
        assert pinned == {"num_train_epochs": 3}
    assert space.describe(searched)["per_device_train_batch_size"] == {"low": 16, "high": 64, "log": False, "step": 16}


@pytest.mark.parametrize("spec", ["{beta: {low: 0.5, high: 4}}", "{beta: 2.0}", "{pseudo_kd_temperature: [2, 8]}"])
def test_a_yaml_that_sets_beta_replaces_the_default_tau(spec: str) -> None:
    searched, pinned = space.build_space("pseudo_kd", {}, space.read_space_text(spec))
    assert "tau" not in searched  # else every trial's beta would be alpha * tau, not the value the YAML asks for
    assert {"beta", "pseudo_kd_temperature"} & {*searched, *pinned}


@pytest.mark.parametrize(
    ("spec", "fixed", "match"),
    [
        ("{learnin_rate: [1]}", {}, "learnin_rate is not a runner flag"),
        ("{output_dir: x}", {}, "output_dir is not a runner flag"),
        ("{alpha: [0.1]}", {"alpha": 0.2}, "also set as --alpha"),
        ("{learning_rate: {low: 1e-5}}", {}, "needs low and high"),
        ("{learning_rate: {low: fast, high: 1}}", {}, "learning_rate"),
        ("[1, 2]", {}, "expected a mapping"),
        ("missing.yaml", {}, "no such file"),
        ("{tau: [2.0], beta: [0.5]}", {}, "beta and tau each set Pseudo-KD's temperature"),
        ("{tau: [2.0]}", {"beta": 0.5}, "beta and tau each set"),
        ("{pseudo_kd_temperature: 4}", {"beta": 0.5}, "beta and pseudo_kd_temperature each set"),
    ],
)
def test_bad_search_spaces(spec: str, fixed: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        space.build_space("pseudo_kd", fixed, space.read_space_text(spec))
    with pytest.raises(ValueError, match="not used by ls"):
        space.build_space("ls", {}, {"tau": [2.0]})


def test_tau_becomes_beta_and_best_yaml_keeps_runner_flags_only() -> None:
    assert space.runner_values({"alpha": 0.2, "tau": 10.0}, {}) == {"alpha": 0.2, "beta": pytest.approx(2.0)}
    assert space.runner_values({"tau": 10.0}, {"alpha": 0.5}) == {"beta": pytest.approx(5.0)}
    assert space.runner_values({"tau": 10.0}, {}) == {"beta": pytest.approx(1.0)}  # the runner's default alpha 0.1
    trial = optuna.trial.create_trial(
        params={"alpha": 0.2, "tau": 10.0},
        distributions={"alpha": FloatDistribution(0.05, 0.5), "tau": FloatDistribution(1.0, 50.0)},
        value=0.7,
    )
    shared = {"task_name": "rte", "heldout_fraction": 0.1, "heldout_seed": 3, "do_train": True, "do_eval": True}
    shared["max_eval_samples"] = 50  # capped the held-out part: the final run evaluates all of dev
    config = report.best_config(trial, shared)
    assert config == {"task_name": "rte", "do_train": True, "do_eval": True, "alpha": 0.2, "beta": pytest.approx(2.0)}
    built = cli.build_arguments(cli.read_arguments([]) | config)  # the runner accepts it as is
    assert built[2].beta == pytest.approx(2.0)


def test_a_config_file_takes_overriding_flags(tmp_path: Path) -> None:
    path = tmp_path / "best.yaml"
    path.write_text("task_name: rte\nlearning_rate: 3e-5\nseed: 1\ndo_train: true\n")
    values = cli.read_arguments([str(path), "--seed", "7", "--do_predict", "--output_dir", "runs/x"])
    assert values == {
        "task_name": "rte",
        "learning_rate": 3e-5,
        "seed": 7,
        "do_train": True,
        "do_predict": True,
        "output_dir": "runs/x",
    }


# ---- --heldout_fraction in the runner -------------------------------------------------------------------------


def test_heldout_run_never_needs_the_dev_set(student: Path, rte_without_dev: Path, tmp_path: Path, capsys) -> None:
    output_dir = tmp_path / "run"
    flags = [*runner_flags(student, rte_without_dev, output_dir), "--do_train", "--do_eval", "--report_to", "none"]
    assert cli.main([*flags, "--heldout_fraction", "0.25", "--do_predict"]) == 2
    assert "drop --do_predict" in error_line(capsys)
    assert cli.main([*flags, "--heldout_fraction", "1.5"]) == 2
    assert "--heldout_fraction must be in (0, 1)" in error_line(capsys)
    assert cli.main(flags) == 2  # without it, --do_eval needs the dev set this folder lacks
    assert "dev.tsv" in error_line(capsys)
    assert cli.main([*flags, "--heldout_fraction", "0.25", "--disable_tqdm", "true"]) == 0
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["eval_split"] == "heldout"
    assert results["eval_samples"] == 10 and results["train_samples"] == 30  # 25 % of 40 rows held out
    assert "eval_accuracy" in results


# ---- the sweep -------------------------------------------------------------------------------------------------


def test_sweep_refuses_bad_flags_with_one_line(tmp_path: Path, capsys) -> None:
    base = ["--task_name", "rte", "--output_dir", str(tmp_path / "sweep")]
    for flags, match in (
        ([*base, "--do_predict"], "--do_predict"),
        (["--task_name", "rte"], "--output_dir is required"),
        ([*base, "--heldout_fraction", "0"], "--heldout_fraction must be in (0, 1)"),
        ([*base, "--task_name", "all"], "one task"),
        ([*base, "--search_space", "{alpha: [0.1]}", "--alpha", "0.2"], "also set as --alpha"),
        ([*base, "--n_trials", "-1"], "--n_trials"),
        ([*base, "--heartbeat_interval", "0"], "--heartbeat_interval must be a positive"),
        ([*base, "--grace_period", "30"], "--grace_period 30 must be longer than --heartbeat_interval 60"),
        ([*base, "--storage", "nodb://host/x"], "--storage nodb://host/x: no such database dialect nodb"),
        ([*base, "--storage", str(tmp_path)], "is a folder: pass a journal file or a database URL"),
        ([*base, "--report_only"], "holds no study rte_pseudo_kd"),
    ):
        assert sweep.main(flags) == 2, flags
        assert match in error_line(capsys), flags


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the test's ask() stands in for a worker's trial
def test_a_stale_running_trial_is_marked_failed_at_startup(tmp_path: Path) -> None:
    """A worker killed mid-trial leaves it RUNNING; once its heartbeat is older than the grace period, the next
    sweep marks it FAIL (recorded, not lost, not counted as finished)."""
    storage = open_storage(str(tmp_path / "study.journal"), heartbeat_interval=1, grace_period=2)
    study, _ = load_study(storage, "rte_pseudo_kd")
    orphan = study.ask({"alpha": FloatDistribution(0.0, 1.0)})
    storage.record_heartbeat(orphan._trial_id)
    alive = study.ask()  # no heartbeat yet, like a trial just started: left alone
    time.sleep(3)
    flags = ["--task_name", "rte", "--output_dir", str(tmp_path), "--n_trials", "0"]
    assert sweep.main([*flags, "--heartbeat_interval", "1", "--grace_period", "2"]) == 0
    trials = optuna.load_study(study_name="rte_pseudo_kd", storage=storage).trials
    states = {trial.number: trial.state for trial in trials}
    assert states == {orphan.number: TrialState.FAIL, alive.number: TrialState.RUNNING, 2: TrialState.WAITING}
    assert trials[2].params == orphan.params  # queued again with its settings
    assert "No finished trial yet" in (tmp_path / "trials.md").read_text()
    assert not (tmp_path / "best.yaml").exists()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_worker_waits_for_running_trials_and_replaces_one_whose_worker_died(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 trials queued, one taken by another worker: this worker runs the other, then waits instead of stopping at 1
    finished trial; the other worker died, so its trial fails after the grace period, comes back queued, and this
    worker runs it."""
    monkeypatch.setattr(study_module, "POLL_S", 0.2)
    storage = open_storage(str(tmp_path / "study.journal"), heartbeat_interval=1, grace_period=2)
    study, _ = load_study(storage, "s")
    sweep.fill_queue(study, 2)
    orphan = study.ask()  # the other worker pops the first queued trial
    storage.record_heartbeat(orphan._trial_id)
    sweep.work(study, lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_waiting_for_trials_running_elsewhere_ends_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(study_module, "POLL_S", 0.1)
    study, _ = load_study(open_storage(str(tmp_path / "study.journal")), "s")
    sweep.fill_queue(study, 1)
    study.ask()  # another worker's trial, running for long
    started = time.monotonic()
    sweep.work(study, lambda trial: 1.0, n_trials=1, deadline=started + 0.5)
    assert time.monotonic() - started < 5
    assert [trial.state for trial in study.get_trials(deepcopy=False)] == [TrialState.RUNNING]


def test_an_output_dir_holds_one_study(tmp_path: Path, capsys) -> None:
    """Two studies in one folder would write the same trials/trial_NNNN folders and best.yaml."""
    flags = ["--task_name", "rte", "--output_dir", str(tmp_path), "--n_trials", "0"]
    assert sweep.main([*flags, "--study_name", "first"]) == 0
    assert sweep.main([*flags, "--study_name", "first"]) == 0  # the same study continues
    assert sweep.main([*flags, "--study_name", "second"]) == 2
    assert "holds study first's trials: pass another --output_dir for second" in error_line(capsys)


def test_no_trial_starts_after_the_time_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def run_runner(*_):  # pragma: no cover - the test fails if reached
        pytest.fail("a trial started after the time budget")

    monkeypatch.setattr(sweep, "run_runner", run_runner)
    flags = ["--task_name", "rte", "--output_dir", str(tmp_path), "--n_trials", "3", "--time_budget_s", "0"]
    assert sweep.main(flags) == 0
    study = optuna.load_study(study_name="rte_pseudo_kd", storage=open_storage(str(tmp_path / "study.journal")))
    assert [trial.state for trial in study.trials] == [TrialState.WAITING] * 3


def test_a_study_continues_on_a_machine_whose_folders_differ() -> None:
    """Carried to another machine (the GPU one), a study's model, data and teacher-logits paths change: it continues.
    Any other setting, or a teacher given another way, is another experiment: refused with one line naming it."""
    study = optuna.create_study(study_name="s")
    here = {"model_name_or_path": "/work/minilm", "data_dir": "/glue", "teacher_logits": "/w/cola.st", "alpha": 0.1}
    sweep.check_same_settings(study, here, {"alpha": "range"}, created=True)
    there = {**here, "model_name_or_path": "/tmp/minilm", "data_dir": "glue", "teacher_logits": "carry/cola.st"}
    sweep.check_same_settings(study, there, {"alpha": "range"}, created=False)
    with pytest.raises(UsageError, match=r"other settings \(alpha\)"):
        sweep.check_same_settings(study, {**there, "alpha": 0.2}, {"alpha": "range"}, created=False)
    with pytest.raises(UsageError, match="search space"):
        sweep.check_same_settings(study, there, {"alpha": "other range"}, created=False)
    other_teacher = {**there, "teacher_logits": None, "teacher_name_or_path": "/tmp/teachers/cola"}
    with pytest.raises(UsageError, match=r"other settings \(teacher_logits, teacher_name_or_path\)"):
        sweep.check_same_settings(study, other_teacher, {"alpha": "range"}, created=False)


def test_a_worker_joining_a_new_study_waits_for_its_creators_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers start one new study with different flags: the one that created it records its settings a moment
    later; the other must compare with those, not record its own over them (both would go on, mixing settings)."""
    monkeypatch.setattr(sweep, "SETTINGS_WAIT_S", 10.0)  # the thread failing makes the test fail, not hang
    monkeypatch.setattr(sweep, "SETTINGS_POLL_S", 0.05)
    storage = open_storage(str(tmp_path / "study.journal"))
    creator, created = load_study(storage, "s")
    joiner, joined_created = load_study(storage, "s")
    assert (created, joined_created) == (True, False)
    recorder = threading.Timer(0.5, sweep.check_same_settings, (creator, {"alpha": 0.1}, {}), {"created": True})
    recorder.start()
    with pytest.raises(UsageError, match=r"other settings \(alpha\)"):
        sweep.check_same_settings(joiner, {"alpha": 0.2}, {}, created=False)
    recorder.join()
    assert creator.user_attrs["shared"] == {"alpha": 0.1}
    sweep.check_same_settings(joiner, {"alpha": 0.1}, {}, created=False)  # the same flags join


def test_a_study_made_elsewhere_takes_the_first_workers_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A study created without settings (`optuna create-study`) gets the first worker's once the wait is over;
    `--report_only` does not wait."""
    monkeypatch.setattr(sweep, "SETTINGS_WAIT_S", 0.5)
    monkeypatch.setattr(sweep, "SETTINGS_POLL_S", 0.05)
    storage = open_storage(str(tmp_path / "study.journal"))
    load_study(storage, "s")
    study, created = load_study(storage, "s")
    started = time.monotonic()
    sweep.check_same_settings(study, {"alpha": 0.1}, {}, created=created)
    assert time.monotonic() - started >= 0.5
    assert study.user_attrs == {"shared": {"alpha": 0.1}, "space": {}}
    assert "study s has no recorded settings: recording this worker's" in caplog.text
    monkeypatch.setattr(sweep, "SETTINGS_WAIT_S", 60.0)
    load_study(storage, "t")
    started = time.monotonic()
    sweep.check_same_settings(load_study(storage, "t")[0], {"alpha": 0.1}, {}, created=False, wait=False)
    assert time.monotonic() - started < 30


@pytest.mark.slow
def test_sweep_runs_continues_and_writes_best_yaml(student: Path, rte_without_dev: Path, tmp_path: Path) -> None:
    output_dir = tmp_path / "sweep"
    flags = [*runner_flags(student, rte_without_dev, output_dir), "--search_space", "{alpha: [0.1, 0.3]}"]
    assert sweep.main([*flags, "--n_trials", "2"]) == 0
    url = open_storage(str(output_dir / "study.journal"))
    study = optuna.load_study(study_name="rte_pseudo_kd", storage=url)
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE] * 2
    assert set(study.trials[0].params) == {"learning_rate", "alpha", "tau"}
    for trial in study.trials:
        run_dir = Path(trial.user_attrs["run_dir"])
        config = yaml.safe_load((run_dir / "trial.yaml").read_text())
        assert config["heldout_fraction"] == 0.1 and config["overwrite_output_dir"] is True
        assert config["beta"] == pytest.approx(trial.params["alpha"] * trial.params["tau"])
        assert json.loads((run_dir / "all_results.json").read_text())["eval_split"] == "heldout"
        assert not list(run_dir.glob("*.safetensors")) and not (run_dir / "tokenizer.json").exists()  # record only
        assert (run_dir / "runner.log").is_file() and (run_dir / "trainer_state.json").is_file()

    assert sweep.main([*flags, "--n_trials", "3"]) == 0  # continues: one more trial, not three
    study = optuna.load_study(study_name="rte_pseudo_kd", storage=url)
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE] * 3
    best = max(study.trials, key=lambda trial: trial.value)
    config = yaml.safe_load((output_dir / "best.yaml").read_text())
    assert config["alpha"] == best.params["alpha"]
    assert config["beta"] == pytest.approx(best.params["alpha"] * best.params["tau"])
    assert config["learning_rate"] == best.params["learning_rate"]
    assert not {"heldout_fraction", "output_dir", "overwrite_output_dir"} & set(config)
    table = (output_dir / "trials.md").read_text()
    assert "3 complete" in table and table.count("| complete |") == 3
    assert (output_dir / "optimization_history.png").stat().st_size > 0

    changed = [arg if arg != "32" else "24" for arg in flags]  # another --max_seq_length: another experiment
    assert sweep.main([*changed, "--n_trials", "4"]) == 2


@pytest.mark.slow
def test_two_workers_share_one_study(student: Path, rte_without_dev: Path, tmp_path: Path) -> None:
    url = str(tmp_path / "shared.journal")
    env = repo_env()
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pseudo_kd_hf.tuning.sweep",
                *runner_flags(student, rte_without_dev, tmp_path / f"worker{index}"),
                "--storage",
                url,
                "--study_name",
                "shared",
                "--n_trials",
                "4",
                "--search_space",
                "{alpha: [0.1]}",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for index in range(2)
    ]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    trials = optuna.load_study(study_name="shared", storage=open_storage(url)).trials
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    assert len(complete) == 4
    run_dirs = [trial.user_attrs["run_dir"] for trial in complete]
    assert len(set(run_dirs)) == len(run_dirs)  # every trial ran once, in its own folder
    assert {Path(run_dir).parents[1].name for run_dir in run_dirs} == {"worker0", "worker1"}  # both worked
