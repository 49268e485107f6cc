"""Never lose a run, never a traceback, never a silent wrong answer (issue 10).

The command line is run in real processes where signals, pipes and file-size limits are involved, and
in-process (``main``) elsewhere."""

import json
import os
import resource
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import UnidentifiedImageError

import nablanet as nn
from nablanet.app import model_commands, run
from nablanet.app.cli import main
from nablanet.core.fusion import fuse
from nablanet.files.checkpoint import FILENAME, load_checkpoint
from nablanet.files.folders import FolderInUse, claim_folder, new_run_folder
from nablanet.training import loop
from nablanet.training.loop import TrainingWarning

NABLANET = [sys.executable, "-m", "nablanet"]


def start(*arguments, cwd=None, **options):
    return subprocess.Popen(
        [*NABLANET, *arguments], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, **options
    )


def wait_for_line(process, fragment: str, limit: float = 120.0) -> list[str]:
    """Read process's stdout until a line contains ``fragment``; return the lines read."""
    lines, deadline = [], time.monotonic() + limit
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if fragment in line:
            return lines
    raise AssertionError(f"no line with {fragment!r} in {lines}")


def cli(tmp_path, command: str) -> int:
    """Run ``nablanet <command>`` in this process; ``{name}`` in it stands for the path ``tmp_path/name``."""
    words = command.split()
    return main([str(tmp_path / word[1:-1]) if word.startswith("{") else word for word in words])


# ------------------------------------------------------------------ the command-line boundary


@pytest.mark.parametrize(
    "error",
    [
        ZeroDivisionError("division by zero"),
        MemoryError(),
        RecursionError("maximum recursion depth exceeded"),
        OverflowError("int too large to convert to float"),
        zipfile.BadZipFile("File is not a zip file"),
        UnidentifiedImageError("cannot identify image file"),
        KeyError("weights"),
        AssertionError(),
    ],
)
def test_any_exception_from_a_command_is_one_line_and_exit_2(error, monkeypatch, capsys):
    def fail(*arguments, **options):
        raise error

    monkeypatch.setattr(model_commands, "evaluate_model", fail)
    assert main(["evaluate", "model.npz"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nablanet evaluate: error: ") and "Traceback" not in err


def test_nablanet_debug_shows_the_traceback(monkeypatch):
    def fail(*arguments, **options):
        raise ZeroDivisionError("for developers")

    monkeypatch.setattr(model_commands, "evaluate_model", fail)
    monkeypatch.setenv("NABLANET_DEBUG", "1")
    with pytest.raises(ZeroDivisionError, match="for developers"):
        main(["evaluate", "model.npz"])


def test_text_from_a_file_is_never_printed_raw(tmp_path, capsys):
    path = tmp_path / "\x1b[31mred.npz"
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\\x1b[31mred.npz" in err


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.1, 0.2, 0.4, 0.8, 1.5])
def test_ctrl_c_in_the_first_moments_exits_130_without_a_traceback(delay, tmp_path):
    # the installed command; what happens in the ~30 ms before Python runs any of it is Python's own start
    command = Path(sys.executable).with_name("nablanet")
    process = subprocess.Popen(
        [command, "train", "--out", str(tmp_path / "run")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode in (130, -signal.SIGINT), err  # -2: the signal came before Python's handler
    assert "Traceback" not in err and err.count("\n") <= 1


# ------------------------------------------------------------------ never lose a run


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_the_last_epoch_and_exits_143(tmp_path):
    process = start(
        "train",
        "--hidden",
        "64",
        "--epochs",
        "50",
        "--checkpoint-dir",
        str(tmp_path / "ck"),
        "--out",
        str(tmp_path / "run"),
    )
    wait_for_line(process, "Epoch 2/50")
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert err.startswith("nablanet train: terminated; the state after epoch ") and "--resume" in err
    state = load_checkpoint(tmp_path / "ck" / FILENAME)
    assert state.epoch >= 2 and len(state.history.loss) == state.epoch


@pytest.mark.slow
def test_ctrl_c_after_the_last_epoch_keeps_the_trained_model(tmp_path):
    process = start("train", "--epochs", "2", "--out", str(tmp_path / "run"))
    wait_for_line(process, "Epoch 2/2")
    process.send_signal(signal.SIGINT)  # during the test figures and the plots
    _out, err = process.communicate(timeout=60)
    # a machine fast enough may finish before the signal lands: nothing may be lost either way
    assert process.returncode in (0, 130), err
    assert process.returncode == 0 or "after training: the trained model is in" in err
    assert nn.load(tmp_path / "run" / "model.npz").input_size == 784


def test_an_interruption_while_plotting_keeps_the_model(tmp_path, monkeypatch, capsys):
    def interrupted(*arguments, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(run.plots, "plot_history", interrupted)
    assert cli(tmp_path, "train --epochs 1 --out {run}") == 130
    err = capsys.readouterr().err
    assert f"the trained model is in {tmp_path / 'run' / 'model.npz'}" in err
    assert nn.load(tmp_path / "run" / "model.npz").input_size == 784


def test_two_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    folders = {new_run_folder(tmp_path) for _ in range(5)}
    assert len(folders) == 5 and all(folder.is_dir() for folder in folders)


@pytest.mark.slow
def test_two_real_runs_in_the_same_second_both_keep_their_results(tmp_path):
    processes = [start("train", "--epochs", "1", cwd=tmp_path) for _ in range(2)]
    for process in processes:
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    models = sorted((tmp_path / "runs").glob("*/model.npz"))
    assert len(models) == 2 and models[0].parent != models[1].parent


def test_a_folder_in_use_by_another_run_is_refused(tmp_path, capsys):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from nablanet.files.folders import claim_folder; "
            f"claim_folder({str(tmp_path / 'run')!r}); print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUse, match="in use by another nablanet run"):
            claim_folder(tmp_path / "run")
        assert cli(tmp_path, "train --epochs 1 --out {run}") == 2
        assert "is in use by another nablanet run" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    claim_folder(tmp_path / "run").release()  # free again once the holder has gone


def test_a_checkpoint_folder_is_not_overwritten_without_resume(tmp_path, capsys):
    assert cli(tmp_path, "train --epochs 1 --checkpoint-dir {ck} --out {a}") == 0
    before = (tmp_path / "ck" / FILENAME).read_bytes()
    assert cli(tmp_path, "train --epochs 1 --checkpoint-dir {ck} --out {b}") == 2
    err = capsys.readouterr().err
    assert "holds the checkpoint of an earlier run: continue it with --resume" in err
    assert (tmp_path / "ck" / FILENAME).read_bytes() == before


@pytest.mark.slow
def test_a_closed_stdout_does_not_stop_training(tmp_path):
    process = start("train", "--epochs", "3", "--out", str(tmp_path / "run"))
    first_lines = [process.stdout.readline() for _ in range(2)]
    process.stdout.close()  # what `nablanet train | head -2` does
    err = process.stderr.read()
    assert process.wait(timeout=120) == 0, err
    assert first_lines[0].startswith("Training on mnist") and "Traceback" not in err
    assert nn.load(tmp_path / "run" / "model.npz").input_size == 784


def test_a_full_disk_moves_the_model_to_a_fallback_and_says_so(tmp_path, monkeypatch, capsys):
    real_save = run.save

    def save(model, path):
        if Path(path).parent == tmp_path / "run":
            raise OSError(28, "No space left on device")
        return real_save(model, path)

    monkeypatch.setattr(run, "save", save)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "spare"))
    (tmp_path / "spare").mkdir()
    monkeypatch.setattr(run.tempfile, "tempdir", None)
    assert cli(tmp_path, "train --epochs 1 --out {run}") == 0
    err = capsys.readouterr().err
    assert f"could not write {tmp_path / 'run' / 'model.npz'} (No space left on device)" in err
    (fallback,) = (tmp_path / "spare").glob("nablanet-model-*.npz")
    assert str(fallback) in err and nn.load(fallback).input_size == 784


@pytest.mark.slow
def test_no_room_at_all_names_every_file_and_says_what_was_lost(tmp_path):
    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))  # the model needs 31 kB
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead

    process = start(
        "train",
        "--epochs",
        "1",
        "--checkpoint-dir",
        str(tmp_path / "ck"),
        "--out",
        str(tmp_path / "run"),
        preexec_fn=limit_file_size,
    )
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"File too large: {tmp_path / 'ck' / FILENAME}" in err  # the first file too large: the checkpoint


def test_stale_temporary_files_are_cleaned_up_by_the_next_run(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    stale = folder / ".model.npz.abc123.nablanet-partial"
    stale.write_bytes(b"half a file")
    claim_folder(folder).release()
    assert not stale.exists()


def test_the_write_test_follows_no_link_and_creates_nothing_outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".nablanet-write-test").symlink_to(outside / "victim")
    (folder / "model.npz").symlink_to(outside / "model-victim")
    assert main(["train", "--epochs", "1", "--out", str(folder)]) == 0
    assert list(outside.iterdir()) == []
    assert (folder / "model.npz").is_file() and not (folder / "model.npz").is_symlink()


# ------------------------------------------------------------------ resume means resume


@pytest.mark.slow
def test_resume_with_more_epochs_extends_a_finished_run_to_the_weights_of_one_long_run(tmp_path):
    common = "train --optimizer sgd --momentum 0.9 --dtype float64 --epochs"
    assert cli(tmp_path, f"{common} 6 --checkpoint-dir {{ck}} --out {{a}}") == 0
    assert cli(tmp_path, "train --resume --checkpoint-dir {ck} --epochs 12 --out {b}") == 0
    assert cli(tmp_path, f"{common} 12 --out {{whole}}") == 0
    extended, whole = nn.load(tmp_path / "b" / "model.npz"), nn.load(tmp_path / "whole" / "model.npz")
    for mine, theirs in zip(extended.parameters(), whole.parameters(), strict=True):
        np.testing.assert_array_equal(mine.value, theirs.value)
    assert load_checkpoint(tmp_path / "ck" / FILENAME).epoch == 12


def test_resume_refuses_to_stretch_a_schedule_laid_out_for_fewer_epochs(tmp_path, capsys):
    assert cli(tmp_path, "train --epochs 1 --schedule cosine --checkpoint-dir {ck} --out {a}") == 0
    assert cli(tmp_path, "train --resume --checkpoint-dir {ck} --epochs 3") == 2
    assert "the cosine schedule of the saved run was laid out for 1 epochs" in capsys.readouterr().err


def test_an_option_typed_with_its_default_value_is_applied_or_refused_never_ignored(tmp_path, capsys):
    assert cli(tmp_path, "train --epochs 1 --batch-size 500 --checkpoint-dir {ck} --out {a}") == 0
    assert cli(tmp_path, "train --resume --checkpoint-dir {ck} --batch-size 200") == 2
    assert "whose --batch-size is 500; --batch-size 200 would change it" in capsys.readouterr().err
    assert cli(tmp_path, "train --resume --checkpoint-dir {ck} --epochs 2 --out {b}") == 0
    assert "Epoch 2/2" in capsys.readouterr().out


def test_an_early_stopped_run_stays_stopped_on_resume(tmp_path, capsys):
    arguments = "--hidden 8 --lr 1e-300 --val-split 0.5 --early-stopping 1 --checkpoint-dir {ck}"
    assert cli(tmp_path, f"train {arguments} --epochs 5 --out {{a}}") == 0
    out = capsys.readouterr().out
    assert "Epoch 2/5" in out and "Epoch 3/5" not in out  # no change in epoch 2: stopped with patience 1
    assert cli(tmp_path, "train --resume --checkpoint-dir {ck} --out {b}") == 0
    out = capsys.readouterr().out
    assert "stopped early after epoch 2: there is nothing more to train" in out and "Epoch 3/5" not in out


def test_dynamics_after_a_resume_keep_the_earlier_epochs(tmp_path, capsys):
    assert cli(tmp_path, "train --hidden 8 --dynamics --checkpoint-dir {ck} --epochs 1 --out {a}") == 0
    assert cli(tmp_path, "train --resume --checkpoint-dir {ck} --epochs 2 --out {b}") == 0
    dynamics = json.loads((tmp_path / "b" / "metrics.json").read_text())["dynamics"]
    assert len(dynamics["gradient_norm"]["0 Dense"]) == 2 and len(dynamics["dead_fraction"]["1 ReLU"]) == 2


# ------------------------------------------------------------------ --fuse: the same run, trained faster

SMALL_CNN = "train --conv 2 --hidden 8 --dropout 0.2 --optimizer adam --batch-size 100"  # both kinds of fused block
FIRST_IMAGES: dict[tuple[str, str], nn.Dataset] = {}


@pytest.fixture
def first_images(monkeypatch):
    """``nablanet train`` on the first 500 training and 200 test images of the bundled MNIST (loaded once)."""

    def load(name, data_home, dtype):
        key = (name, np.dtype(dtype).name)
        if key not in FIRST_IMAGES:
            data = nn.load_dataset(name, data_home, dtype)
            parts = (data.X_train[:, :500], data.y_train[:500], data.X_test[:, :200], data.y_test[:200])
            FIRST_IMAGES[key] = nn.Dataset(data.name, *(part.copy() for part in parts), data.class_names)  # not views
        return FIRST_IMAGES[key]

    monkeypatch.setattr(run, "load_dataset", load)


@pytest.fixture
def fused_fits(monkeypatch):
    """The layers of each ``fit`` with ``fuse=True``, as ``fit`` ran them (the fused blocks' class names)."""
    fits = []

    def fuse_and_note(layers):
        fused = fuse(layers)
        fits.append([type(layer).__name__ for layer in fused])
        return fused

    monkeypatch.setattr(loop, "fused", fuse_and_note)
    return fits


def figures(out: str) -> list[str]:
    """The lines of a run's output that carry its numbers: each epoch's loss and accuracy, the test figures."""
    return [line for line in out.splitlines() if line.startswith(("Epoch ", "Test accuracy: "))]


def assert_same_weights(model_file, reference_file):
    mine, theirs = nn.load(model_file).get_weights(), nn.load(reference_file).get_weights()
    assert mine.keys() == theirs.keys()
    for name, expected in theirs.items():
        np.testing.assert_array_equal(mine[name], expected, err_msg=name)


def test_train_fuse_prints_the_same_losses_and_saves_the_same_weights_bit_for_bit(
    tmp_path, capsys, first_images, fused_fits
):
    assert cli(tmp_path, f"{SMALL_CNN} --epochs 2 --out {{eager}}") == 0
    eager = capsys.readouterr().out
    assert fused_fits == []
    assert cli(tmp_path, f"{SMALL_CNN} --epochs 2 --fuse --out {{fused}}") == 0
    fused = capsys.readouterr().out
    assert fused_fits == [["ConvReLUPool", "Flatten", "Dropout", "DenseReLU", "Dropout", "Dense"]]
    assert "Fused path" not in eager
    blocks = "1 × Conv2D → ReLU → MaxPool2D, 1 × Dense → ReLU, each trained as one block (the eager layers' numbers)"
    assert f"Fused path (--fuse): {blocks}" in fused
    assert len(figures(fused)) == 3 and figures(fused) == figures(eager)
    assert_same_weights(tmp_path / "fused" / "model.npz", tmp_path / "eager" / "model.npz")


def test_a_run_resumed_with_fuse_ends_with_the_weights_of_one_eager_run(tmp_path, capsys, first_images, fused_fits):
    assert cli(tmp_path, f"{SMALL_CNN} --epochs 2 --out {{whole}}") == 0
    assert cli(tmp_path, f"{SMALL_CNN} --epochs 1 --checkpoint-dir {{ck}} --out {{a}}") == 0
    capsys.readouterr()
    assert cli(tmp_path, "train --resume --checkpoint-dir {ck} --epochs 2 --fuse --out {b}") == 0
    out = capsys.readouterr().out
    assert len(fused_fits) == 1 and "ConvReLUPool" in fused_fits[0]  # the first epoch eager, the second fused
    assert "Resuming from" in out and "Fused path (--fuse): 1 × Conv2D → ReLU → MaxPool2D" in out
    assert "Epoch 2/2" in out and "Epoch 1/2" not in out
    assert_same_weights(tmp_path / "b" / "model.npz", tmp_path / "whole" / "model.npz")
    assert load_checkpoint(tmp_path / "ck" / FILENAME).epoch == 2


def test_the_header_says_why_fuse_trains_the_eager_layers(monkeypatch):
    plain = nn.build_classifier(784, 10, [8], conv=[2], batch_norm=True, dtype=np.float32, rng=0)
    assert "no Conv2D → ReLU → MaxPool2D or Dense → ReLU in a row" in run._fusion_note(plain)
    monkeypatch.setenv("NABLANET_KERNELS", "0")
    fusable = nn.build_classifier(784, 10, [8], conv=[2], dtype=np.float32, rng=0)
    note = run._fusion_note(fusable)
    assert "the eager layers train" in note and "NABLANET_KERNELS=0 turns the compiled loops off" in note


def test_the_header_says_where_the_fused_numbers_are_the_eager_ones_to_rounding():
    keras = nn.build_classifier(784, 10, conv=(32, 64), dropout=0.5, dtype=np.float32, rng=0)  # 26 → 13, 11 → 5
    assert run._fusion_note(keras) == (
        "Fused path (--fuse): 2 × Conv2D → ReLU → MaxPool2D, each trained as one block (the eager layers' numbers, "
        "to float32 rounding in the block that leaves out the convolution's outputs no pooling window reads)"
    )
    three = nn.build_classifier(784, 10, conv=(4, 4, 4), dtype=np.float32, rng=0)  # 26 → 13, 11 → 5, 3 → 1
    assert "in the 2 blocks that leave out the convolution's outputs" in run._fusion_note(three)


def test_fuse_is_refused_for_a_character_model(tmp_path, capsys):
    assert cli(tmp_path, "train --dataset words-sample --model bigram --fuse --out {run}") == 2
    assert "--fuse does not apply to --model bigram" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ say when training cannot work


def test_a_learning_rate_that_changes_nothing_is_said(tmp_path, capsys):
    assert cli(tmp_path, "train --epochs 1 --lr 1e-300 --out {run}") == 0
    err = capsys.readouterr().err
    assert "nablanet train: warning: epoch 1 changed no weight at all: the learning rate 1e-300 is too small" in err


def test_a_loss_that_grows_is_said(rng):
    X, Y = rng.normal(size=(20, 400)), nn.one_hot(rng.integers(0, 5, 400), 5)
    model = nn.Sequential([nn.Dense(20, 32, init="he_normal", rng=0), nn.ReLU(), nn.Dense(32, 5, rng=0), nn.Softmax()])
    with pytest.warns(TrainingWarning, match="the loss grew from .* the learning rate 50 may be too large"):
        model.fit(X, Y, epochs=3, batch_size=50, learning_rate=50.0, rng=0)


def test_scores_are_not_printed_as_probabilities(tmp_path, capsys):
    model = nn.Sequential([nn.Dense(784, 10, rng=0)])  # no Softmax: raw scores
    nn.save(model, tmp_path / "scores.npz")
    from PIL import Image

    canvas = np.zeros((60, 60), dtype=np.uint8)
    canvas[10:50, 28:32] = 255
    Image.fromarray(canvas).save(tmp_path / "one.png")
    assert cli(tmp_path, "predict {scores.npz} {one.png}") == 0
    out = capsys.readouterr().out
    assert "(score " in out and "probability" not in out


def test_evaluating_on_another_data_set_warns(tmp_path, capsys):
    model = nn.build_classifier(784, 10, rng=0, dtype=np.float32)
    model.metadata = {"dataset": "mnist", "class_names": [str(digit) for digit in range(10)]}
    nn.save(model, tmp_path / "model.npz")
    assert cli(tmp_path, "evaluate {model.npz} --dataset fashion-mnist") == 0
    assert "warning: the model was trained on mnist, not fashion-mnist" in capsys.readouterr().err


# ------------------------------------------------------------------ found by an adversarial review


def test_a_closed_stdout_or_one_on_a_full_disk_does_not_stop_a_run(tmp_path):
    with open("/dev/full", "w") as full:
        for name, options in (("closed", {"preexec_fn": lambda: os.close(1)}), ("full", {"stdout": full})):
            out = tmp_path / name
            result = subprocess.run(
                [*NABLANET, "train", "--epochs", "1", "--out", str(out)],
                stderr=subprocess.PIPE,
                text=True,
                timeout=120,
                **({"stdout": subprocess.DEVNULL} | options),
            )
            assert result.returncode == 0, result.stderr
            assert "Traceback" not in result.stderr and nn.load(out / "model.npz").input_size == 784


def test_a_closed_stderr_pipe_does_not_stop_a_run_that_warns(tmp_path):
    process = start("train", "--epochs", "2", "--lr", "1e-320", "--out", str(tmp_path / "run"))
    process.stderr.close()  # `2>&1 | head -1` after its line
    process.stdout.read()
    assert process.wait(timeout=120) == 0
    assert nn.load(tmp_path / "run" / "model.npz").input_size == 784


@pytest.mark.slow
def test_sigterm_before_the_first_epoch_is_still_a_termination(tmp_path):
    process = start("train", "--hidden", "64", "--out", str(tmp_path / "run"))
    wait_for_line(process, "Training on mnist")  # the data is loaded: the first epoch is about to begin
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert "before the first epoch began" in err or "the state after epoch" in err  # where it landed: either


def test_a_signal_that_lands_in_a_librarys_except_still_stops_the_run(tmp_path, monkeypatch, capsys):
    """SIGTERM arrives while code that swallows every exception runs (as matplotlib's import of its 3-D axes
    once did): the handler only notes it, and the run stops at its next safe point, before any epoch."""
    loaded = run.load_dataset

    def load_dataset_swallowing(*arguments):
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next line of Python
            raise OSError("a library that catches everything")
        except BaseException:
            pass
        return loaded(*arguments)

    monkeypatch.setattr(run, "load_dataset", load_dataset_swallowing)
    assert cli(tmp_path, "train --epochs 2 --out {run}") == 143
    out, err = capsys.readouterr()
    assert "Epoch 1/" not in out and "terminated; before the first epoch began" in err
    assert not (tmp_path / "run" / "model.npz").exists()


def test_outside_a_training_a_signal_stops_at_once(tmp_path, monkeypatch, capsys):
    def evaluate(*arguments, **options):
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("not reached: the handler raised KeyboardInterrupt before this line")

    monkeypatch.setattr(model_commands, "evaluate_model", evaluate)
    assert cli(tmp_path, "evaluate {model.npz}") == 130
    assert capsys.readouterr().err == "nablanet evaluate: interrupted\n"


@pytest.mark.slow
def test_a_second_signal_cannot_cut_the_saving_short(tmp_path):
    process = start("train", "--hidden", "64", "--epochs", "50", "--out", str(tmp_path / "run"))
    wait_for_line(process, "Epoch 1/50")
    process.send_signal(signal.SIGTERM)  # two at once: wherever the second lands, the state is written whole
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143 and "Traceback" not in err, err
    assert load_checkpoint(tmp_path / "run" / FILENAME).epoch >= 1


def test_a_folder_holding_an_interrupted_run_is_not_reused_without_resume(tmp_path, monkeypatch, capsys):
    def interrupted(*arguments, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(run.plots, "plot_history", interrupted)  # a run stopped after its first epoch …
    monkeypatch.setattr(
        run.Checkpoint, "on_epoch_end", lambda self, epoch, logs: (_ for _ in ()).throw(KeyboardInterrupt)
    )
    assert cli(tmp_path, "train --epochs 3 --out {run}") == 130
    saved = (tmp_path / "run" / FILENAME).read_bytes()
    assert cli(tmp_path, "train --epochs 3 --seed 7 --out {run}") == 2  # … is not overwritten by another
    assert "holds the saved state of an interrupted run: continue it with --resume" in capsys.readouterr().err
    assert (tmp_path / "run" / FILENAME).read_bytes() == saved


def test_text_the_terminal_cannot_encode_is_escaped_not_fatal(tmp_path):
    environment = {**os.environ, "PYTHONIOENCODING": "ascii"}
    result = subprocess.run([*NABLANET, "toy"], capture_output=True, text=True, env=environment, timeout=60)
    assert result.returncode == 0 and "X (features \\xd7 samples)" in result.stdout


def test_malformed_checkpoint_settings_name_the_checkpoint(tmp_path, capsys):
    import json

    assert cli(tmp_path, "train --epochs 1 --checkpoint-dir {ck} --out {a}") == 0
    with zipfile.ZipFile(tmp_path / "ck" / FILENAME) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = np.load(tmp_path / "ck" / FILENAME)["config"]
    document = json.loads(config.tobytes())
    document["settings"]["epochs"] = "5"
    from nablanet.files.serialization import write_archive

    arrays = {name: value for name, value in np.load(tmp_path / "ck" / FILENAME).items() if name != "config"}
    write_archive(
        tmp_path / "ck" / FILENAME,
        "checkpoint",
        {k: v for k, v in document.items() if k not in ("format", "version", "kind")},
        arrays,
    )
    assert members  # the original was a real archive
    assert cli(tmp_path, "train --resume --checkpoint-dir {ck}") == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'ck' / FILENAME}: its settings are malformed (--epochs must be int, received '5')" in err


def test_out_on_a_finished_run_is_refused_and_its_model_kept(tmp_path, capsys):
    assert cli(tmp_path, "train --epochs 1 --checkpoint-dir {ck} --out {run}") == 0
    saved = (tmp_path / "run" / "model.npz").read_bytes()
    for again in ("train --epochs 1 --out {run}", "train --resume --epochs 2 --checkpoint-dir {ck} --out {run}"):
        capsys.readouterr()
        assert cli(tmp_path, again) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "holds the model.npz of an earlier run" in err and "choose another --out" in err
    assert (tmp_path / "run" / "model.npz").read_bytes() == saved


@pytest.mark.parametrize("fuse", ["", " --fuse"], ids=["eager", "fused"])  # a fused run is continued fused
def test_a_full_disk_at_a_checkpoint_keeps_the_state_and_says_how_to_resume(
    fuse, tmp_path, monkeypatch, capsys, first_images
):
    import errno
    import tempfile

    from nablanet.files import checkpoint as checkpoints

    written = checkpoints.write_archive

    def full_after_one_epoch(path, kind, config, arrays):
        if Path(path).parent == tmp_path / "ck" and config["epoch"] >= 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return written(path, kind, config, arrays)

    monkeypatch.setattr(checkpoints, "write_archive", full_after_one_epoch)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert cli(tmp_path, "train --hidden 8 --epochs 3 --checkpoint-dir {ck} --out {run}" + fuse) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(No space left on device); the state after epoch 2 is in " in err
    saved = next((tmp_path / "tmp").glob("nablanet-state-*")) / FILENAME
    assert f"{saved}: continue with nablanet train --resume --checkpoint-dir {saved.parent}{fuse}\n" in err
    assert load_checkpoint(tmp_path / "ck" / FILENAME).epoch == 1  # the one written before is intact
    assert load_checkpoint(saved).epoch == 2
    monkeypatch.setattr(checkpoints, "write_archive", written)
    assert cli(tmp_path, f"train --resume --checkpoint-dir {saved.parent} --out {{again}}{fuse}") == 0
    assert "Epoch 3/3" in capsys.readouterr().out
