"""The ``nablanet`` command line: train, evaluate, predict, inspect, gradcheck and toy.

Every error is one line on stderr and exit status 2, never a traceback; Ctrl-C during training
writes a checkpoint and exits 130.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from . import _checks
from ._io import write_json
from .idx import DatasetError
from .training import TrainingDiverged

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (no usage block) and exits 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _argument_type(check, description):
    def convert(text):
        try:
            value = float(text) if description == "number" else int(text)
            return check("value", value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {description}, received {text!r}") from None
    return convert


positive_int = _argument_type(_checks.positive_int, "integer")
positive_float = _argument_type(_checks.positive_float, "number")


def _fraction(text):
    try:
        return _checks.fraction("value", float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), received {text!r}") from None


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (np.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, received {text!r}")
    return value


def _hidden_sizes(text):
    if text.strip() in ("", "none", "0"):
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive layer sizes such as 256,128, received {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nablanet", description="Neural networks from scratch in NumPy: train, inspect and use them.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    train = commands.add_parser(
        "train", help="train a classifier on MNIST or Fashion-MNIST",
        description="Train a classifier. The defaults are the course notebook's recipe: the softmax "
                    "classifier (no hidden layer) on MNIST, 20 epochs of SGD, batch 200, learning rate 0.01. "
                    "Writes model.npz, loss.png, misclassified.png and metrics.json to --out.")
    train.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default="mnist",
                       help="data set (default: mnist, bundled; fashion-mnist is read from the system or downloaded)")
    train.add_argument("--data-home", type=Path, default=None, help="folder for downloaded data sets")
    train.add_argument("--hidden", type=_hidden_sizes, default=(), metavar="SIZES",
                       help="hidden layer sizes, comma-separated, e.g. 256,128 (default: none, the softmax classifier)")
    train.add_argument("--activation", choices=("relu", "leaky_relu", "sigmoid", "tanh"), default="relu",
                       help="activation of the hidden layers (default: relu)")
    train.add_argument("--init", choices=("auto", "notebook", "he_normal", "he_uniform", "glorot_normal", "glorot_uniform"),
                       default="auto", help="weight initialiser (default: auto — the notebook's for the softmax "
                                            "classifier, He for ReLU layers, Glorot otherwise)")
    train.add_argument("--epochs", type=positive_int, default=20, help="number of epochs (default: 20)")
    train.add_argument("--batch-size", type=positive_int, default=200, help="mini-batch size (default: 200)")
    train.add_argument("--optimizer", choices=("sgd", "adam", "adamw"), default="sgd", help="optimizer (default: sgd)")
    train.add_argument("--lr", type=positive_float, default=None,
                       help="learning rate (default: 0.01 for sgd, 0.001 for adam and adamw)")
    train.add_argument("--momentum", type=_fraction, default=0.0, help="SGD momentum in [0, 1) (default: 0)")
    train.add_argument("--nesterov", action="store_true", help="use Nesterov momentum (needs --momentum)")
    train.add_argument("--schedule", choices=("constant", "step", "cosine"), default="constant",
                       help="learning-rate schedule: step divides by 10 every 10 epochs; cosine decays to 0 at the last epoch")
    train.add_argument("--weight-decay", type=_non_negative_float, default=0.0,
                       help="L2 weight decay λ, never on biases (decoupled for adamw; default: 0)")
    train.add_argument("--dropout", type=_fraction, default=0.0, help="dropout rate after each hidden layer (default: 0)")
    train.add_argument("--val-split", type=_fraction, default=0.0,
                       help="fraction of the training set held out for validation (default: 0)")
    train.add_argument("--early-stopping", type=positive_int, default=None, metavar="PATIENCE",
                       help="stop after PATIENCE epochs without a better validation loss, keep the best weights")
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                       help="floating-point type of data and weights (default: float32, 1.5–2× faster "
                            "than float64 here with the same printed figures; see the README)")
    train.add_argument("--seed", type=int, default=0, help="random seed for weights and batch order (default: 0)")
    train.add_argument("--out", type=Path, default=None,
                       help="output folder (default: a new folder runs/YYYYmmdd-HHMMSS)")
    train.add_argument("--checkpoint-dir", type=Path, default=None,
                       help="write checkpoint.npz there after every epoch (model, optimizer, history, random state)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run saved in --checkpoint-dir, with the settings saved there")
    train.add_argument("--dynamics", action="store_true",
                       help="record gradient and weight norms, dead units and activations per epoch; writes dynamics.png")

    evaluate = commands.add_parser(
        "evaluate", help="accuracy, per-class accuracy and confusion matrix of a saved model",
        description="Evaluate a model saved by `nablanet train` (its model.npz) on a test set; write "
                    "confusion_matrix.png to --out.")
    evaluate.add_argument("model", type=Path, help="a model file (.npz) written by nablanet")
    evaluate.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default=None,
                          help="test set (default: the one the model was trained on)")
    evaluate.add_argument("--data-home", type=Path, default=None, help="folder for downloaded data sets")
    evaluate.add_argument("--out", type=Path, default=None, help="output folder (default: the model's folder)")

    predict = commands.add_parser(
        "predict", help="classify pictures of digits with a saved model",
        description="Classify images (PNG, JPEG, any size): each is turned into a 28×28 grey MNIST-like digit "
                    "(light ink on dark, centred), then the model prints its prediction and probabilities.")
    predict.add_argument("model", type=Path, help="a model file (.npz) written by nablanet")
    predict.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files")

    gradcheck = commands.add_parser(
        "gradcheck", help="check every layer's backward pass against finite differences, as a table",
        description="Build a network in float64, run it on a few MNIST training images, and compare every "
                    "analytic gradient (backward) with central finite differences.")
    gradcheck.add_argument("--hidden", type=_hidden_sizes, default=(), metavar="SIZES",
                           help="hidden layer sizes, e.g. 32,16 (default: none, the softmax classifier)")
    gradcheck.add_argument("--activation", choices=("relu", "leaky_relu", "sigmoid", "tanh"), default="relu",
                           help="activation of the hidden layers (default: relu)")
    gradcheck.add_argument("--samples", type=positive_int, default=8, help="number of images in the batch (default: 8)")
    gradcheck.add_argument("--max-entries", type=positive_int, default=300,
                           help="check at most this many random entries per array (default: 300)")
    gradcheck.add_argument("--tolerance", type=positive_float, default=1e-6,
                           help="largest relative error that passes (default: 1e-6)")
    gradcheck.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")

    inspect = commands.add_parser(
        "inspect", help="pictures of what a saved model has learned",
        description="Print the model's summary and write every picture that applies to it: weight templates, "
                    "the softmax Jacobian of one test image, and misclassified test images with their probabilities.")
    inspect.add_argument("model", type=Path, help="a model file (.npz) written by nablanet")
    inspect.add_argument("--out", type=Path, required=True, help="folder for the pictures")
    inspect.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default=None,
                         help="test set (default: the one the model was trained on)")
    inspect.add_argument("--data-home", type=Path, default=None, help="folder for downloaded data sets")
    inspect.add_argument("--sample", type=int, default=0, help="index of the test image for the Jacobian (default: 0)")

    toy = commands.add_parser(
        "toy", help="the first notebook: a softmax classifier on 10 random samples, one at a time",
        description="Train the softmax classifier on a toy data set (5 features, 10 samples, 3 classes) "
                    "with batch size 1, printing each sample's loss and weight gradient.")
    toy.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    toy.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (default: 0.001)")
    return parser


def _output_folder(folder: Path | None, option: str = "--out") -> Path:
    """Create ``folder`` (default: a new runs/YYYYmmdd-HHMMSS) and check that files can be written there."""
    folder = folder if folder is not None else Path("runs") / datetime.now().strftime("%Y%m%d-%H%M%S")
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {folder} exists and is not a folder")
    probe = folder / ".nablanet-write-test"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise OSError(f"{option} {folder} is not writable ({error.strerror})") from None
    return folder


def _optimizer(args):
    from .optimizers import OPTIMIZERS
    from .schedules import CosineDecay, StepDecay

    learning_rate = args.lr if args.lr is not None else (0.01 if args.optimizer == "sgd" else 0.001)
    if args.schedule == "step":
        learning_rate = StepDecay(learning_rate, factor=0.1, every=10)
    elif args.schedule == "cosine":
        learning_rate = CosineDecay(learning_rate, epochs=args.epochs)
    options = {"learning_rate": learning_rate, "weight_decay": args.weight_decay}
    if args.optimizer == "sgd":
        options.update(momentum=args.momentum, nesterov=args.nesterov)
    elif args.momentum or args.nesterov:
        raise ValueError(f"--momentum and --nesterov apply to --optimizer sgd, not {args.optimizer}")
    return OPTIMIZERS[args.optimizer](**options)


SETTINGS = ("dataset", "data_home", "hidden", "activation", "init", "epochs", "batch_size", "optimizer", "lr",
            "momentum", "nesterov", "schedule", "weight_decay", "dropout", "val_split", "early_stopping",
            "dtype", "seed", "dynamics")


def _settings(args) -> dict:
    return {key: (str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value)
            for key, value in vars(args).items() if key in SETTINGS}


def _apply_saved_settings(args, saved: dict) -> None:
    """On --resume, take every training option from the checkpoint; refuse a conflicting one."""
    defaults = _settings(build_parser().parse_args(["train"]))
    given = _settings(args)
    for key in SETTINGS:
        if key not in saved:
            raise ValueError(f"the checkpoint lacks the setting {key!r}")
        if given[key] != defaults[key] and given[key] != saved[key]:
            option = "--" + key.replace("_", "-")
            raise ValueError(f"--resume continues with the checkpoint's settings; {option} {given[key]} differs "
                             f"from the saved {saved[key]}: leave {option} out")
        value = saved[key]
        setattr(args, key, tuple(value) if key == "hidden" else Path(value) if key == "data_home" and value else value)


def _load_dataset(name: str, data_home, dtype):
    from .datasets import load_fashion_mnist, load_mnist

    return load_mnist(dtype) if name == "mnist" else load_fashion_mnist(data_home, dtype)


def command_train(args) -> int:
    from .callbacks import Dynamics, EarlyStopping, ProgressBar
    from .checkpoint import FILENAME, Checkpoint, load_checkpoint, restore_early_stopping
    from .model import build_classifier
    from .plots import plot_confusion_matrix, plot_dynamics, plot_history, plot_misclassified
    from .training import History

    state = None
    if args.resume:
        if args.checkpoint_dir is None:
            raise ValueError("--resume needs --checkpoint-dir, the folder of the run to continue")
        if not (args.checkpoint_dir / FILENAME).is_file():
            raise FileNotFoundError(f"no checkpoint to resume: {args.checkpoint_dir / FILENAME} does not exist")
        state = load_checkpoint(args.checkpoint_dir / FILENAME)
        _apply_saved_settings(args, state.settings)
    if args.early_stopping and not args.val_split:
        raise ValueError("--early-stopping needs a validation set: add --val-split, e.g. 0.1")
    optimizer = _optimizer(args) if state is None else state.optimizer
    folder = _output_folder(args.out)
    if args.checkpoint_dir is not None:
        _output_folder(args.checkpoint_dir, "--checkpoint-dir")
    started = time.perf_counter()
    data = _load_dataset(args.dataset, args.data_home, args.dtype)
    if state is None:
        rng = np.random.default_rng(args.seed)
        model = build_classifier(data.X_train.shape[0], data.num_classes, args.hidden, activation=args.activation,
                                 dropout=args.dropout, init=args.init, dtype=args.dtype, rng=rng)
        history, initial_epoch = History(), 0
    else:
        model, rng, history, initial_epoch = state.model, state.rng, state.history, state.epoch
        print(f"Resuming from {args.checkpoint_dir / FILENAME} after epoch {initial_epoch}", flush=True)
    model.metadata = {"dataset": data.name, "class_names": list(data.class_names)}
    print(f"Training on {data.name}: {data.X_train.shape[1]} samples, {data.X_train.shape[0]} features, "
          f"{data.num_classes} classes; {args.epochs} epochs, batch {args.batch_size}, {optimizer.name} "
          f"(learning rate {optimizer.learning_rate:g}), {args.dtype}", flush=True)
    callbacks, stopper = [], None
    if args.early_stopping:
        stopper = EarlyStopping(patience=args.early_stopping)
        restore_early_stopping(stopper, state and state.early_stopping)
        callbacks.append(stopper)
    checkpoint = Checkpoint(args.checkpoint_dir, optimizer=optimizer, rng=rng, history=history,
                            settings=_settings(args), early_stopping=stopper)
    callbacks += [checkpoint, ProgressBar(args.epochs)]  # an epoch's line is printed once its state is saved
    dynamics = Dynamics(data.X_train[:, :1000]) if args.dynamics else None
    if dynamics:
        callbacks.append(dynamics)
    try:
        model.fit(data.X_train, data.Y_train, epochs=args.epochs, batch_size=args.batch_size, optimizer=optimizer,
                  rng=rng, validation_split=args.val_split, callbacks=callbacks, initial_epoch=initial_epoch,
                  history=history)
    except KeyboardInterrupt:
        target = (args.checkpoint_dir or folder) / FILENAME
        checkpoint.write(target)
        finished = checkpoint.snapshot[0]["epoch"]
        print(f"nablanet train: interrupted; the state after epoch {finished} is in {target}: continue with "
              f"nablanet train --resume --checkpoint-dir {target.parent}", file=sys.stderr)
        return 130
    training_seconds = time.perf_counter() - started
    test = model.evaluate(data.X_test, data.Y_test)
    predictions = model.predict(data.X_test)
    print(f"Test accuracy: {test['accuracy']:.4f} (test loss {test['loss']:.6f})")
    print(f"Time: {training_seconds:.1f} s for loading and training")
    figures = history.as_dict()
    model.save(folder / "model.npz")
    plot_history(figures, folder / "loss.png", "loss")
    written = ["model.npz", "loss.png"]
    if "val_accuracy" in figures:
        plot_history(figures, folder / "accuracy.png", "accuracy")
        plot_confusion_matrix(data.y_test, predictions, folder / "confusion_matrix.png", class_names=data.class_names)
        written += ["accuracy.png", "confusion_matrix.png"]
    plot_misclassified(data.X_test, data.y_test, predictions, folder / "misclassified.png",
                       class_names=data.class_names, rng=args.seed)
    written.append("misclassified.png")
    if dynamics:
        plot_dynamics(dynamics.dynamics, folder / "dynamics.png")
        written.append("dynamics.png")
    metrics = {
        "dataset": data.name, "command": " ".join(sys.argv[1:]), "settings": _settings(args),
        "epochs_run": len(figures["loss"]), "history": figures,
        "test_loss": test["loss"], "test_accuracy": test["accuracy"], "seconds": round(training_seconds, 3),
        **({"dynamics": dynamics.dynamics} if dynamics else {}),
    }
    write_json(folder / "metrics.json", metrics)
    print(f"Wrote {', '.join(written + ['metrics.json'])} to {folder}")
    return 0


def _load_model(path: Path):
    from .serialization import load

    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    return load(path)


def command_evaluate(args) -> int:
    from .plots import plot_confusion_matrix

    model = _load_model(args.model)
    name = args.dataset or model.metadata.get("dataset", "mnist")
    if name not in ("mnist", "fashion-mnist"):
        raise ValueError(f"the model was trained on {name!r}; choose --dataset mnist or fashion-mnist")
    data = _load_dataset(name, args.data_home, model.dtype)
    if model.input_size != data.X_test.shape[0] or model.output_size(model.input_size) != data.num_classes:
        raise ValueError(f"the model maps {model.input_size} features to {model.output_size(model.input_size)} "
                         f"classes; {name} has {data.X_test.shape[0]} and {data.num_classes}")
    scores = model.evaluate(data.X_test, data.Y_test)
    predictions = model.predict(data.X_test)
    print(f"{args.model} on the {name} test set ({data.X_test.shape[1]} images): "
          f"accuracy {scores['accuracy']:.4f}, loss {scores['loss']:.6f}")
    print("Per-class accuracy:")
    for label, class_name in enumerate(data.class_names):
        chosen = data.y_test == label
        print(f"  {class_name:>12}: {np.mean(predictions[chosen] == label):.4f}  ({chosen.sum()} images)")
    folder = _output_folder(args.out if args.out is not None else args.model.parent)
    path = plot_confusion_matrix(data.y_test, predictions, folder / "confusion_matrix.png", class_names=data.class_names)
    print(f"Wrote {path}")
    return 0


def command_predict(args) -> int:
    from .images import load_digit

    model = _load_model(args.model)
    if model.input_size != 784:
        raise ValueError(f"the model expects {model.input_size} features, not 28×28 = 784 pixels")
    names = model.metadata.get("class_names") or [str(label) for label in range(model.output_size(784))]
    for path in args.images:
        if not path.is_file():
            raise FileNotFoundError(f"no image file at {path}")
        probabilities = model.predict_proba(load_digit(path).astype(model.dtype))[:, 0]
        best = int(probabilities.argmax())
        listing = "  ".join(f"{name}: {probability:.3f}" for name, probability in zip(names, probabilities))
        print(f"{path}: predicted {names[best]} (probability {probabilities[best]:.3f})")
        print(f"  {listing}")
    return 0


def command_gradcheck(args) -> int:
    from .datasets import load_mnist
    from .gradcheck import gradcheck
    from .model import build_classifier

    data = load_mnist(np.float64)
    X, Y = data.X_train[:, :args.samples], data.Y_train[:, :args.samples]
    model = build_classifier(784, 10, args.hidden, activation=args.activation,
                             init="auto" if args.hidden else "he_normal", rng=args.seed)
    print(model.summary())
    print(f"Batch: the first {args.samples} MNIST training images, float64; loss: fused softmax + cross-entropy\n")
    report = gradcheck(model, X, Y, tolerance=args.tolerance, max_entries=args.max_entries, seed=args.seed)
    print(report.table())
    return 0 if report.passed else 1


def command_inspect(args) -> int:
    from .activations import Softmax
    from .plots import plot_misclassified_probabilities, plot_softmax_jacobian, plot_weight_templates

    model = _load_model(args.model)
    print(model.summary())
    folder = _output_folder(args.out)
    name = args.dataset or model.metadata.get("dataset", "mnist")
    if name not in ("mnist", "fashion-mnist"):
        raise ValueError(f"the model was trained on {name!r}; choose --dataset mnist or fashion-mnist")
    data = _load_dataset(name, args.data_home, model.dtype)
    if not 0 <= args.sample < data.X_test.shape[1]:
        raise ValueError(f"--sample must lie in [0, {data.X_test.shape[1]}), received {args.sample}")
    names = list(data.class_names)
    written = [plot_weight_templates(model, folder / "weight_templates.png", class_names=names)]
    probabilities = model.predict_proba(data.X_test)
    if isinstance(model.layers[-1], Softmax):
        written.append(plot_softmax_jacobian(data.X_test[:, args.sample], probabilities[:, args.sample],
                                             folder / "softmax_jacobian.png", class_names=names))
    written.append(plot_misclassified_probabilities(data.X_test, data.y_test, probabilities,
                                                    folder / "misclassified_probabilities.png", class_names=names))
    print("Wrote " + ", ".join(str(path) for path in written))
    return 0


def command_toy(args) -> int:
    from .activations import Softmax
    from .layers import Dense
    from .losses import cce, cce_gradient
    from .preprocessing import one_hot

    rng = np.random.default_rng(args.seed)
    num_samples, num_features, num_labels = 10, 5, 3
    X = rng.integers(3, 10, size=(num_features, num_samples)).astype(np.float64)  # each column = one sample
    y = rng.integers(0, num_labels, size=num_samples)
    Y = one_hot(y, num_labels)
    print("X (features × samples):", X.astype(int), "labels:", y, sep="\n")
    dense = Dense(num_features, num_labels, rng=rng)
    dense.weights[:, :-1] = rng.standard_normal((num_labels, num_features))  # the notebook's N(0, 1) weights
    softmax = Softmax()
    np.set_printoptions(precision=2)
    for i in range(num_samples):
        x, y_i = X[:, i:i + 1], Y[:, i:i + 1]  # one sample as a (features, 1) batch
        a = softmax.forward(dense.forward(x))
        print(f"\nSample {i}: loss = {cce(y_i, a):.6f}")
        dense.backward(softmax.backward(cce_gradient(y_i, a)), learning_rate=args.lr)
        print("gradient of the loss w.r.t. W̃ = [W | b]:", dense.weights_gradient, sep="\n")
    return 0


COMMANDS = {"train": command_train, "toy": command_toy, "evaluate": command_evaluate, "predict": command_predict,
            "gradcheck": command_gradcheck, "inspect": command_inspect}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("nablanet: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, DatasetError, TrainingDiverged) as error:
        message = str(error).replace("\n", " ") or type(error).__name__
        print(f"nablanet {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
