"""nablanet sweep (issue 26): the search space's checks, tiny sweeps on MNIST (one epoch, batch 1000), a
stopped sweep continued, a NaN trial failed, a worker killed with -9, and two workers sharing a study on
a real PostgreSQL server. Each signal or kill comes at a point read from the study's storage, never after
a fixed sleep."""

from __future__ import annotations

import csv
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

import nablanet
from nablanet.app.cli import main
from nablanet.app.run import TrainingSettings
from nablanet.app.sweep import parse_dimension, parse_space, sweep

TINY = TrainingSettings(epochs=1, batch_size=1000, val_split=0.1)
TINY_OPTIONS = ["--epochs", "1", "--batch-size", "1000"]
SOURCE = str(Path(nablanet.__file__).resolve().parents[1])  # this checkout's package, in every subprocess


def nablanet_process(*arguments, cwd):
    environment = {**os.environ, "PYTHONPATH": SOURCE}
    return subprocess.Popen(
        [sys.executable, "-m", "nablanet", *arguments],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def study_of(folder: Path, name: str = "sweep"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'sweep.db'}")


def wait_until(condition, process, limit: float = 240.0):
    """Once the sweep has said that its study is ready (its first line), poll ``condition()`` (reading the
    study's storage) until it returns something; fail if the process ends first or the limit passes."""
    assert process.stdout.readline().startswith("Sweep "), process.communicate()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with_value = condition()
        if with_value:
            return with_value
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    pytest.fail("the sweep never reached the point the test waits for")


# --- the search space -------------------------------------------------------------------------------------


def test_dimensions_are_read_as_the_command_line_writes_them():
    space = parse_space(
        [
            "lr=loguniform(1e-4,1e-1)",
            "hidden=choice(none,64,[256,128])",
            "optimizer=choice(sgd,adam)",
            "batch-size=int(32,256)",
            "dropout=uniform(0,0.5)",
            "activation=choice(relu,tanh)",
        ]
    )
    assert [(d.name, d.kind, d.values) for d in space] == [
        ("lr", "loguniform", (1e-4, 0.1)),
        ("hidden", "choice", ((), (64,), (256, 128))),
        ("optimizer", "choice", ("sgd", "adam")),
        ("batch_size", "int", (32, 256)),
        ("dropout", "uniform", (0.0, 0.5)),
        ("activation", "choice", ("relu", "tanh")),
    ]
    assert space[1].text() == "hidden=choice([],[64],[256,128])"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lr 0.1", "write NAME=KIND(VALUES)"),
        ("learning-rate=loguniform(1e-4,1e-1)", "--learning-rate is not an option of nablanet train"),
        ("val-split=choice(0.1,0.2)", "--val-split is the same for every trial"),
        ("lr=normal(0,1)", "'normal' is not a kind"),
        ("lr=loguniform(0,1)", "loguniform needs numbers above 0"),
        ("lr=loguniform(0.1,0.01)", "the lowest value must come first"),
        ("lr=uniform(0.1)", "uniform needs two numbers"),
        ("lr=uniform(a,b)", "uniform needs two float numbers"),
        ("epochs=uniform(1,5)", "--epochs does not take whole numbers"),
        ("lr=int(1,5)", "--lr does not take any numbers"),
        ("hidden=choice(64,sixty)", "'sixty' is not a value of --hidden"),
        ("hidden=choice(64,64)", "choice needs different values"),
        ("optimizer=choice(sgd,adamm)", "'adamm' is not a choice of --optimizer"),
        ("activation=choice(relu,relux)", "'relux' is not a choice of --activation"),
        ("momentum=choice(0.5,1.5)", "--momentum"),
        ("dropout=uniform(0,1)", "--dropout"),
        ("nesterov=choice(true,false)", "--nesterov needs --momentum"),
    ],
)
def test_a_bad_dimension_is_one_line_naming_it(text, expected):
    with pytest.raises(ValueError, match=r"^--space") as error:
        parse_dimension(text)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_the_space_and_the_sweep_options_are_checked_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="--lr is given twice"):
        parse_space(["lr=choice(0.1,0.2)", "lr=loguniform(0.01,0.1)"])
    with pytest.raises(ValueError, match="at least one"):
        parse_space([])
    with pytest.raises(ValueError, match="--sampler grid needs a space of choices"):
        sweep(["lr=loguniform(0.01,0.1)"], TINY, sampler="grid", out=tmp_path / "s")
    with pytest.raises(ValueError, match="give --val-split"):
        sweep(["lr=choice(0.1,0.2)"], TrainingSettings(), out=tmp_path / "s")
    with pytest.raises(ValueError, match="--trials must be"):
        sweep(["lr=choice(0.1,0.2)"], TINY, trials=0, out=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_the_command_line_says_a_bad_space_in_one_line(capsys, tmp_path):
    status = main(["sweep", "--space", "lr=loguniform(0,1)", "--out", str(tmp_path / "s")])
    error = capsys.readouterr().err
    assert status == 2
    assert error.count("\n") == 1
    assert error.startswith("nablanet sweep: error: --space 'lr=loguniform(0,1)': loguniform needs numbers above 0")


# --- sweeps --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_grid_sweep_runs_each_point_once_and_keeps_the_best_model(tmp_path):
    out = tmp_path / "grid"
    result = sweep(
        ["lr=choice(0.03,0.3)", "hidden=choice(none,[16])"], TINY, sampler="grid", out=out, report=lambda line: None
    )
    points = {(row.params["lr"], row.params["hidden"]) for row in result.trials}
    assert points == {(0.03, "none"), (0.3, "none"), (0.03, "16"), (0.3, "16")}
    assert [row.state for row in result.trials] == ["complete"] * 4
    accuracies = [row.val_accuracy for row in result.trials]
    assert accuracies == sorted(accuracies, reverse=True)  # the table: best first
    for row in result.trials:  # every trial a normal run, its validation accuracy the one its metrics.json says
        metrics = json.loads((out / row.folder / "metrics.json").read_text())
        assert metrics["history"]["val_accuracy"][-1] == row.val_accuracy
    best = nablanet.load(out / "best-model.npz")
    assert best.get_config() == nablanet.load(out / result.best.folder / "model.npz").get_config()
    with open(out / "results.csv") as file:
        assert [int(line["trial"]) for line in csv.DictReader(file)] == [row.number for row in result.trials]
    assert {"history.png", "accuracy_vs_lr.png", "importances.png"} <= set(result.written)


@pytest.mark.slow
def test_a_diverging_trial_is_marked_failed_and_the_sweep_goes_on(tmp_path):
    result = sweep(
        ["lr=choice(0.1,1e9)"],
        TrainingSettings(hidden=(16,), epochs=1, batch_size=1000, val_split=0.1),
        sampler="grid",
        out=tmp_path / "nan",
        report=lambda line: None,
    )
    states = {row.params["lr"]: row for row in result.trials}
    assert states[0.1].state == "complete"
    assert states[1e9].state == "fail"
    assert "training diverged" in states[1e9].note
    assert result.best.params["lr"] == 0.1


@pytest.mark.slow
def test_sigterm_keeps_the_finished_trials_and_the_same_command_continues(tmp_path):
    command = ["sweep", "--space", "lr=loguniform(0.01,1)", "--trials", "5", "--sampler", "random", *TINY_OPTIONS]
    command += ["--out", "s"]
    process = nablanet_process(*command, cwd=tmp_path)
    # the controlled point: the sweep's own line that a trial is complete (it is recorded before a stop);
    # with four trials left, the sweep cannot end before the signal comes
    for line in process.stdout:
        if " complete (" in line:
            break
    else:
        pytest.fail(f"the sweep ended without completing a trial: {process.communicate()}")
    process.send_signal(signal.SIGTERM)
    _, error = process.communicate(timeout=120)
    assert process.returncode == 143
    assert error.count("\n") == 1 and "kept in s/sweep.db: the same command continues" in error
    kept = [trial for trial in study_of(tmp_path / "s").get_trials() if trial.state.name == "COMPLETE"]
    assert kept
    again = nablanet_process(*command, cwd=tmp_path)
    output, error = again.communicate(timeout=300)
    assert again.returncode == 0, error
    assert f"continuing after {len(kept)}" in output or "continuing after" in output
    trials = study_of(tmp_path / "s").get_trials()
    assert sum(trial.state.name == "COMPLETE" for trial in trials) == 5
    assert all(trial.state.name != "RUNNING" for trial in trials)
    learning_rates = [trial.params["lr"] for trial in trials]
    assert len(set(learning_rates)) == len(learning_rates)  # the continued study's sampler does not start over


@pytest.mark.slow
def test_a_worker_killed_with_minus_9_leaves_a_failed_trial_and_the_budget_is_completed(tmp_path):
    script = (
        "from nablanet.app.sweep import sweep\nfrom nablanet.app.run import TrainingSettings\n"
        "sweep(['lr=loguniform(0.01,0.5)'], TrainingSettings(epochs=2, batch_size=1000, val_split=0.1), trials=4,"
        " sampler='random', prune=False, jobs=2, heartbeat=1, out='s')\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": SOURCE},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def running_after_its_first_epoch():  # in a worker process the sweep started, not in the sweep's own (worker 0)
        for trial in study_of(tmp_path / "s").get_trials():
            pid = trial.user_attrs.get("pid")
            if trial.state.name == "RUNNING" and trial.intermediate_values and pid not in (None, process.pid):
                return trial
        return None

    victim = wait_until(running_after_its_first_epoch, process)
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)
    _, error = process.communicate(timeout=300)
    assert process.returncode == 0, error
    assert "Traceback" not in error
    trials = study_of(tmp_path / "s").get_trials()
    assert trials[victim.number].state.name == "FAIL"  # failed by the heartbeat check, not left running
    assert sum(trial.state.name == "COMPLETE" for trial in trials) == 4  # the budget, the killed trial replaced


# --- PostgreSQL ------------------------------------------------------------------------------------------


def _postgres_binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@pytest.fixture
def postgresql():
    """A private PostgreSQL server for one test: initdb in a temporary folder, listening on a Unix socket
    there only (no TCP); the URL of its database. As root, the server runs as the user nobody (PostgreSQL
    refuses root). Skipped only where PostgreSQL's server is not installed."""
    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL's server (initdb, pg_ctl) is not installed: apt install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="nablanet-pg-"))  # short: a socket's path has at most 107 characters
    as_user: list[str] = []
    if os.getuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        as_user = ["runuser", "-u", "nobody", "--"]
    data, log = folder / "data", folder / "server.log"
    subprocess.run(
        [*as_user, binaries / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    start = [*as_user, binaries / "pg_ctl", "-D", data, "-l", log, "-w"]
    subprocess.run([*start, "-o", f"-c listen_addresses='' -k {folder}", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@/postgres?host={folder}"
    finally:
        subprocess.run([*start, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_a_study_on_postgresql_with_the_result_of_sqlite(tmp_path, postgresql):
    space = ["--space", "lr=choice(0.03,0.3)", "--space", "hidden=choice(none,[16])", "--sampler", "grid"]
    shared = [*space, *TINY_OPTIONS, "--storage", postgresql, "--study", "lab"]
    machines = [nablanet_process("sweep", *shared, "--out", name, cwd=tmp_path) for name in ("a", "b")]
    for machine in machines:
        _, error = machine.communicate(timeout=300)
        assert machine.returncode == 0, error
    study = optuna.load_study(study_name="lab", storage=postgresql.replace("postgresql://", "postgresql+psycopg://"))
    trials = study.get_trials()
    assert [trial.state.name for trial in trials] == ["COMPLETE"] * 4  # none lost, none left running
    points = [(trial.params["lr"], trial.params["hidden"]) for trial in trials]
    assert sorted(points) == sorted({(0.03, "none"), (0.3, "none"), (0.03, "16"), (0.3, "16")})  # each once
    folders = [trial.user_attrs["folder"] for trial in trials]
    found = [folder for folder in folders for machine in "ab" if (tmp_path / machine / folder / "model.npz").exists()]
    assert sorted(found) == sorted(folders)  # each trial's run folder on exactly one machine
    alone = sweep(space[1::2][:2], TINY, sampler="grid", out=tmp_path / "sqlite", report=lambda line: None)
    by_point = {(row.params["lr"], row.params["hidden"]): row.val_accuracy for row in alone.trials}
    assert {point: trial.value for point, trial in zip(points, trials, strict=True)} == by_point
