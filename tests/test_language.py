"""Character models from the command line: `nablanet train --dataset words-sample --model …` writes its run
folder, `nablanet sample` makes the model write, and every bad input is one line and exit status 2.

Tiny models on the 3,000 bundled words (`words-sample`), run in-process, so that the whole file takes seconds.
"""

import json
import math

import numpy as np
import pytest

import nablanet as nn
from nablanet.app import language
from nablanet.app.cli import main
from nablanet.files.serialization import write_archive

TINY = "--dataset words-sample --context 8 --batch-size 64 --optimizer adam".split()
TRANSFORMER = "--model transformer --embed 16 --heads 2 --blocks 1".split()


def status_of(arguments):
    try:
        return main(arguments)
    except SystemExit as stop:  # argparse
        return stop.code


@pytest.fixture(scope="module")
def transformer_run(tmp_path_factory):
    """A tiny transformer trained for 2 epochs from the command line: its folder and what it printed."""
    folder = tmp_path_factory.mktemp("lm") / "run"
    capture = pytest.MonkeyPatch()
    lines = []
    capture.setattr("nablanet.app.commands._say", lines.append)
    try:
        assert main(["train", *TINY, *TRANSFORMER, "--epochs", "2", "--lr", "0.01", "--out", str(folder)]) == 0
    finally:
        capture.undo()
    return folder, lines


def test_a_transformer_run_writes_its_model_pictures_samples_and_metrics(transformer_run):
    folder, lines = transformer_run
    for name in ("model.npz", "loss.png", "attention.png", "samples.txt", "metrics.json"):
        assert (folder / name).is_file(), name
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["settings"]["model"] == "transformer" and metrics["epochs_run"] == 2
    assert len(metrics["history"]["val_loss"]) == 2
    assert metrics["validation_loss"] < math.log(27) - 0.3  # it learnt something: a uniform guess is log 27
    assert metrics["validation_loss"] == pytest.approx(metrics["history"]["val_loss"][-1], rel=1e-6)
    samples = (folder / "samples.txt").read_text().splitlines()
    assert samples[0].startswith("# 10 samples") and samples[1:] == metrics["samples"]
    assert any(line.startswith("Validation loss: ") and "nats per character" in line for line in lines)


def test_the_model_file_keeps_the_vocabulary_and_context_as_plain_data(transformer_run):
    folder, _ = transformer_run
    model = nn.load(folder / "model.npz")
    facts = language.text_model_facts(model)
    assert facts.vocabulary == "\nabcdefghijklmnopqrstuvwxyz" and facts.context == 8
    assert model.metadata["vocabulary"] == [10, *range(ord("a"), ord("z") + 1)]


def test_sample_writes_count_words_that_start_with_the_prompt_the_same_for_the_same_seed(transformer_run, capsys):
    model = str(transformer_run[0] / "model.npz")
    assert main(["sample", model, "--count", "5", "--prompt", "th", "--seed", "3"]) == 0
    words = capsys.readouterr().out.splitlines()
    assert len(words) == 5 and all(word.startswith("th") for word in words)
    assert all(set(word) <= set("abcdefghijklmnopqrstuvwxyz") for word in words)
    assert main(["sample", model, "--count", "5", "--prompt", "th", "--seed", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == words
    assert main(["sample", model, "--count", "5", "--max-length", "3", "--prompt", "th", "--seed", "3"]) == 0
    assert all(len(word) <= 3 for word in capsys.readouterr().out.splitlines())


@pytest.mark.parametrize("model", ["bigram", "lstm"])
def test_the_bigram_and_the_lstm_train_and_write_too(model, tmp_path, capsys):
    options = ["--hidden", "16", "--embed", "16"] if model == "lstm" else []
    out = tmp_path / model
    assert main(["train", *TINY, "--model", model, *options, "--epochs", "1", "--lr", "0.02", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["validation_loss"] < math.log(27)
    assert not (out / "attention.png").exists()  # attention maps are the transformer's alone
    capsys.readouterr()
    assert main(["sample", str(out / "model.npz"), "--count", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_a_model_whose_outputs_overflow_is_one_line_from_sample(files, tmp_path, capsys):
    model = language.build_text_model("transformer", 27, context=8, embed=8, heads=2, blocks=1, rng=0)
    model.metadata = {"dataset": "words", "model": "transformer", "context": 8, "vocabulary": [10, *range(97, 123)]}
    model.layers[-1].W[...] = np.finfo(np.float32).max  # the logits W x overflow to ±inf in float32
    nn.save(model, tmp_path / "overflow.npz")
    assert main(["sample", str(tmp_path / "overflow.npz")]) == 2
    error = capsys.readouterr().err
    assert "not finite numbers (NaN or inf)" in error and len(error.strip().splitlines()) == 1


def test_a_low_temperature_writes_the_likeliest_characters():
    model = language.build_text_model("bigram", 27, rng=0, dtype=np.float64)
    model.metadata = {"model": "bigram", "context": 8, "vocabulary": [10, *range(ord("a"), ord("z") + 1)]}
    vocabulary = language.text_model_facts(model).vocabulary
    table = model.layers[0].table  # row v: the logits of the character after character v
    table[...] = 0.0
    for before, after in zip("\nthe", "the\n", strict=True):
        table[vocabulary.index(before), vocabulary.index(after)] = 10.0
    assert language.generate(model, count=4, temperature=0.05, seed=0) == ["the"] * 4
    assert len(set(language.generate(model, count=20, temperature=100.0, seed=0))) > 1  # nearly uniform


CHARACTER_CASES = [  # (what the user typed, after `nablanet`; a fragment of the one-line message)
    ("train --dataset words-sample", "--dataset words-sample is text: choose a character model, --model bigram or"),
    ("train --model transformer", "--model transformer is a character model: it trains on --dataset words"),
    ("train --context 8", "--context is for character models: add --dataset words"),
    ("train --model tranformer", "invalid choice: 'tranformer'"),
    (
        "train --dataset words-sample --model transformer --embed 10 --heads 4",
        "--embed 10 must be a multiple of --heads 4",
    ),
    ("train --dataset words-sample --model bigram --conv 4", "--conv does not apply to --model bigram"),
    (
        "train --dataset words-sample --model lstm --hidden 8,8",
        "--hidden does not apply to --model lstm (lstm: one size)",
    ),
    ("train --dataset words-sample --model bigram --val-split 0.1", "(words-sample has its own validation set)"),
    ("train --dataset words-sample --model bigram --embed 32", "--embed does not apply to --model bigram"),
    ("train --dataset words-sample --model transformer --batch-norm", "--batch-norm does not apply to --model trans"),
    ("train --dataset words-sample --model lstm --heads 2", "--heads does not apply to --model lstm"),
    ("train --dataset words-sample --model bigram --context 0", "argument --context: expected a positive integer"),
    ("sample {dir}/lm.npz --count 0", "argument --count: expected an integer from 1 to 1000, received '0'"),
    ("sample {dir}/lm.npz --temperature 0", "argument --temperature: expected a positive number"),
    ("sample {dir}/lm.npz --max-length 500", "argument --max-length: expected an integer from 1 to 200"),
    ("sample {dir}/lm.npz --prompt Ab!", "--prompt has characters the model does not know: '!A'"),
    ("sample {dir}/lm.npz --prompt abc --max-length 3", "--max-length 3 leaves room for none more"),
    ("sample {dir}/classifier.npz", "is not a character model (train one with nablanet train --dataset words"),
    ("sample {dir}/missing.npz", "no model file at {dir}/missing.npz"),
    ("sample {dir}/wide.npz", "its layers give (28, 8) outputs a position, its vocabulary has 27"),
    ("sample {dir}/long.npz", "its context length must be an integer in [1, 4096], received 1000000"),
    ("sample {dir}/longer.npz", "its context length 64 is longer than its positional embedding's, 8"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample")
    vocabulary = [10, *range(ord("a"), ord("z") + 1)]
    for name, size, context in (("lm", 27, 8), ("wide", 28, 8), ("long", 27, 1_000_000)):
        model = language.build_text_model("bigram", size, rng=0)
        model.metadata = {"dataset": "words", "model": "bigram", "context": context, "vocabulary": vocabulary}
        nn.save(model, folder / f"{name}.npz")
    nn.save(nn.Sequential([nn.Dense(5, 3), nn.Softmax()]), folder / "classifier.npz")
    model = language.build_text_model("transformer", 27, context=8, embed=8, heads=2, blocks=1, rng=0)
    model.metadata = {"dataset": "words", "model": "transformer", "context": 64, "vocabulary": vocabulary}
    nn.save(model, folder / "longer.npz")
    return folder


@pytest.mark.parametrize("command, fragment", CHARACTER_CASES, ids=[command for command, _ in CHARACTER_CASES])
def test_bad_character_model_input_gets_one_line_and_exit_2(files, tmp_path, capsys, command, fragment):
    arguments = command.format(dir=files).split()
    if arguments[0] == "train":
        arguments += ["--out", str(tmp_path / "run")]
    assert status_of(arguments) == 2
    captured = capsys.readouterr()
    assert fragment.format(dir=files) in captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_character_model_file_declaring_a_huge_vocabulary_is_one_line_from_sample(tmp_path, capsys):
    # that nn.load refuses it before allocating is tests/test_attention.py's; here: the command's one line
    model = language.build_text_model("transformer", 27, context=8, embed=8, heads=2, blocks=1, rng=0)
    model.metadata = {"dataset": "words", "model": "transformer", "context": 8, "vocabulary": [10, *range(97, 123)]}
    config = model.get_config()
    config["layers"][0]["config"]["vocabulary_size"] = 2**40  # an Embedding table of 2⁴⁰ × 8 numbers
    specs = nn.Sequential.parameter_specs(config)  # worked out from the config alone
    stand_ins = {name: np.zeros((1,) * len(shape), dtype) for name, (shape, dtype) in specs.items()}
    write_archive(tmp_path / "huge.npz", "model", config, stand_ins)
    assert main(["sample", str(tmp_path / "huge.npz")]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"nablanet sample: error: {tmp_path / 'huge.npz'}: the config describes")
    assert "MiB of arrays, more than the" in error and len(error.strip().splitlines()) == 1
