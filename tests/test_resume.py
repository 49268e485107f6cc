"""Checkpoints: a run killed with SIGKILL and resumed ends with the same weights, bit for bit."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import nablanet as nn
from nablanet.files.checkpoint import FILENAME, load_checkpoint

SETTINGS = (
    "--hidden 96 --dropout 0.2 --optimizer adam --schedule cosine --dtype float64 --epochs 5 --val-split 0.1 "
    "--early-stopping 4 --batch-size 100 --seed 7"
).split()


def run_nablanet(*arguments):
    """Run the command line to its end in a new process; return the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "nablanet", *arguments], capture_output=True, text=True)


def nablanet(*arguments, **options):
    return subprocess.Popen(
        [sys.executable, "-m", "nablanet", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


def finished_epochs(folder):
    try:
        return load_checkpoint(folder / FILENAME).epoch
    except (FileNotFoundError, nn.ModelFileError):
        return 0


CNN_SETTINGS = (  # with BatchNorm: its running statistics are part of what must come back bit for bit
    "--conv 2 --batch-norm --dropout 0.2 --optimizer adam --schedule cosine --dtype float64 --epochs 5 "
    "--batch-size 500 --seed 7"
)


TRANSFORMER_SETTINGS = (  # a tiny character model on the 3,000 bundled words: dropout-free, but Adam and two blocks
    "--dataset words-sample --model transformer --context 16 --embed 16 --heads 2 --blocks 2 --optimizer adam "
    "--dtype float64 --epochs 5 --batch-size 8 --seed 7"
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings", [SETTINGS, CNN_SETTINGS.split(), TRANSFORMER_SETTINGS.split()], ids=["mlp", "cnn", "transformer"]
)
def test_sigkill_mid_epoch_then_resume_gives_identical_weights(settings, tmp_path):
    uninterrupted = nablanet("train", *settings, "--out", str(tmp_path / "whole"))
    interrupted = nablanet(
        "train", *settings, "--checkpoint-dir", str(tmp_path / "ck"), "--out", str(tmp_path / "part")
    )
    deadline = time.monotonic() + 300
    while finished_epochs(tmp_path / "ck") < 2:
        assert interrupted.poll() is None, interrupted.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert interrupted.poll() is None, "the run ended before it could be killed"  # it is in epoch 3 of 5
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert finished_epochs(tmp_path / "ck") in (2, 3)
    resumed = nablanet("train", "--resume", "--checkpoint-dir", str(tmp_path / "ck"), "--out", str(tmp_path / "part"))
    output, errors = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, errors
    assert "Resuming from" in output
    assert uninterrupted.wait(timeout=600) == 0
    whole, part = nn.load(tmp_path / "whole" / "model.npz"), nn.load(tmp_path / "part" / "model.npz")
    assert whole.get_weights().keys() == part.get_weights().keys()
    for name, expected in whole.get_weights().items():  # the parameters and the buffers
        np.testing.assert_array_equal(part.get_weights()[name], expected)
    assert "Epoch 5/5" in output


@pytest.mark.slow
def test_ctrl_c_writes_a_checkpoint_and_exits_130(tmp_path):
    run = nablanet("train", *SETTINGS, "--out", str(tmp_path), start_new_session=True)
    deadline = time.monotonic() + 300
    while finished_epochs(tmp_path) < 1 and run.poll() is None and time.monotonic() < deadline:
        # no checkpoint dir: the run keeps its snapshot in memory; wait for the first epoch line instead
        line = run.stdout.readline()
        if line.startswith("Epoch 1/"):
            break
    os.killpg(run.pid, signal.SIGINT)
    _, errors = run.communicate(timeout=120)
    assert run.returncode == 130
    assert len(errors.strip().splitlines()) == 1 and "Traceback" not in errors
    assert "interrupted; the state after epoch 1" in errors
    assert load_checkpoint(tmp_path / FILENAME).epoch == 1


@pytest.mark.slow
def test_resume_refuses_conflicting_settings(tmp_path):
    result = run_nablanet(
        "train", *SETTINGS[:-4], "--epochs", "1", "--checkpoint-dir", str(tmp_path), "--out", str(tmp_path / "run")
    )
    assert result.returncode == 0, result.stderr
    result = run_nablanet("train", "--resume", "--checkpoint-dir", str(tmp_path), "--lr", "0.5")
    assert result.returncode == 2 and "whose --lr is not set; --lr 0.5 would change it" in result.stderr


def test_divergence_keeps_the_last_good_checkpoint(tmp_path):
    result = run_nablanet(
        "train",
        "--hidden",
        "16",
        "--lr",
        "1e20",
        "--epochs",
        "3",
        "--checkpoint-dir",
        str(tmp_path),
        "--out",
        str(tmp_path / "run"),
    )
    assert result.returncode == 2
    assert "training diverged; try a lower learning rate" in result.stderr and "epoch 1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    state = load_checkpoint(tmp_path / FILENAME)  # written before the first epoch: the last good state
    assert state.epoch == 0
    assert all(np.isfinite(parameter.value).all() for parameter in state.model.parameters())


@pytest.mark.parametrize("contents", [b"", b"PK\x03\x04 truncated zip"])
def test_resume_from_a_broken_checkpoint_is_one_line(tmp_path, contents):
    (tmp_path / FILENAME).write_bytes(contents)
    result = run_nablanet("train", "--resume", "--checkpoint-dir", str(tmp_path))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_checkpoint_whose_settings_do_not_describe_its_model_is_refused(tmp_path, capsys):
    """An altered checkpoint: settings that say 16 hidden units and float64 for a model of 8 in float32."""
    from nablanet.app.cli import main
    from nablanet.files.serialization import write_archive

    ck = tmp_path / "ck"
    assert (
        main(["train", "--hidden", "8", "--epochs", "1", "--checkpoint-dir", str(ck), "--out", str(tmp_path / "a")])
        == 0
    )
    with np.load(ck / "checkpoint.npz", allow_pickle=False) as saved:
        document = json.loads(saved["config"].tobytes())
        arrays = {name: saved[name] for name in saved.files if name != "config"}
    config = {key: value for key, value in document.items() if key not in ("format", "version", "kind")}
    for change, fragment in (
        ({"hidden": [16]}, "layer 0 is Dense {'input_size': 784, 'output_size': 8"),
        ({"dtype": "float64"}, "'dtype': 'float32'}, the settings make Dense"),
    ):
        write_archive(
            ck / "checkpoint.npz", "checkpoint", {**config, "settings": {**config["settings"], **change}}, arrays
        )
        capsys.readouterr()
        assert (
            main(["train", "--resume", "--epochs", "2", "--checkpoint-dir", str(ck), "--out", str(tmp_path / "b")]) == 2
        )
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "checkpoint.npz: the checkpoint's settings do not describe its model" in err
        assert fragment in err, err
    schedule = {**config["optimizer"]["schedule"], "config": {"learning_rate": 3.0}}  # the settings say 0.01
    write_archive(
        ck / "checkpoint.npz",
        "checkpoint",
        {**config, "optimizer": {**config["optimizer"], "schedule": schedule}},
        arrays,
    )
    capsys.readouterr()
    assert main(["train", "--resume", "--epochs", "2", "--checkpoint-dir", str(ck), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the checkpoint's settings do not describe its optimizer: it is sgd" in err
    assert "Constant {'learning_rate': 3.0}, the settings make sgd" in err and "{'learning_rate': 0.01}" in err


@pytest.mark.parametrize(
    ("saved", "fragment"),
    [
        ({}, "the checkpoint lacks the setting 'epochs'"),  # was a bare KeyError: 'epochs'
        ({"epochs": "x"}, "--epochs must be int, received 'x'"),
        ({"epochs": 3, "seed": -5}, "--seed must be an integer ≥ 0, received: -5"),
    ],
)
def test_malformed_saved_settings_are_refused_in_words(saved, fragment):
    import re

    from nablanet.app.run import TrainingSettings, resume_settings

    with pytest.raises(ValueError, match=re.escape(fragment)):
        resume_settings(TrainingSettings(), saved, (), 1)
