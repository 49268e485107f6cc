import json
import subprocess
import sys

import pytest

from nablanet.app.cli import main


def run_cli(*arguments, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "nablanet", *arguments], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.mark.slow
def test_train_writes_plots_and_metrics(tmp_path, capsys):
    assert main(["train", "--epochs", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Epoch 1/2: loss = " in out and "Epoch 2/2: loss = " in out and "Test accuracy: 0.8" in out
    assert "\nArray kernels: " in out  # which code ran the array work (numba's loops, or NumPy and why)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == 2 and 0.8 < metrics["test_accuracy"] < 0.9
    assert f"loss = {metrics['history']['loss'][1]:.6f}" in out  # every figure printed is in the file
    for name in ("loss.png", "misclassified.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_toy_prints_each_samples_loss_and_gradient(capsys):
    assert main(["toy", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("Sample ") == 10 and out.count("gradient of the loss") == 10
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("Done: 10 steps of batch size 1, learning rate 0.001; mean loss ")
    losses = [float(line.split("loss = ")[1]) for line in out.splitlines() if line.startswith("Sample ")]
    assert f"mean loss {sum(losses) / 10:.4f} (a uniform guess costs log 3 = 1.0986)" in summary
    assert summary.endswith(" of 10 samples right after the pass")


@pytest.mark.slow
def test_evaluate_says_it_wrote_the_confusion_matrix_into_the_models_folder(tmp_path, capsys, mnist):
    import nablanet as nn
    from nablanet.training.model import build_classifier

    model = build_classifier(784, 10, rng=0)
    model.fit(mnist.X_train[:, :2000], mnist.Y_train[:, :2000], epochs=1, rng=0, verbose=0)
    nn.save(model, tmp_path / "model.npz")
    assert main(["evaluate", str(tmp_path / "model.npz")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == (
        f"Wrote the confusion matrix to {tmp_path / 'confusion_matrix.png'} (the model's folder; --out chooses another)"
    )
    assert (tmp_path / "confusion_matrix.png").is_file()


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (["train", "--epochs", "0"], "argument --epochs: expected a positive integer, received '0'"),
        (["train", "--batch-size", "-5"], "argument --batch-size: expected a positive integer"),
        (["train", "--lr", "0"], "argument --lr: expected a positive number"),
        (["train", "--lr", "abc"], "argument --lr: expected a positive number"),
        (["train", "--hidden", "10,-2"], "argument --hidden: expected comma-separated positive layer sizes"),
        (["train", "--dataset", "cifar"], "argument --dataset: invalid choice"),
        (["train", "--early-stopping", "3"], "--early-stopping needs a validation set"),
        (["train", "--out", "/proc/nablanet-cannot-write-here"], "error:"),
        (["fly"], "argument COMMAND: invalid choice"),
        ([], "the following arguments are required"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(arguments, fragment):
    result = run_cli(*arguments)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_help_explains_the_defaults():
    result = run_cli("train", "--help")
    assert result.returncode == 0
    assert "notebook's recipe" in result.stdout and "--batch-size" in result.stdout
    words = " ".join(result.stdout.split())  # argparse wraps the help's lines
    assert "--fuse train each Conv2D → ReLU → MaxPool2D and Dense → ReLU as one fused block" in words


@pytest.mark.slow
def test_train_a_hidden_network_with_validation(tmp_path, capsys):
    arguments = [
        "train",
        "--hidden",
        "32",
        "--optimizer",
        "adam",
        "--dropout",
        "0.1",
        "--val-split",
        "0.1",
        "--early-stopping",
        "2",
        "--epochs",
        "2",
        "--batch-size",
        "128",
        "--dtype",
        "float32",
        "--out",
        str(tmp_path),
    ]
    assert main(arguments) == 0
    out = capsys.readouterr().out
    assert "val_loss = " in out and "val_accuracy = " in out
    assert "training loss is the mean over its batches while the weights moved" in out  # why it can lie above
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.9 and len(metrics["history"]["val_accuracy"]) == 2
    for name in ("loss.png", "accuracy.png", "confusion_matrix.png", "misclassified.png"):
        assert (tmp_path / name).stat().st_size > 10_000


@pytest.mark.slow
def test_evaluate_and_predict_with_a_saved_model(tmp_path, capsys, mnist):
    import numpy as np
    from PIL import Image

    assert main(["train", "--epochs", "3", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "model.npz"), "--out", str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    assert "accuracy 0.8" in out and out.count(" images)\n") == 10  # one line per class
    assert (tmp_path / "eval" / "confusion_matrix.png").stat().st_size > 10_000
    assert f"Wrote the confusion matrix to {tmp_path / 'eval' / 'confusion_matrix.png'}\n" in out  # --out: no note
    paths = []
    for index in range(8):  # test digits, drawn dark on light at 5× size, as a photo of paper would be
        pixels = (255 - 255 * mnist.X_test[:, index].reshape(28, 28)).astype(np.uint8)
        path = tmp_path / f"digit{index}.png"
        Image.fromarray(pixels).resize((140, 140)).save(path)
        paths.append(str(path))
    assert main(["predict", str(tmp_path / "model.npz"), *paths]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "predicted" in line]
    predicted = [int(line.split("predicted ")[1][0]) for line in lines]
    assert len(predicted) == 8
    assert np.mean(np.array(predicted) == mnist.y_test[:8]) >= 0.75
