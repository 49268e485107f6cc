"""The ``nablanet`` commands: train, sample, evaluate, predict, inspect, gradcheck and toy.

This module parses options and prints; what each command does is a library function, in
:mod:`nablanet.app.run` (train) or :mod:`nablanet.app.model_commands` (the others; serve is the
playground's), and :mod:`nablanet.app.cli` turns whatever escapes into one line and an exit status.
Each option's value is checked once, by the function that :class:`~nablanet.app.run.TrainingSettings`
uses too.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import nablanet

from ..core import _checks, kernels
from ..core.activations import ACTIVATIONS
from ..core.initializers import INITIALIZERS
from ..core.optimizers import OPTIMIZERS
from ..core.schedules import SCHEDULES
from ..data.datasets import DATASETS
from . import model_commands, run
from . import sweep as sweeps
from .language import MAX_COUNT, MAX_LENGTH, TEXT_DATASETS, TEXT_MODELS, generate
from .run import TrainingSettings
from .terminal import one_line

EXIT_USAGE = 2


def closest(word: str, choices) -> str | None:
    """The choice ``word`` was probably meant to be: a near spelling (``--hiden`` → ``--hidden``), or the
    option the words' initials make (``--learning-rate`` → ``--lr``); None if nothing is close."""
    names = {choice.lstrip("-").lower(): choice for choice in choices}  # dashes alone make "--x" close to "--y"
    close = difflib.get_close_matches(word.lstrip("-").lower(), list(names), n=1, cutoff=0.6)
    if close:
        return names[close[0]]
    words = [part for part in word.lstrip("-").replace("_", "-").split("-") if part]
    initials = "".join(part[0] for part in words)
    return names[initials] if len(words) > 1 and initials in names else None


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (no usage block), suggests the closest option or
    choice for a misspelt one, and exits 2."""

    def error(self, message):
        invalid = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if invalid:
            choices = re.findall(r"'?([^',\s]+)'?", invalid.group(3))
            guess = closest(invalid.group(2), choices)
            if guess is not None:
                message += f"; did you mean {guess!r}?"
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")

    def unknown_options(self, unknown: list[str]) -> None:
        """Stop with one line naming the first unknown option, and the closest known one if any."""
        options = [option for action in self._actions for option in action.option_strings]
        word = unknown[0].split("=", 1)[0]
        if not word.startswith("-"):
            self.error(f"unexpected argument {unknown[0]!r}")
        guess = closest(word, options)
        hint = f": did you mean {guess}?" if guess else f" (see {self.prog} --help)"
        self.error(f"unknown option {word}{hint}")


class _Version(argparse.Action):
    """``nablanet --version``: the versions of nablanet, Python and NumPy, then which code runs the array work
    (:func:`nablanet.core.kernels.path`: numba's compiled loops, or the NumPy code and why); exit 0. Worked out
    when asked, not when the parser is built: finding out imports numba."""

    def __init__(self, option_strings, dest, **options) -> None:
        options.update(nargs=0, default=argparse.SUPPRESS)
        super().__init__(option_strings, dest, **options)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        python = ".".join(map(str, sys.version_info[:3]))
        print(f"nablanet {nablanet.__version__} (Python {python}, NumPy {np.__version__})")
        print(f"array kernels: {kernels.path()}")
        parser.exit()


@dataclasses.dataclass(frozen=True)
class _Checked:
    """An argparse ``type``: the text ``parse``d, then ``check``ed by the same function as
    :class:`~nablanet.app.run.TrainingSettings` (see :data:`~nablanet.app.run.VALUE_CHECKS`); a bad value is
    argparse's one line, naming the option and saying what was ``expected``."""

    check: Callable[[str, Any], Any]
    parse: Callable[[str], Any]
    expected: str

    def __call__(self, text: str) -> Any:
        try:
            return self.check("value", self.parse(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.expected}, received {text!r}") from None


def _sizes(text: str) -> tuple[int, ...]:
    """Comma-separated layer sizes, ``256,128``; none for "", "none" or "0"."""
    return () if text.strip() in ("", "none", "0") else tuple(int(part) for part in text.split(","))


positive_int = _Checked(_checks.positive_int, int, "a positive integer")
positive_float = _Checked(_checks.positive_float, float, "a positive number")
fraction = _Checked(_checks.fraction, float, "a number in [0, 1)")
non_negative_int = _Checked(_checks.non_negative_int, int, "an integer ≥ 0")
non_negative_float = _Checked(_checks.non_negative_float, float, "a number ≥ 0")
layer_sizes = _Checked(_checks.layer_sizes, _sizes, "comma-separated positive layer sizes such as 256,128")


DEFAULTS = TrainingSettings()


def build_parser() -> argparse.ArgumentParser:
    """The ``nablanet`` parser; every choice list comes from its registry, every default from
    :class:`~nablanet.app.run.TrainingSettings`."""
    parser = _Parser(prog="nablanet", description="Neural networks from scratch in NumPy: train, inspect and use them.")
    parser.add_argument(
        "--version",
        action=_Version,
        help="print the versions and which code runs the array work (numba's compiled loops or NumPy), then exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    datasets = DATASETS.names()
    activations = ACTIVATIONS.names()

    train = commands.add_parser(
        "train",
        help="train a classifier on one of the data sets, or a character model on words",
        description="Train a classifier. The defaults are the course notebook's recipe: the softmax "
        "classifier (no hidden layer) on MNIST, 20 epochs of SGD, batch 200, learning rate 0.01. "
        "Writes model.npz, loss.png, misclassified.png and metrics.json to --out (with --val-split also "
        "accuracy.png and confusion_matrix.png, with --dynamics dynamics.png). With --dataset words and "
        "--model bigram, lstm or transformer, train a character model instead, which reads windows of "
        "--context characters and predicts each next one; it writes model.npz, loss.png (validation loss "
        "in nats per character), samples.txt, metrics.json and, for the transformer, attention.png. "
        "`nablanet sample model.npz` makes it write words.",
    )
    _add_training_options(train)
    _add_text_model_options(train)
    for action in train._actions:
        if action.dest == "dataset":  # the text data sets are for the character models, which train alone offers
            action.choices = (*datasets, *(name for name in TEXT_DATASETS if name not in datasets))
            action.help = (
                f"data set (default: {DEFAULTS.dataset}, bundled; the others are read from the system or downloaded; "
                "words, Debian's word list, and words-sample, 3,000 of its words bundled, are text for --model)"
            )
    train.add_argument(
        "--out", type=Path, default=None, help="output folder (default: a new folder runs/YYYYmmdd-HHMMSS)"
    )
    train.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="write checkpoint.npz there after every epoch (model, optimizer, history, random state)",
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in --checkpoint-dir, with the settings saved there",
    )
    train.add_argument(
        "--fuse",
        action="store_true",
        help="train each Conv2D → ReLU → MaxPool2D and Dense → ReLU as one fused block, faster where numba's "
        "compiled loops run (without them the eager layers train; the run's header says which): the same "
        "function and gradients — bit for bit where pooling reads every output of the convolution, to float32 "
        "rounding where it leaves a last row or column out, which the block does not compute (Keras's convnet's "
        "second convolution). The saved model is the eager one: a run may be resumed with or without it",
    )
    sweep = commands.add_parser(
        "sweep",
        help="train many runs with hyper-parameters searched by Optuna, on one machine or many",
        description="Search hyper-parameters with Optuna: each trial is a training run (the options below, as for "
        "train, with the values of --space) in its own folder trial-NNNN under --out; a trial's score is its "
        "validation accuracy after its last epoch. Writes results.csv (best first), best-model.npz, history.png, "
        "accuracy_vs_lr.png and importances.png. The study lives in --storage: the same command continues a "
        "stopped sweep, and the same --study and --storage on several machines share one. With --jobs N this process "
        "and N-1 worker processes train, each with one BLAS thread (the workers start with OMP_NUM_THREADS, "
        "OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and the like set to 1; this one is held to one by threadpoolctl), "
        "so that N workers share the cores instead of fighting over them.",
    )
    sweep.add_argument(
        "--space",
        action="append",
        required=True,
        metavar="NAME=KIND(VALUES)",
        help="a dimension of the search space over a train option, repeated: loguniform(LOW,HIGH), "
        "uniform(LOW,HIGH), int(LOW,HIGH) or choice(A,B,...), e.g. --space 'lr=loguniform(1e-4,1e-1)' "
        "--space 'hidden=choice(64,128,[256,128])' --space 'optimizer=choice(sgd,adam)'",
    )
    sweep.add_argument(
        "--trials",
        type=positive_int,
        default=20,
        help="trials that must end complete or pruned, counted in the study (failed ones are replaced; default: 20)",
    )
    sweep.add_argument(
        "--sampler",
        choices=sweeps.SAMPLERS,
        default="tpe",
        help="how values are chosen: tpe (Optuna's Tree-structured Parzen Estimator, learns from earlier trials), "
        "random, or grid (every combination of a space of choices; default: tpe)",
    )
    sweep.add_argument(
        "--no-prune",
        dest="prune",
        action="store_false",
        help="train every trial to its last epoch (default: Optuna's median pruner stops a trial whose validation "
        "accuracy lies below the median of earlier trials at the same epoch)",
    )
    sweep.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="workers on this machine, this process among them, one BLAS thread each (default: 1, which trains "
        "in this process with NumPy's own BLAS threads; set OPENBLAS_NUM_THREADS=1 to hold those to one too)",
    )
    sweep.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="the study's database, e.g. postgresql://user@host/db (default: SQLite, sweep.db in --out)",
    )
    sweep.add_argument("--study", default="sweep", help="the study's name in --storage (default: sweep)")
    sweep.add_argument("--out", type=Path, default=None, help="the sweep's folder (default: sweeps/STUDY)")
    sweep.add_argument(
        "--sweep-seed",
        type=non_negative_int,
        default=0,
        help="the sampler's seed; worker k uses it + k, a continued study another (default: 0)",
    )
    _add_training_options(sweep)
    for action in sweep._actions:
        if action.dest == "val_split":
            action.default = sweeps.SWEEP_DEFAULTS.val_split
            action.help = (
                "fraction of the training set held out for validation, on which trials are compared (default: 0.1)"
            )

    evaluate = commands.add_parser(
        "evaluate",
        help="accuracy, per-class accuracy and confusion matrix of a saved model",
        description="Evaluate a model saved by `nablanet train` (its model.npz) on a test set; write "
        "confusion_matrix.png to --out (default: the model's folder).",
    )
    evaluate.add_argument("model", type=Path, help="a model file (.npz) written by nablanet")
    evaluate.add_argument(
        "--dataset", choices=datasets, default=None, help="test set (default: the one the model was trained on)"
    )
    evaluate.add_argument("--data-home", default=None, help="folder for downloaded data sets")
    evaluate.add_argument("--out", type=Path, default=None, help="output folder (default: the model's folder)")

    predict = commands.add_parser(
        "predict",
        help="classify pictures of digits with a saved model",
        description="Classify images (PNG, JPEG, any size): each is turned into a 28×28 grey MNIST-like digit "
        "(light ink on dark, centred), then the model prints its prediction and probabilities.",
    )
    predict.add_argument("model", type=Path, help="a model file (.npz) written by nablanet")
    predict.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files")

    gradcheck = commands.add_parser(
        "gradcheck",
        help="check every layer's backward pass against finite differences, as a table",
        description="Build a network in float64, run it on a few MNIST training images, and compare every "
        "analytic gradient (backward) with central finite differences.",
    )
    gradcheck.add_argument(
        "--hidden",
        type=layer_sizes,
        default=(),
        metavar="SIZES",
        help="hidden layer sizes, e.g. 32,16 (default: none, the softmax classifier)",
    )
    gradcheck.add_argument(
        "--conv",
        type=layer_sizes,
        default=(),
        metavar="FILTERS",
        help="convolution blocks (3×3 Conv2D, activation, 2×2 MaxPool2D), e.g. 4,8 (default: none)",
    )
    gradcheck.add_argument(
        "--activation",
        choices=activations,
        default=DEFAULTS.activation,
        help=f"activation of the hidden layers (default: {DEFAULTS.activation})",
    )
    gradcheck.add_argument(
        "--loss",
        choices=("auto", "cce"),
        default="auto",
        help="auto: the fused softmax + cross-entropy that training uses (default); cce: the notebook's "
        "path, the Softmax layer's Jacobian backward then cross-entropy, so the Jacobian is checked too",
    )
    gradcheck.add_argument("--samples", type=positive_int, default=8, help="number of images in the batch (default: 8)")
    gradcheck.add_argument(
        "--max-entries",
        type=positive_int,
        default=300,
        help="check at most this many random entries per array (default: 300)",
    )
    gradcheck.add_argument(
        "--tolerance", type=positive_float, default=1e-6, help="largest relative error that passes (default: 1e-6)"
    )
    gradcheck.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: 0)")

    inspect = commands.add_parser(
        "inspect",
        help="pictures of what a saved model has learned",
        description="Print the model's summary and write every picture that applies to it: weight templates, "
        "the softmax Jacobian of one test image, and misclassified test images with their probabilities.",
    )
    inspect.add_argument("model", type=Path, help="a model file (.npz) written by nablanet")
    inspect.add_argument("--out", type=Path, required=True, help="folder for the pictures")
    inspect.add_argument(
        "--dataset", choices=datasets, default=None, help="test set (default: the one the model was trained on)"
    )
    inspect.add_argument("--data-home", default=None, help="folder for downloaded data sets")
    inspect.add_argument(
        "--sample",
        type=int,
        default=None,
        help="index of the test image for the Jacobian and the feature maps (default: the first one the model "
        "hesitates on, top probability 0.4–0.7: a confident sample's Jacobian is ≈ 0 everywhere)",
    )

    sample = commands.add_parser(
        "sample",
        help="words written by a character model (nablanet train --dataset words --model transformer)",
        description="Write words with a character model saved by `nablanet train --dataset words`: each starts "
        "with --prompt and goes on one character at a time, drawn from the model's probabilities for the next "
        "character sharpened or flattened by --temperature, until a newline ends it (or --max-length). One word "
        "a line.",
    )
    sample.add_argument("model", type=Path, help="a character model file (.npz) written by nablanet train")
    sample.add_argument(
        "--count", type=_bounded(1, MAX_COUNT), default=10, help=f"words to write, 1 to {MAX_COUNT} (default: 10)"
    )
    sample.add_argument(
        "--temperature",
        type=positive_float,
        default=1.0,
        help="τ of softmax(z/τ): below 1 the likely characters more often, above 1 the rare ones (default: 1)",
    )
    sample.add_argument("--seed", type=non_negative_int, default=0, help="random seed of the draws (default: 0)")
    sample.add_argument(
        "--prompt", default="", help="the start of every word, in the model's characters (default: none)"
    )
    sample.add_argument(
        "--max-length",
        type=_bounded(1, MAX_LENGTH),
        default=40,
        help=f"characters a word may have, the prompt's included, 1 to {MAX_LENGTH} (default: 40)",
    )

    toy = commands.add_parser(
        "toy",
        help="the first notebook: a softmax classifier on 10 random samples, one at a time",
        description="Train the softmax classifier on a toy data set (5 features, 10 samples, 3 classes) "
        "with batch size 1, printing each sample's loss and weight gradient.",
    )
    toy.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: 0)")
    toy.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (default: 0.001)")

    exercises = commands.add_parser(
        "exercises",
        help="write the exercise notebooks (the learner writes the layer, nablanet.check says what is wrong)",
        description="Write the student version of every exercise notebook into FOLDER: the learner writes "
        "the softmax classifier's gradient, Dense, Softmax's Jacobian, the cross-entropy, ReLU and the chain "
        "rule, Conv2D and MaxPool2D, and checks each with nablanet.check, which names the likely mistake. "
        "A notebook already in FOLDER (it may hold a learner's work) is never replaced.",
    )
    exercises.add_argument("folder", type=Path, metavar="FOLDER", help="where to write the notebooks")
    exercises.add_argument(
        "--solutions", action="store_true", help="also write the solutions (NAME_solution.ipynb), for a teacher"
    )

    serve = commands.add_parser(
        "serve",
        help="the playground: draw a digit, train on toy data, in a local web page",
        description="Start the playground, a web page on this computer: draw a digit and see what a model "
        "makes of it (the 28×28 input, the probabilities, the softmax Jacobian, each layer's output), or train "
        "a small network on 2-D toy data and watch its decision boundary. It serves the MODEL files given, "
        "else every run's model.npz under --runs; with none, the page offers to train the notebook's "
        "classifier. By default it listens on 127.0.0.1 only (--host), prints its address and runs until Ctrl-C. "
        "Needs the playground extra: pip install 'nablanet[playground]'.",
    )
    serve.add_argument("models", nargs="*", type=Path, metavar="MODEL", help="model files (.npz) to serve")
    serve.add_argument("--port", type=_port, default=8000, help="port to listen on (default: 8000; 0: any free port)")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="IPv4 address to listen on (default: 127.0.0.1, this computer only; 0.0.0.0 opens it to the network)",
    )
    serve.add_argument("--runs", type=Path, default=Path("runs"), help="folder searched for models (default: runs)")
    serve.add_argument("--open", action="store_true", help="open the page in the default web browser")
    serve.add_argument(
        "--max-sessions",
        type=_max_sessions,
        default=8,
        help="Train-tab sessions open at once (default: 8; at most 200); for a class, one per student who trains",
    )
    return parser


def _add_text_model_options(parser: argparse.ArgumentParser) -> None:
    """The options of a character model (--dataset words), the model among them."""
    text = parser.add_argument_group("character models (--dataset words)")
    text.add_argument(
        "--model",
        choices=("classifier", *TEXT_MODELS),
        default=DEFAULTS.model,
        help="classifier (the image data sets), or a character model: bigram (a V×V table of next-character "
        "logits, the baseline), lstm (an LSTM of --hidden units, default 128) or transformer (default: classifier)",
    )
    text.add_argument(
        "--context",
        type=positive_int,
        default=DEFAULTS.context,
        help=f"T, the characters of a training window (default: {DEFAULTS.context})",
    )
    text.add_argument(
        "--embed",
        type=positive_int,
        default=DEFAULTS.embed,
        help=f"d, the embedding's width (default: {DEFAULTS.embed})",
    )
    text.add_argument(
        "--heads",
        type=positive_int,
        default=DEFAULTS.heads,
        help=f"attention heads per transformer block; --embed must be a multiple (default: {DEFAULTS.heads})",
    )
    text.add_argument(
        "--blocks", type=positive_int, default=DEFAULTS.blocks, help=f"transformer blocks (default: {DEFAULTS.blocks})"
    )


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    """The options of what a run computes (the fields of TrainingSettings), shared by train and sweep."""
    datasets = DATASETS.names()
    activations = ACTIVATIONS.names()
    parser.add_argument(
        "--dataset",
        choices=datasets,
        default=DEFAULTS.dataset,
        help=f"data set (default: {DEFAULTS.dataset}, bundled; the others are read from the system or downloaded)",
    )
    parser.add_argument("--data-home", default=None, help="folder for downloaded data sets")
    parser.add_argument(
        "--hidden",
        type=layer_sizes,
        default=DEFAULTS.hidden,
        metavar="SIZES",
        help="hidden layer sizes, comma-separated, e.g. 256,128 (default: none, the softmax classifier)",
    )
    parser.add_argument(
        "--conv",
        type=layer_sizes,
        default=DEFAULTS.conv,
        metavar="FILTERS",
        help="convolution blocks before the hidden layers, comma-separated numbers of filters, e.g. 32,64: each "
        "is a 3×3 Conv2D, the activation and a 2×2 MaxPool2D, then Flatten (default: none)",
    )
    parser.add_argument(
        "--activation",
        choices=activations,
        default=DEFAULTS.activation,
        help=f"activation of the hidden layers (default: {DEFAULTS.activation})",
    )
    parser.add_argument(
        "--init",
        choices=("auto", *INITIALIZERS.names()),
        default=DEFAULTS.init,
        help="weight initialiser (default: auto — the notebook's for the softmax "
        "classifier, He for ReLU layers, Glorot otherwise)",
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=DEFAULTS.epochs, help=f"number of epochs (default: {DEFAULTS.epochs})"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULTS.batch_size,
        help=f"mini-batch size (default: {DEFAULTS.batch_size})",
    )
    parser.add_argument(
        "--optimizer",
        choices=OPTIMIZERS.names(),
        default=DEFAULTS.optimizer,
        help=f"optimizer (default: {DEFAULTS.optimizer})",
    )
    parser.add_argument(
        "--lr",
        type=positive_float,
        default=DEFAULTS.lr,
        help="learning rate (default: 0.01 for sgd, 0.001 for the others)",
    )
    parser.add_argument(
        "--momentum",
        type=fraction,
        default=DEFAULTS.momentum,
        help=f"SGD momentum in [0, 1) (default: {DEFAULTS.momentum:g})",
    )
    parser.add_argument("--nesterov", action="store_true", help="use Nesterov momentum (needs --momentum)")
    parser.add_argument(
        "--schedule",
        choices=SCHEDULES.names(),
        default=DEFAULTS.schedule,
        help="learning-rate schedule: step divides by 10 every 10 epochs; cosine decays to 0 at the "
        f"last epoch (default: {DEFAULTS.schedule})",
    )
    parser.add_argument(
        "--weight-decay",
        type=non_negative_float,
        default=DEFAULTS.weight_decay,
        help="L2 weight decay λ, never on biases (decoupled for adamw; default: 0)",
    )
    parser.add_argument(
        "--clip-norm",
        type=positive_float,
        default=DEFAULTS.clip_norm,
        help="clip the gradients to this global norm before each step (default: no clipping)",
    )
    parser.add_argument(
        "--dropout",
        type=fraction,
        default=DEFAULTS.dropout,
        help="dropout rate after the flattened convolutions and each hidden layer (default: 0)",
    )
    parser.add_argument(
        "--batch-norm",
        action="store_true",
        help="BatchNorm before the activation of every convolution and hidden layer",
    )
    parser.add_argument(
        "--val-split",
        type=fraction,
        default=DEFAULTS.val_split,
        help="fraction of the training set held out for validation (default: 0)",
    )
    parser.add_argument(
        "--early-stopping",
        type=positive_int,
        default=DEFAULTS.early_stopping,
        metavar="PATIENCE",
        help="stop after PATIENCE epochs without a better validation loss, keep the best weights",
    )
    parser.add_argument(
        "--dtype",
        choices=tuple(np.dtype(dtype).name for dtype in _checks.FLOAT_DTYPES),
        default=DEFAULTS.dtype,
        help=f"floating-point type of data and weights (default: {DEFAULTS.dtype}, 1.5–2× faster "
        "than float64 here with the same printed figures; see the README)",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=DEFAULTS.seed,
        help=f"random seed for weights and batch order (default: {DEFAULTS.seed})",
    )
    parser.add_argument(
        "--dynamics",
        action="store_true",
        help="record gradient and weight norms, dead units and activations per epoch; writes dynamics.png",
    )


def _bounded(low: int, high: int) -> _Checked:
    """An integer option in [low, high]."""
    return _Checked(
        lambda name, value: _checks.int_in_range(name, value, low, high), int, f"an integer from {low} to {high}"
    )


def _port(text):
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, received {text!r}")
    return int(text)


def _max_sessions(text):
    if not text.isdigit() or not 1 <= int(text) <= 200:
        raise argparse.ArgumentTypeError(f"expected a number of sessions from 1 to 200, received {text!r}")
    return int(text)


def _say(line: str) -> None:
    print(line, flush=True)


def _subcommand_parser(parser: argparse.ArgumentParser, name: str) -> _Parser:
    commands = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return commands.choices[name]


def _given_options(argv: list[str]) -> set[str]:
    """The settings the user typed on the command line (an option typed with its default value too)."""
    parser = build_parser()
    for action in _subcommand_parser(parser, "train")._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv))) - {"command"}


def command_train(args) -> int:
    fields = {field: getattr(args, field) for field in TrainingSettings.__dataclass_fields__}
    result = run.train_run(
        TrainingSettings(**fields),
        out=args.out,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        given=_given_options(args.argv),
        report=_say,
        command=" ".join(args.argv),
        fuse=args.fuse,
    )
    print(f"Wrote {', '.join(result.written)} to {one_line(result.folder)}")
    if result.test_accuracy is None:
        print(f"Make it write: nablanet sample {one_line(result.folder / 'model.npz')}")
    return 0


def command_sweep(args) -> int:
    fields = {field: getattr(args, field) for field in TrainingSettings.__dataclass_fields__ if hasattr(args, field)}
    result = sweeps.sweep(
        args.space,
        TrainingSettings(**fields),
        trials=args.trials,
        sampler=args.sampler,
        prune=args.prune,
        jobs=args.jobs,
        storage=args.storage,
        study=args.study,
        out=args.out,
        seed=args.sweep_seed,
        report=_say,
    )
    print(result.table(rows=10))
    print(f"Wrote {', '.join(result.written)} to {one_line(result.folder)}")
    return 0


def command_evaluate(args) -> int:
    evaluation = model_commands.evaluate_model(args.model, dataset=args.dataset, data_home=args.data_home, out=args.out)
    print(
        f"{one_line(args.model)} on the {evaluation.dataset} test set ({evaluation.num_images} images): "
        f"accuracy {evaluation.accuracy:.4f}, loss {evaluation.loss:.6f}"
    )
    print("Per-class accuracy:")
    for class_name, accuracy, count in evaluation.per_class:
        print(f"  {class_name:>12}: {accuracy:.4f}  ({count} images)")
    where = " (the model's folder; --out chooses another)" if args.out is None else ""
    print(f"Wrote the confusion matrix to {one_line(evaluation.confusion_matrix)}{where}")
    return 0


def command_predict(args) -> int:
    for prediction in model_commands.predict_images(args.model, args.images):
        kind = "probability" if prediction.probabilities else "score"
        listing = "  ".join(f"{one_line(name)}: {value:.3f}" for name, value in prediction.outputs)
        print(f"{one_line(prediction.path)}: predicted {one_line(prediction.label)} ({kind} {prediction.value:.3f})")
        print(f"  {listing}")
    return 0


def command_gradcheck(args) -> int:
    model, report = model_commands.gradcheck_run(
        hidden=args.hidden,
        conv=args.conv,
        activation=args.activation,
        samples=args.samples,
        max_entries=args.max_entries,
        tolerance=args.tolerance,
        seed=args.seed,
        loss=args.loss,
    )
    print(model.summary())
    noise = " + 0.01·N(0, 1) noise" if args.conv else ""
    loss = (
        "the Softmax layer (its Jacobian backward) + cross-entropy (cce), as in the notebook"
        if args.loss == "cce"
        else "fused softmax + cross-entropy, as in training"
    )
    print(
        f"Batch: the first {args.samples} MNIST training images{noise}, float64; biases 0.1·N(0, 1); "
        f"loss: {loss}; each array's entries checked: all, or {args.max_entries} chosen at random when it has "
        f"more (--max-entries)\n"
    )
    print(report.table())
    return 0 if report.passed else 1


def command_inspect(args) -> int:
    model = model_commands.load_model_file(args.model)
    print(model.summary())
    written = model_commands.inspect_model(
        args.model, out=args.out, dataset=args.dataset, data_home=args.data_home, sample=args.sample
    )
    print("Wrote " + ", ".join(one_line(path) for path in written))
    return 0


def command_sample(args) -> int:
    model = model_commands.load_model_file(args.model)
    words = generate(
        model,
        count=args.count,
        temperature=args.temperature,
        seed=args.seed,
        prompt=args.prompt,
        max_length=args.max_length,
    )
    for word in words:
        print(one_line(word))
    return 0


def command_toy(args) -> int:
    model_commands.toy_run(seed=args.seed, learning_rate=args.lr, report=print)
    return 0


def command_exercises(args) -> int:
    from ..exercises.student import write_exercises

    written = write_exercises(args.folder, solutions=args.solutions)
    for path in written:
        print(f"wrote {one_line(path)}")
    print(
        "Open them in Jupyter (JupyterLab or Notebook, installed beside nablanet); each check cell says what is "
        "right or wrong."
    )
    return 0


def command_serve(args) -> int:
    try:
        from .playground.server import serve
    except ImportError as error:
        raise RuntimeError(
            f"the playground needs {error.name or 'its web server'}: pip install 'nablanet[playground]'"
        ) from None
    serve(
        args.models,
        host=args.host,
        port=args.port,
        runs=args.runs,
        open_browser=args.open,
        report=_say,
        max_sessions=args.max_sessions,
    )
    return 0


COMMANDS = {
    "train": command_train,
    "sweep": command_sweep,
    "toy": command_toy,
    "sample": command_sample,
    "evaluate": command_evaluate,
    "predict": command_predict,
    "gradcheck": command_gradcheck,
    "inspect": command_inspect,
    "exercises": command_exercises,
    "serve": command_serve,
}


def run_command(argv, context: dict[str, str]) -> int:
    """Parse ``argv``, note the command's name in ``context`` (for error lines), run it, return its status."""
    argv = list(argv) if argv is not None else sys.argv[1:]
    parser = build_parser()
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        parser.error(f"options go after the command, as in: nablanet train {argv[0]}")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _subcommand_parser(parser, args.command).unknown_options(unknown)
    args.argv = argv
    context["command"] = args.command
    return COMMANDS[args.command](args)
