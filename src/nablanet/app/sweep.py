"""Sweeps: many trainings of one recipe with different hyper-parameters, searched by Optuna.

A sweep is an Optuna *study* kept in a database (by default the SQLite file ``sweep.db`` in the sweep's
folder; any SQLAlchemy URL, such as ``postgresql://…``, lets workers on several machines share one study).
Each *trial* is a normal :func:`~nablanet.app.run.train_run` in its own folder ``trial-NNNN``, with the
training settings of the base recipe and the values the sampler chose for the search space. A trial's
objective is its validation accuracy after its last epoch; its per-epoch validation accuracy is reported
to Optuna by a callback, and Optuna's median pruner stops a trial that lies below the median of the
trials before it at the same epoch (the trial then ends like early stopping: its model is saved).

The search space is written the way the command line writes ``train``'s options::

    lr=loguniform(1e-4,1e-1)     a float, uniform in its logarithm
    dropout=uniform(0,0.5)       a float
    batch-size=int(32,256)       an integer
    hidden=choice(64,128,[256,128])   one of the values (a list of layer sizes in brackets)
    optimizer=choice(sgd,adam)

In a notebook::

    from nablanet.app.sweep import sweep
    result = sweep(["lr=loguniform(1e-3,1)", "hidden=choice(32,128)"], TrainingSettings(epochs=3, val_split=0.1),
                   trials=10, out="sweeps/lr")
    print(result.table())

Reliability: Ctrl-C or SIGTERM ends the sweep with every finished trial kept in the study, and the same
call continues it; a trial whose loss becomes NaN (:class:`~nablanet.training.loop.TrainingDiverged`) or
whose combination of settings is refused is marked failed and replaced; a worker killed outright leaves a
trial whose heartbeat stops, and the study marks it failed once the grace period has passed.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import math
import multiprocessing
import os
import re
import shutil
import signal
import sys
import time
import typing
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..core import _checks
from ..core.activations import ACTIVATIONS
from ..core.initializers import INITIALIZERS
from ..core.optimizers import OPTIMIZERS
from ..core.schedules import SCHEDULES
from ..files.atomic import atomic_write
from ..files.folders import claim_folder
from ..training.callbacks import Callback
from ..training.loop import TrainingDiverged
from . import plots
from .run import VALUE_CHECKS, TrainingSettings, _option, train_run
from .signals import deferred, exit_status, install, signals_ignored
from .terminal import one_line

SAMPLERS = ("tpe", "random", "grid")
KINDS = ("loguniform", "uniform", "int", "choice")
# Settings a search space may not vary: the data set and its validation split define what trials are compared on.
FIXED = ("dataset", "data_home", "val_split")
# Set to 1 in each worker process before it imports NumPy, so that N workers use N cores, not N × all of them.
BLAS_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMBA_NUM_THREADS",
)
POLL_SECONDS = 0.2  # how often a worker with no trial left to start looks whether the others' have ended
HEARTBEAT_SECONDS = 5  # a running trial writes its heartbeat this often; silent for 3× this long, it is failed
DEFAULTS = TrainingSettings()
SWEEP_DEFAULTS = TrainingSettings(val_split=0.1)  # a sweep's trials are compared on a tenth of the training set
STUDY_ATTRIBUTE = "nablanet_sweep"  # the study's record of what it searches (refused if a later call differs)


def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainingSettings)


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One hyper-parameter of a search space: a training setting's ``name`` (as in
    :class:`~nablanet.app.run.TrainingSettings`), the ``kind`` of its distribution ("loguniform", "uniform",
    "int" or "choice") and its ``values`` (the low and high ends, or the choices).

    Args:
        name: The setting, e.g. "lr" or "hidden".
        kind: "loguniform", "uniform", "int" or "choice".
        values: (low, high) for the ranges; the settings' values for "choice".
    """

    name: str
    kind: str
    values: tuple

    def suggest(self, trial) -> Any:
        """The value Optuna's ``trial`` chooses, as the training setting takes it.

        Args:
            trial (optuna.trial.Trial): The trial that chooses.
        """
        if self.kind == "choice":
            labels = [_label(value) for value in self.values]
            return self.values[labels.index(trial.suggest_categorical(self.name, labels))]
        if self.kind == "int":
            return trial.suggest_int(self.name, *self.values)
        return trial.suggest_float(self.name, *self.values, log=self.kind == "loguniform")

    def text(self) -> str:
        """The dimension as the command line writes it: ``lr=loguniform(0.0001,0.1)``."""
        values = ",".join(str(_label(value, bracket=True)) for value in self.values)
        return f"{self.name.replace('_', '-')}={self.kind}({values})"


def _label(value: Any, *, bracket: bool = False) -> Any:
    """A choice as Optuna stores it (numbers, strings, booleans; layer sizes as "256,128", "none" for none)."""
    if isinstance(value, tuple):
        joined = ",".join(map(str, value))
        return f"[{joined}]" if bracket else joined or "none"
    return f"{value:g}" if bracket and isinstance(value, float) else value


def _named_choices() -> dict[str, tuple[str, ...]]:
    """The settings that name something registered, with the names ``train`` accepts (its parser's choices)."""
    return {
        "optimizer": tuple(OPTIMIZERS.names()),
        "activation": tuple(ACTIVATIONS.names()),
        "schedule": tuple(SCHEDULES.names()),
        "init": ("auto", *INITIALIZERS.names()),
        "dtype": tuple(np.dtype(dtype).name for dtype in _checks.FLOAT_DTYPES),
    }


def _split(arguments: str) -> list[str]:
    """Split at the commas outside brackets: ``64,[256,128]`` → ["64", "[256,128]"]."""
    parts, depth, current = [], 0, ""
    for character in arguments:
        depth += {"[": 1, "]": -1}.get(character, 0)
        if character == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += character
    parts.append(current.strip())
    return parts


def _value(name: str, text: str, where: str) -> Any:
    """A choice's text as the setting's type."""
    hint = _hints()[name]
    accepted = typing.get_args(hint) or (hint,)
    try:
        if tuple in accepted or typing.get_origin(hint) is tuple:
            inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
            return tuple(int(size) for size in inner.split(",") if size.strip()) if inner.strip() != "none" else ()
        if bool in accepted:
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if int in accepted:
            return int(text)
        if float in accepted:
            return float(text)
    except ValueError:
        raise ValueError(f"{where}: {text!r:.40} is not a value of {_option(name)}") from None
    return text


def parse_dimension(text: str, base: TrainingSettings = DEFAULTS) -> Dimension:
    """Read one dimension of a search space, ``name=kind(arguments)``, and check it fully: the setting
    exists and may vary, the kind suits its type, the ends are in order, and every value the dimension can
    take is one that ``train`` accepts with the ``base`` settings.

    Args:
        text: E.g. "lr=loguniform(1e-4,1e-1)", "hidden=choice(64,[256,128])", "optimizer=choice(sgd,adam)".
        base: The settings the other options keep; each choice is checked with them.
    """
    where = f"--space {text!r:.80}"
    match = re.fullmatch(r"\s*([a-z_-]+)\s*=\s*([a-z]+)\((.*)\)\s*", text)
    if match is None:
        raise ValueError(f"{where}: write NAME=KIND(VALUES), e.g. lr=loguniform(1e-4,1e-1) or hidden=choice(64,128)")
    name, kind, arguments = match.group(1).replace("-", "_"), match.group(2), match.group(3)
    if name not in _hints():
        raise ValueError(f"{where}: {_option(name)} is not an option of nablanet train")
    if name in FIXED:
        raise ValueError(f"{where}: {_option(name)} is the same for every trial of a sweep; give it as an option")
    if kind not in KINDS:
        raise ValueError(f"{where}: {kind!r} is not a kind of search space; use one of {', '.join(KINDS)}")
    parts = _split(arguments)
    if kind == "choice":
        values = tuple(_value(name, part, where) for part in parts)
        if not arguments.strip() or len(set(values)) != len(values):
            raise ValueError(f"{where}: choice needs different values, e.g. choice(64,128)")
    else:
        number = int if kind == "int" else float
        if number not in (typing.get_args(_hints()[name]) or (_hints()[name],)) or _hints()[name] is bool:
            raise ValueError(f"{where}: {_option(name)} does not take {'whole' if number is float else 'any'} numbers")
        if len(parts) != 2:
            raise ValueError(f"{where}: {kind} needs two numbers, the lowest and the highest value")
        try:
            values = tuple(number(part) for part in parts)
        except ValueError:
            raise ValueError(
                f"{where}: {kind} needs two {number.__name__} numbers, received {arguments!r:.40}"
            ) from None
        if not values[0] < values[1] or not all(math.isfinite(value) for value in values):
            raise ValueError(f"{where}: the lowest value must come first and be below the highest")
        if kind == "loguniform" and values[0] <= 0:
            raise ValueError(f"{where}: loguniform needs numbers above 0 (it is uniform in their logarithm)")
    for value in values:
        if name in _named_choices() and value not in _named_choices()[name]:
            names = ", ".join(_named_choices()[name])
            raise ValueError(f"{where}: {value!r:.40} is not a choice of {_option(name)} ({names})")
        try:
            if name in VALUE_CHECKS:
                VALUE_CHECKS[name](_option(name), value)
            dataclasses.replace(base, **{name: value}).check()
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    return Dimension(name, kind, values)


def parse_space(space: Sequence[str] | Mapping[str, str], base: TrainingSettings = DEFAULTS):
    """Read a whole search space (see :func:`parse_dimension`); each setting may appear once.

    Args:
        space: The dimensions as text, ["lr=loguniform(1e-4,1e-1)", …], or as a mapping {"lr": "loguniform(…)"}.
        base: The settings the other options keep.
    """
    texts = [f"{name}={text}" for name, text in space.items()] if isinstance(space, Mapping) else list(space)
    if isinstance(space, str) or not texts:
        raise ValueError("--space: give at least one, e.g. --space 'lr=loguniform(1e-4,1e-1)'")
    dimensions = tuple(parse_dimension(text, base) for text in texts)
    names = [dimension.name for dimension in dimensions]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"--space: {_option(name)} is given twice")
    return dimensions


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What every worker needs (it travels to worker processes, so plain data): the base settings, the
    space, the budget, the sampler, pruning, where the study is and where trial folders go."""

    base: TrainingSettings
    space: tuple[Dimension, ...]
    trials: int
    sampler: str
    prune: bool
    seed: int
    storage: str
    study: str
    folder: Path
    heartbeat: int

    def record(self) -> dict[str, Any]:
        """What the study keeps of the plan, compared when a sweep continues it."""
        return {
            "base": self.base.as_dict(),
            "space": [dimension.text() for dimension in self.space],
            "sampler": self.sampler,
            "prune": self.prune,
        }


def _storage(plan: _Plan):
    import optuna

    options: dict[str, Any] = {}
    url = plan.storage
    if url.startswith(("postgresql://", "postgres://")):  # the driver the sweep extra installs: psycopg 3
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 120}  # workers wait for each other's writes
    return optuna.storages.RDBStorage(
        url, engine_kwargs=options, heartbeat_interval=plan.heartbeat, grace_period=3 * plan.heartbeat
    )


def _sampler(plan: _Plan, worker: int, earlier: int = 0):
    """The sampler of worker ``worker``, started on a study that holds ``earlier`` trials: each worker its own
    seed, and a continued study another one, so that no two propose the same first points."""
    import optuna

    seed = plan.seed + worker + 1009 * earlier
    if plan.sampler == "grid":  # its points are queued in the study (see _queue_grid), every value fixed

        class QueueOnly(optuna.samplers.RandomSampler):
            def sample_independent(self, study, trial, param_name, param_distribution):
                raise _Surplus("every point of the grid was taken")

        return QueueOnly()
    if plan.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(plan: _Plan):
    import optuna

    if not plan.prune:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)


class TrialReport(Callback):
    """Reports a trial's validation accuracy to Optuna after every epoch; where the pruner finds the trial
    hopeless (below the median of the trials before it at that epoch) and epochs are left to save, ends its
    training as early stopping does and notes ``pruned``.

    Args:
        trial (optuna.trial.Trial): The trial being trained.
        epochs: The epochs the trial would run.
        prune: Whether the pruner may end the trial.
    """

    def __init__(self, trial, epochs: int, prune: bool = True):
        self.trial, self.epochs, self.prune, self.pruned = trial, epochs, prune, False

    def on_train_begin(self, model) -> None:
        """Keep the model, whose ``stop_training`` ends a pruned trial.

        Args:
            model (Sequential): The model the trial trains.
        """
        self.model = model

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        """Report ``logs["val_accuracy"]`` as the trial's value at step ``epoch``; stop a hopeless trial.

        Args:
            epoch: The epoch's number, from 0 (Optuna's step).
            logs: The epoch's figures; "val_accuracy" among them.
        """
        self.trial.report(logs["val_accuracy"], epoch)
        if self.prune and epoch + 1 < self.epochs and self.trial.should_prune():
            self.pruned = True
            self.model.stop_training = True


def _objective(plan: _Plan, say: Callable[[str], None]) -> Callable:
    import optuna

    def objective(trial) -> float:
        trial.set_user_attr("pid", os.getpid())  # which worker runs it
        try:
            chosen = {dimension.name: dimension.suggest(trial) for dimension in plan.space}
        except _Surplus:
            trial.set_user_attr("failed", "surplus")
            raise
        folder = plan.folder / f"trial-{trial.number:04d}"
        trial.set_user_attr("folder", folder.name)
        described = ", ".join(f"{_option(name)} {_shown(_label(value))}" for name, value in chosen.items())
        settings = dataclasses.replace(plan.base, **chosen)
        report = TrialReport(trial, settings.epochs, plan.prune)
        try:
            result = train_run(
                settings, out=folder, report=lambda line: None, command=described, callbacks=[report], progress=False
            )
        except (TrainingDiverged, ValueError) as error:  # a NaN loss, a refused combination: the trial fails
            trial.set_user_attr("failed", one_line(str(error))[:300])
            say(f"trial {trial.number} failed ({described}): {one_line(str(error))[:200]}")
            raise
        history = result.history.as_dict()
        value = history["val_accuracy"][-1]
        trial.set_user_attr("epochs", len(history["val_accuracy"]))
        trial.set_user_attr("test_accuracy", result.test_accuracy)
        ending = f"pruned after epoch {len(history['val_accuracy'])}" if report.pruned else "complete"
        say(f"trial {trial.number} {ending} ({described}): validation accuracy {value:.4f}")
        if report.pruned:
            raise optuna.TrialPruned()
        return value

    return objective


def _quiet(optuna) -> None:
    """Optuna's own log lines (a failed trial's traceback among them) and its warning that the heartbeat is
    experimental are left out: the sweep says one line per trial."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _counts(study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def _work(plan: _Plan, worker: int, say: Callable[[str], None]) -> None:
    """Run trials until the study holds ``plan.trials`` finished ones (complete or pruned) — counted in the
    study, so that workers on other machines share the budget. A failed trial does not count (a new one
    replaces it) unless as many trials as the budget have failed; in a grid sweep, whose points wait in the
    study's queue, each point is run once (the database hands a queued trial to one worker only). When the
    last trials run elsewhere, wait for them: a worker killed meanwhile leaves a trial whose heartbeat
    stops, and :func:`optuna.storages.fail_stale_trials` marks it failed so that its place is taken here."""
    import optuna

    _quiet(optuna)
    study = optuna.load_study(study_name=plan.study, storage=_storage(plan), pruner=_pruner(plan))
    study.sampler = _sampler(plan, worker, len(study.get_trials(deepcopy=False)))
    objective = _objective(plan, say)
    while True:
        counts = _counts(study)
        finished = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
        failed, running, waiting = counts.get("FAIL", 0), counts.get("RUNNING", 0), counts.get("WAITING", 0)
        if plan.sampler == "grid":
            if not waiting and not running and counts:  # (no trial at all: the study's creator is queueing them)
                return
        elif finished >= plan.trials or failed >= plan.trials:
            return
        if not waiting and (plan.sampler == "grid" or finished + running >= plan.trials):
            optuna.storages.fail_stale_trials(study)
            time.sleep(POLL_SECONDS)  # the last trials run in other workers: look again soon
            continue
        with deferred():  # a signal waits for a safe point in the training, or for the trial's result to be recorded
            study.optimize(objective, n_trials=1, catch=(TrainingDiverged, ValueError, _Surplus), gc_after_trial=False)


def _queue_grid(study, plan: _Plan) -> None:
    """A grid sweep's points wait in the study's queue, each to be handed to one worker: queue those that
    have no trial yet, or only one stopped by an interruption (not one that failed by itself). Done when
    no trial runs or waits — a new study, or one continued — not by a worker that joins a busy one."""
    trials = study.get_trials(deepcopy=False)
    if any(trial.state.name in ("RUNNING", "WAITING") for trial in trials):
        return
    done = {
        tuple(sorted(trial.params.items()))
        for trial in trials
        if trial.state.name != "FAIL" or "failed" in trial.user_attrs
    }
    names = [dimension.name for dimension in plan.space]
    grid = [dict(zip(names, point, strict=True)) for point in itertools.product(*(d.values for d in plan.space))]
    labelled = [{name: _label(value) for name, value in point.items()} for point in grid][: plan.trials]
    for params in labelled:
        if tuple(sorted(params.items())) not in done:
            study.enqueue_trial(params)


class _Surplus(Exception):
    """A trial of a grid sweep that the queue did not hand out (two workers asked for its last point at
    once): it fails at once, noted as such, and is left out of the results."""


def _worker_main(plan: _Plan, worker: int) -> None:
    """A worker process: SIGTERM (sent by the sweep) ends its trial as it ends a training; Ctrl-C reaches it
    through the sweep only. Whatever stops it is one line on stderr, never a traceback."""
    install()
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def say(line: str) -> None:
        print(f"worker {worker}: {line}", flush=True)

    try:
        _work(plan, worker, say)
    except KeyboardInterrupt as stop:
        with signals_ignored(keep=True):
            sys.exit(exit_status(stop))
    except Exception as error:
        print(f"nablanet sweep: worker {worker}: error: {one_line(str(error))}", file=sys.stderr, flush=True)
        sys.exit(2)


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """Set :data:`BLAS_THREAD_VARIABLES` to 1 while worker processes start: they inherit the environment
    before they import NumPy."""
    saved = {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(BLAS_THREAD_VARIABLES, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_workers(plan: _Plan, jobs: int, report: Callable[[str], None]) -> None:
    """``jobs`` workers: this process is worker 0 — its BLAS limited to one thread while it trains (with
    threadpoolctl: NumPy is loaded here already) — and ``jobs - 1`` more are started fresh (spawn) with one
    BLAS thread each. A Ctrl-C or SIGTERM here ends this process's trial as it ends a training and sends
    SIGTERM to each other worker, which ends its trial (marked failed) and exits; it is raised again."""
    from threadpoolctl import threadpool_limits

    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker_main, args=(plan, index), daemon=False) for index in range(1, jobs)]
    try:
        with _one_blas_thread():
            for worker in workers:
                worker.start()
        with threadpool_limits(limits=1):
            _work(plan, 0, lambda line: report(f"worker 0: {line}"))
        for worker in workers:
            worker.join()
    except BaseException:
        with signals_ignored():
            for worker in workers:
                if worker.pid is not None and worker.is_alive():
                    os.kill(worker.pid, signal.SIGTERM)
            for worker in workers:
                if worker.pid is not None:
                    worker.join()
        raise
    failed = [worker for worker in workers if worker.exitcode and worker.exitcode > 0]
    if failed:  # a worker's error (said in its own line above); one killed by a signal leaves its trial to the others
        number = workers.index(failed[0]) + 1
        raise RuntimeError(f"worker {number} stopped with an error (exit status {failed[0].exitcode})")


@dataclasses.dataclass(frozen=True)
class TrialRow:
    """One trial of a sweep, as the results table shows it.

    Args:
        number: The trial's number in the study, from 0.
        state: "complete", "pruned", "fail" or "running".
        params: The values the sampler chose, by setting name (layer sizes as "256,128").
        val_accuracy: The validation accuracy after its last epoch (None if it has none).
        test_accuracy: The test accuracy of its model (None if it has none).
        epochs: The epochs it ran.
        folder: Its run folder's name in the sweep's folder.
        note: Why it failed, if it did.
    """

    number: int
    state: str
    params: dict[str, Any]
    val_accuracy: float | None
    test_accuracy: float | None
    epochs: int
    folder: str
    note: str = ""


@dataclasses.dataclass
class SweepResult:
    """What a sweep produced: its folder, the study (storage URL and name), every trial (best first), the
    best one, and the files written (``best-model.npz``, ``results.csv``, pictures).

    Args:
        folder: The sweep's folder.
        storage: The study's database URL.
        study: The study's name.
        trials: Every trial, sorted by validation accuracy (best first; failed ones last).
        best: The best complete trial, or None.
        written: The files written to ``folder``.
    """

    folder: Path
    storage: str
    study: str
    trials: list[TrialRow]
    best: TrialRow | None
    written: list[str]

    @property
    def epochs_run(self) -> int:
        """The epochs all trials ran together (what pruning saves)."""
        return sum(row.epochs for row in self.trials)

    def table(self, rows: int | None = None) -> str:
        """The results as a text table, best validation accuracy first.

        Args:
            rows: Show only the first ``rows`` trials; None: all.
        """
        names = sorted({name for row in self.trials for name in row.params})
        header = ["trial", "state", "val acc", "test acc", "epochs", *names]
        lines = [header]
        for row in self.trials[:rows]:
            lines.append(
                [
                    str(row.number),
                    row.state,
                    "" if row.val_accuracy is None else f"{row.val_accuracy:.4f}",
                    "" if row.test_accuracy is None else f"{row.test_accuracy:.4f}",
                    str(row.epochs),
                    *(_shown(row.params.get(name)) for name in names),
                ]
            )
        widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
        return "\n".join(
            "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)) for line in lines
        )


def _shown(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


_ORDER = {"complete": 0, "pruned": 1, "running": 2, "fail": 3, "waiting": 4}


def _rows(study) -> list[TrialRow]:
    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("failed") == "surplus":
            continue
        state = trial.state.name.lower()
        values = list(trial.intermediate_values.values())
        value = trial.value if trial.value is not None else (values[-1] if values and state == "pruned" else None)
        rows.append(
            TrialRow(
                trial.number,
                state,
                dict(trial.params),
                value,
                trial.user_attrs.get("test_accuracy"),
                trial.user_attrs.get("epochs", len(values)),
                trial.user_attrs.get("folder", ""),
                trial.user_attrs.get("failed", "stopped: interrupted, or its worker killed" if state == "fail" else ""),
            )
        )
    return sorted(rows, key=lambda row: (_ORDER.get(row.state, 5), -(row.val_accuracy or 0.0), row.number))


def sweep(
    space: Sequence[str] | Mapping[str, str],
    base: TrainingSettings = SWEEP_DEFAULTS,
    *,
    trials: int = 20,
    sampler: str = "tpe",
    prune: bool = True,
    jobs: int = 1,
    storage: str | None = None,
    study: str = "sweep",
    out: Path | str | None = None,
    seed: int = 0,
    report: Callable[[str], None] = print,
    heartbeat: int = HEARTBEAT_SECONDS,
) -> SweepResult:
    """Search ``space`` with Optuna: train ``trials`` runs of ``base`` with values the sampler chooses, and
    write the results table (``results.csv``), the best trial's model (``best-model.npz``) and the pictures
    to the sweep's folder. Calling it again with the same arguments continues the study (a sweep that was
    stopped, or one with a larger ``trials``).

    Args:
        space: The search space, e.g. ["lr=loguniform(1e-4,1e-1)", "optimizer=choice(sgd,adam)"] (see
            :func:`parse_dimension`).
        base: The settings that every trial keeps (it needs ``val_split`` > 0: trials are compared on their
            validation accuracy).
        trials: How many trials must end complete or pruned (failed ones are replaced), counted in the
            study: workers on several machines share it.
        sampler: "tpe" (Optuna's Tree-structured Parzen Estimator), "random", or "grid" (every combination of
            a space of choices, ``trials`` at most).
        prune: Whether Optuna's median pruner stops trials below the median of earlier trials at an epoch.
        jobs: Workers on this machine, each with one BLAS thread: this process (limited with threadpoolctl)
            and ``jobs - 1`` processes started for the sweep (the environment variables in
            :data:`BLAS_THREAD_VARIABLES` set to 1 before they import NumPy). 1: train here, in this process,
            with NumPy's BLAS threads.
        storage: The study's database URL, e.g. "postgresql://host/db"; default: SQLite in ``out``.
        study: The study's name in the storage; several sweeps started with one name and storage share a study.
        out: The sweep's folder: trial folders, results and pictures (default: sweeps/STUDY).
        seed: The sampler's seed (worker ``k`` uses seed + k, a continued study another); the weights' seed is
            ``base.seed``.
        report: Receives a line for each trial and for the end.
        heartbeat: Seconds between a running trial's heartbeats; a trial silent for three times as long (its
            worker was killed) is marked failed.
    """
    try:
        import optuna
    except ImportError:
        raise RuntimeError("sweeps need Optuna: pip install 'nablanet[sweep]'") from None
    _checks_positive("trials", trials)
    _checks_positive("jobs", jobs)
    if sampler not in SAMPLERS:
        raise ValueError(f"--sampler must be one of {', '.join(SAMPLERS)}, received {sampler!r:.40}")
    if not base.val_split:
        raise ValueError("a sweep compares trials on a validation set: give --val-split, e.g. 0.1")
    base.check()
    dimensions = parse_space(space, base)
    if sampler == "grid":
        if any(dimension.kind != "choice" for dimension in dimensions):
            raise ValueError("--sampler grid needs a space of choices only, e.g. --space 'lr=choice(0.01,0.1)'")
        trials = min(trials, math.prod(len(dimension.values) for dimension in dimensions))
    folder = Path(out) if out is not None else Path("sweeps") / study
    with claim_folder(folder):
        url = storage or f"sqlite:///{(folder / 'sweep.db').resolve()}"
        plan = _Plan(base, dimensions, trials, sampler, prune, seed, url, study, folder, heartbeat)
        _quiet(optuna)
        shown = _without_password(storage) if storage else str(folder / "sweep.db")
        made, created = _open_study(plan)
        _settle(made, plan)
        if sampler == "grid" and (created or _counts(made)):  # a new study's creator, or a study continued
            _queue_grid(made, plan)
        kept = sum(1 for trial in made.get_trials(deepcopy=False) if trial.state.is_finished())
        report(
            f"Sweep {study!r} in {shown}: {trials} trials, {sampler} sampler, pruning {'on' if prune else 'off'}, "
            f"{jobs} worker{'s' if jobs > 1 else ''}" + (f"; continuing after {kept} trials" if kept else "")
        )
        try:
            if jobs == 1:
                _work(plan, 0, report)
            else:
                _run_workers(plan, jobs, report)
        except KeyboardInterrupt as stop:
            with signals_ignored():
                finished = sum(1 for row in _rows(made) if row.state in ("complete", "pruned"))
                _write_results(made, plan)
            raise type(stop)(
                f"{finished} finished trial{' is' if finished == 1 else 's are'} kept in {shown}: "
                "the same command continues the sweep"
            ) from None
        result = _write_results(made, plan)
    if result.best is not None:
        best = result.best
        report(
            f"Best: trial {best.number} ({', '.join(f'{k}={_shown(v)}' for k, v in best.params.items())}), "
            f"validation accuracy {best.val_accuracy:.4f}, test accuracy {best.test_accuracy:.4f}"
        )
    return result


def _without_password(url: str) -> str:
    """A database URL as it may be printed: its password hidden."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _open_study(plan: _Plan, attempts: int = 5):
    """The study, created here or already in the storage; and whether it was created here. Sweeps started on
    several machines at once race to create the database's tables and the study: the loser tries again."""
    import optuna

    for attempt in range(attempts):
        try:
            storage = _storage(plan)
            try:
                return optuna.create_study(study_name=plan.study, storage=storage, direction="maximize"), True
            except optuna.exceptions.DuplicatedStudyError:
                return optuna.load_study(study_name=plan.study, storage=storage), False
        except Exception as error:  # a database that cannot be reached, or a race lost: one line that names it
            if attempt == attempts - 1:
                message = one_line(str(error)).split(" (Background")[0]
                raise ValueError(f"--storage {_without_password(plan.storage)}: {message[:200]}") from None
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def _checks_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"--{name} must be a whole number of at least 1, received {value!r:.40}")


def _settle(study, plan: _Plan) -> None:
    """Record the plan in a new study; refuse to continue one whose plan differs (another space, base or sampler)."""
    saved = study.user_attrs.get(STUDY_ATTRIBUTE)
    if saved is None:
        study.set_user_attr(STUDY_ATTRIBUTE, plan.record())
    elif saved != plan.record():
        differing = next(key for key in plan.record() if saved.get(key) != plan.record()[key])
        raise ValueError(
            f"--study {plan.study} in {_without_password(plan.storage)} searches with another {differing} "
            f"({str(saved.get(differing))[:120]}): give the same options to continue it, or another --study"
        )


def _write_results(study, plan: _Plan) -> SweepResult:
    """results.csv, best-model.npz (a copy of the best trial's model) and the pictures, in the sweep's folder."""
    rows = _rows(study)
    folder, written = plan.folder, list[str]()
    complete = [row for row in rows if row.state == "complete" and (folder / row.folder / "model.npz").is_file()]
    best = complete[0] if complete else None
    result = SweepResult(folder, plan.storage, plan.study, rows, best, written)
    with atomic_write(folder / "results.csv", "w") as file:
        table = csv.writer(file)
        names = sorted({name for row in rows for name in row.params})
        table.writerow(["trial", "state", "val_accuracy", "test_accuracy", "epochs", *names, "folder", "note"])
        for row in rows:
            table.writerow(
                [
                    row.number,
                    row.state,
                    row.val_accuracy,
                    row.test_accuracy,
                    row.epochs,
                    *(row.params.get(name, "") for name in names),
                    row.folder,
                    row.note,
                ]
            )
    written.append("results.csv")
    if best is not None:
        with atomic_write(folder / "best-model.npz") as file, open(folder / best.folder / "model.npz", "rb") as model:
            shutil.copyfileobj(model, file)
        written.append("best-model.npz")
    ended = [row for row in rows if row.val_accuracy is not None and row.state in ("complete", "pruned")]
    if ended:
        plot_history(ended, folder / "history.png")
        written.append("history.png")
    if any("lr" in row.params for row in ended):
        by = next((d.name for d in plan.space if d.kind == "choice" and 1 < len(d.values) <= 6), None)
        plot_accuracy_against(ended, "lr", folder / "accuracy_vs_lr.png", by=by)
        written.append("accuracy_vs_lr.png")
    importances = parameter_importances(study)
    if importances:
        plot_importances(importances, folder / "importances.png")
        written.append("importances.png")
    return result


def parameter_importances(study) -> dict[str, float]:
    """Optuna's PED-ANOVA importances of the study's parameters (they add up to 1): how differently a
    parameter's values are spread in the best tenth of the complete trials than in all of them. Empty while
    fewer than two complete trials differ in their parameters.

    Args:
        study (optuna.study.Study): The sweep's study.
    """
    import optuna

    complete = [trial for trial in study.get_trials(deepcopy=False) if trial.state.name == "COMPLETE"]
    if len(complete) < 2 or len({tuple(sorted(trial.params.items())) for trial in complete}) < 2:
        return {}
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    try:
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}


def _scatter_trials(axis, rows: Sequence[TrialRow], xs: Sequence[float], by: str | None = None) -> None:
    """One dot a trial at (x, validation accuracy in %): complete trials filled, pruned ones hollow; with
    ``by``, one colour for each value of that parameter. The legend goes beside the axes."""
    groups = sorted({str(row.params.get(by)) for row in rows}, key=_natural) if by else [None]
    for colour, group in enumerate(groups):
        members = [(row, x) for row, x in zip(rows, xs, strict=True) if by is None or str(row.params.get(by)) == group]
        for state in ("complete", "pruned"):
            points = [(x, 100 * (row.val_accuracy or 0.0)) for row, x in members if row.state == state]
            if not points:
                continue
            if by:  # one legend entry a colour; the hollow dots are explained once, below
                label = (
                    f"{by} {group}"
                    if state == "complete" or not any(r.state == "complete" for r, _ in members)
                    else None
                )
            else:
                label = "complete trial" if state == "complete" else "pruned trial\n(when stopped)"
            face = f"C{colour}" if state == "complete" else "none"
            axis.scatter(*zip(*points, strict=True), facecolors=face, edgecolors=f"C{colour}", label=label)
    if by and any(row.state == "pruned" for row in rows):
        axis.scatter([], [], facecolors="none", edgecolors="grey", label="hollow: pruned\n(when stopped)")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")


def _natural(text: str) -> tuple:
    """Sort "64" before "256", numbers before words."""
    try:
        return (0, float(text.split(",")[0]), text)
    except ValueError:
        return (1, 0.0, text)


def plot_history(rows: Sequence[TrialRow], path=None) -> Figure:
    """The optimisation history: each trial's validation accuracy by trial number (pruned ones hollow,
    with their accuracy when stopped), and the best so far.

    Args:
        rows: The complete and pruned trials.
        path (str | Path | None): Where to write the PNG; None: write nothing.
    """
    figure = Figure(figsize=(8, 4))
    axis = figure.subplots()
    ordered = sorted(rows, key=lambda row: row.number)
    _scatter_trials(axis, ordered, [row.number for row in ordered])
    best, running = [], -math.inf
    for row in ordered:
        if row.state == "complete":
            running = max(running, row.val_accuracy or -math.inf)
        best.append(running)
    shown = [(row.number, 100 * value) for row, value in zip(ordered, best, strict=True) if value > -math.inf]
    if shown:
        axis.step(*zip(*shown, strict=True), where="post", color="C2", label="best so far")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("Trial number")
    axis.set_ylabel("Validation accuracy (%)")
    axis.set_ylim(0, 100)
    axis.set_title("Optimisation history")
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    figure.tight_layout()
    return plots._finish(figure, path)


def plot_accuracy_against(rows: Sequence[TrialRow], name: str = "lr", path=None, *, by: str | None = None) -> Figure:
    """Validation accuracy against one hyper-parameter (a logarithmic axis for the learning rate), one dot
    a trial (pruned ones hollow, at their accuracy when stopped), coloured by another parameter if asked.

    Args:
        rows: The complete and pruned trials.
        name: The parameter on the x axis.
        path (str | Path | None): Where to write the PNG; None: write nothing.
        by: A parameter with a few values (a choice, such as "batch_size") whose values get a colour each.
    """
    figure = Figure(figsize=(8, 4))
    axis = figure.subplots()
    chosen = [row for row in rows if name in row.params]
    _scatter_trials(axis, chosen, [row.params[name] for row in chosen], by)
    if name == "lr":
        axis.set_xscale("log")
    axis.set_xlabel("Learning rate" if name == "lr" else name)
    axis.set_ylabel("Validation accuracy (%)")
    axis.set_ylim(0, 100)
    axis.set_title(f"Validation accuracy against the {'learning rate' if name == 'lr' else name}")
    axis.grid(alpha=0.3, which="both")
    figure.tight_layout()
    return plots._finish(figure, path)


def plot_importances(importances: Mapping[str, float], path=None) -> Figure:
    """The parameters' importances for the validation accuracy as horizontal bars on a 0–100 % scale.

    Args:
        importances: Each parameter's importance, from :func:`parameter_importances` (they add up to 1).
        path (str | Path | None): Where to write the PNG; None: write nothing.
    """
    names = sorted(importances, key=lambda name: importances[name])
    figure = Figure(figsize=(6.5, 1.2 + 0.45 * len(names)))
    axis = figure.subplots()
    shares = np.array([100 * importances[name] for name in names])
    axis.barh(names, shares, color="C0")
    for position, share in enumerate(shares):  # the figure beside its bar, or inside a bar that nearly fills the axis
        inside = share > 85
        axis.text(
            share - 1 if inside else share + 1,
            position,
            f"{share:.0f} %",
            va="center",
            ha="right" if inside else "left",
            color="white" if inside else "black",
        )
    axis.set_xlim(0, 100)
    axis.set_xlabel("Importance (%, PED-ANOVA; the parameters add up to 100 %)")
    axis.set_title("Which hyper-parameter matters most")
    axis.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    return plots._finish(figure, path)
