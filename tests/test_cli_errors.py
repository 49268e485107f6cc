"""Every bad input the CLI was tried with: one line on stderr, exit status 2, no traceback.

Run in-process (an exception escaping ``main`` fails the test, as a traceback would); test_cli.py runs
a sample of them as real processes.
"""

import argparse
import pickle

import numpy as np
import pytest
from PIL import Image

import nablanet as nn
from nablanet.app.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    model = nn.Sequential([nn.Dense(784, 10, rng=0, dtype=np.float32), nn.Softmax()])
    model.metadata = {"dataset": "mnist", "class_names": [str(d) for d in range(10)]}
    nn.save(model, folder / "model.npz")
    nn.save(nn.Sequential([nn.Dense(5, 3), nn.Softmax()]), folder / "small.npz")
    Image.new("L", (40, 40), 255).save(folder / "blank.png")
    Image.new("L", (40, 40), 0).save(folder / "black.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / "pickle.npz").write_bytes(pickle.dumps({"weights": 1}))
    (folder / "afile").write_text("a file, not a folder")
    (folder / "checkpoint.npz").write_bytes(b"")
    (folder / "empty").mkdir()
    return folder


CASES = [  # (what the user typed, after `nablanet`; a fragment of the one-line message)
    ("train --epochs 0", "argument --epochs: expected a positive integer, received '0'"),
    ("train --epochs -3", "argument --epochs: expected a positive integer"),
    ("train --epochs", "argument --epochs: expected one argument"),
    ("train --batch-size 0", "argument --batch-size: expected a positive integer"),
    ("train --batch-size abc", "argument --batch-size: expected a positive integer, received 'abc'"),
    ("train --lr 0", "argument --lr: expected a positive number"),
    ("train --lr -0.1", "argument --lr: expected a positive number"),
    ("train --lr nan", "argument --lr: expected a positive number"),
    ("train --seed abc", "argument --seed: expected an integer ≥ 0, received 'abc'"),
    ("train --seed -1", "argument --seed: expected an integer ≥ 0, received '-1'"),  # was NumPy's own words
    ("toy --seed -1", "argument --seed: expected an integer ≥ 0"),
    ("gradcheck --seed -1", "argument --seed: expected an integer ≥ 0"),
    # the split is checked before "Training on … 0 samples" is printed
    ("train --val-split 0.99999999 --out {dir}/split", "--val-split 0.99999999 of the 60,000 training images"),
    ("train --val-split 0.000001 --out {dir}/split", "holds out 0: no image to validate on"),
    ("train --hidden 10,-2", "argument --hidden: expected comma-separated positive layer sizes"),
    ("train --hidden a,b", "argument --hidden: expected comma-separated positive layer sizes"),
    ("train --dataset cifar", "argument --dataset: invalid choice: 'cifar'"),
    ("train --optimizer rmsprop", "argument --optimizer: invalid choice"),
    ("train --activation swish", "argument --activation: invalid choice"),
    ("train --dtype float16", "argument --dtype: invalid choice"),
    ("train --momentum 1.5", "argument --momentum: expected a number in [0, 1)"),
    ("train --dropout 1", "argument --dropout: expected a number in [0, 1)"),
    ("train --val-split 2", "argument --val-split: expected a number in [0, 1)"),
    ("train --weight-decay -1", "argument --weight-decay: expected a number ≥ 0"),
    ("train --clip-norm 0", "argument --clip-norm: expected a positive number"),
    ("train --early-stopping 3", "--early-stopping needs a validation set"),
    ("train --early-stopping 0", "argument --early-stopping: expected a positive integer"),
    ("train --nesterov", "--nesterov needs --momentum above 0, e.g. --momentum 0.9"),
    ("train --optimizer adam --momentum 0.9", "--momentum and --nesterov apply to --optimizer sgd"),
    ("train --out /proc/nablanet", "--out /proc/nablanet is not writable"),
    ("train --out {dir}/afile", "exists and is not a folder"),
    ("train --resume", "--resume needs --checkpoint-dir"),
    ("train --resume --checkpoint-dir {dir}/nowhere", "no checkpoint to resume"),
    ("train --resume --checkpoint-dir {dir}", "is not a nablanet checkpoint file"),
    ("evaluate {dir}/missing.npz", "no model file at"),
    ("evaluate {dir}/blank.png", "is not a nablanet model file (not an .npz archive)"),
    ("evaluate {dir}/pickle.npz", "a Python pickle, which nablanet never loads"),
    ("evaluate {dir}/small.npz", "the model maps 5 features to 3 classes; mnist has 784 and 10"),
    ("evaluate {dir}/model.npz --dataset svhn", "argument --dataset: invalid choice"),
    ("evaluate {dir}/model.npz --out /proc/nablanet", "is not writable"),
    ("evaluate", "the following arguments are required: model"),
    ("predict {dir}/model.npz", "the following arguments are required: IMAGE"),
    ("predict {dir}/model.npz {dir}/missing.png", "no image file at"),
    ("predict {dir}/model.npz {dir}/notes.txt", "not an image in a format nablanet reads"),
    ("predict {dir}/model.npz {dir}/blank.png", "the image is blank: nothing to classify"),
    ("predict {dir}/model.npz {dir}/black.png", "the image is blank: nothing to classify"),
    ("predict {dir}/small.npz {dir}/blank.png", "the model expects 5 features, not 28×28 = 784 pixels"),
    ("predict {dir}/pickle.npz {dir}/blank.png", "a Python pickle, which nablanet never loads"),
    ("fly", "argument COMMAND: invalid choice: 'fly'"),
    ("", "the following arguments are required: COMMAND"),
    ("toy --lr 0", "argument --lr: expected a positive number"),
    # messages that teach: the closest option or choice, the subcommand named
    ("train --hiden 32", "nablanet train: error: unknown option --hiden: did you mean --hidden?"),
    ("train --learning-rate 0.1", "nablanet train: error: unknown option --learning-rate: did you mean --lr?"),
    ("train --batchsize=64", "unknown option --batchsize: did you mean --batch-size?"),
    ("train --colour red", "nablanet train: error: unknown option --colour (see nablanet train --help)"),
    ("gradcheck --hiden 8", "nablanet gradcheck: error: unknown option --hiden: did you mean --hidden?"),
    ("trian", "invalid choice: 'trian' (choose from 'train', "),
    ("trian", "; did you mean 'train'?"),
    ("train --optimizer adamm", "invalid choice: 'adamm' (choose from 'sgd', 'adam', 'adamw'); did you mean 'adam'?"),
    ("evaluate {dir}/model.npz extra", "nablanet evaluate: error: unexpected argument 'extra'"),
    ("evaluate {dir}", "is a folder, not a model file: give its model file, {dir}/model.npz"),
    ("inspect {dir}/empty --out {dir}/pictures", "is a folder, not a model file (a model file is a .npz)"),
    ("--epochs=3 train", "nablanet: error: options go after the command, as in: nablanet train --epochs=3"),
    ("--hidden 32 train", "options go after the command, as in: nablanet train --hidden"),
    ("gradcheck --loss CCE", "invalid choice: 'CCE' (choose from 'auto', 'cce'); did you mean 'cce'?"),
    ("serve --port 70000", "argument --port: expected a port number from 0 to 65535, received '70000'"),
    ("serve --host= --port 0", "nablanet serve: error: --host must be an IPv4 address such as 127.0.0.1"),
    ("serve --runs {dir}/model.npz --port 0", "--runs {dir}/model.npz is a file, not a folder of runs"),
    ("serve {dir}/missing.npz --port 0", "no model file at {dir}/missing.npz"),
    ("serve {dir} --port 0", "is a folder, not a model file: give its model file, {dir}/model.npz"),
]


@pytest.mark.parametrize("command, fragment", CASES, ids=[command or "(nothing)" for command, _ in CASES])
def test_bad_input_gets_one_line_and_exit_2(files, capsys, command, fragment):
    arguments = command.format(dir=files).split()
    try:
        status = main(arguments)
    except SystemExit as stop:  # argparse
        status = stop.code
    captured = capsys.readouterr()
    assert status == 2
    assert fragment.format(dir=files) in captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert captured.err.startswith("nablanet")


def test_a_split_that_leaves_no_data_is_refused_before_training_is_announced(files, capsys):
    assert main(["train", "--val-split", "0.99999999", "--out", str(files / "split")]) == 2
    captured = capsys.readouterr()
    assert "holds out 60,000" in captured.err and "Training on" not in captured.out


def test_there_are_at_least_25_cases():
    assert len(CASES) >= 25


def test_each_training_option_is_checked_by_the_function_training_settings_uses():
    from nablanet.app import run
    from nablanet.app.commands import build_parser

    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    types = {action.dest: action.type for action in commands.choices["train"]._actions}
    assert {name: types[name].check for name in run.VALUE_CHECKS} == run.VALUE_CHECKS


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"epochs": 0}, "--epochs must be a positive integer, received: 0"),
        ({"hidden": (10, -2)}, "--hidden must be positive sizes, received (10, -2)"),
        ({"conv": (True,)}, "--conv must be positive sizes"),
        ({"lr": float("nan")}, "--lr must be a positive finite number"),
        ({"dropout": 1.0}, "--dropout must be a number in [0, 1)"),
        ({"weight_decay": -1.0}, "--weight-decay must be a finite number ≥ 0, received: -1.0"),
        ({"clip_norm": -1.0}, "--clip-norm must be a positive finite number, received: -1.0"),
        ({"early_stopping": 0}, "--early-stopping must be a positive integer"),
        ({"seed": -1}, "--seed must be an integer ≥ 0, received: -1"),
    ],
)
def test_the_library_settings_refuse_what_the_parser_refuses_naming_the_option(settings, message):
    from nablanet.app.run import TrainingSettings

    with pytest.raises(ValueError) as refused:
        TrainingSettings(**settings).check()
    assert message in str(refused.value)


def test_conv_blocks_that_do_not_fit_say_how_many_do(tmp_path, capsys):
    assert main(["train", "--conv", "3,3,3,3", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nablanet train: error: --conv 3,3,3,3: ")
    assert "mnist's images have room for 3 blocks" in err


def test_conv_sizes_numpy_cannot_hold_are_one_line_naming_the_option(tmp_path, capsys):
    assert main(["train", "--conv", "99999999999999999999", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "nablanet train: error: --conv 99999999999999999999: an array of shape (99999999999999999999, 10) is larger "
        "than NumPy can hold\n"
    )


def test_a_model_too_large_for_the_memory_is_refused_before_it_is_built(tmp_path, capsys, monkeypatch):
    from nablanet.app import run

    monkeypatch.setattr(run, "memory_bytes", lambda: 4 * 2**30)  # a computer of 4 GiB
    built = []
    monkeypatch.setattr(run, "build_classifier", lambda *a, **k: built.append(1) or nn.build_classifier(*a, **k))
    assert main(["train", "--conv", "3000", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "--conv 3000 with --batch-size 200 needs about 11.4 GiB to train (5,076,104 numbers a sample)" in err
    assert "more than the 3.0 GiB nablanet allows on this computer" in err and err.count("\n") == 1
    assert built == [1]  # the sketch only, without its arrays
    assert not (tmp_path / "run").exists()  # a run refused before it began leaves no empty folder


def test_a_model_whose_outputs_overflow_is_one_line_from_predict_and_evaluate(tmp_path, capsys):
    model = nn.Sequential([nn.Dense(784, 10, rng=0), nn.Softmax()])
    model.layers[0].W[...] = 1e308  # finite weights, infinite scores
    model.metadata = {"dataset": "mnist"}
    nn.save(model, tmp_path / "model.npz")
    Image.fromarray(np.full((28, 28), 200, np.uint8)).save(tmp_path / "digit.png")
    assert main(["predict", str(tmp_path / "model.npz"), str(tmp_path / "digit.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the model's outputs are not finite numbers (NaN or inf)" in err
    assert main(["evaluate", str(tmp_path / "model.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "outputs on the mnist test set are not finite numbers" in err
