"""A Train-tab run as code: the exact data, model and training loop of a session as a notebook or a script that
uses ``nablanet`` and reproduces the run bit for bit.

The code makes the data with the calls :func:`.training.toy_data` makes (the toy data set, its seeded split,
the input features), builds the model as the session built it (same initialisers, same seed), and trains with
one ``model.fit`` per stretch of epochs between the weights edited by hand (none: a single ``fit``), sharing
one optimizer and one shuffling generator, as the session's single ``fit`` did. It prints the final training
loss, the mean over the last epoch's batches, and the test loss, with every digit (``repr``): the page's run
shows the same numbers.
"""

from __future__ import annotations

import json

from ...core.activations import ACTIVATIONS
from ...core.optimizers import OPTIMIZERS
from ...core.regularizers import REGULARIZERS
from .training import ToySession

FORMATS = {"ipynb": "application/x-ipynb+json", "py": "text/x-python"}


def cells(session: ToySession) -> list[tuple[str, str]]:
    """The run as (kind, source) cells, kind "markdown" or "code", for :func:`notebook` and :func:`script`."""
    settings, epoch = session.settings, len(session.history.loss)
    optimizer = OPTIMIZERS.lookup(settings.optimizer).__name__
    activation = ACTIVATIONS.lookup(settings.activation).__name__
    imports = ["import numpy as np", "", f"from nablanet import {optimizer}, build_classifier, toy_dataset"]
    if settings.regression:
        imports[-1] = f"from nablanet import {activation}, {optimizer}, Dense, Sequential, toy_regression"
    imports.append("from nablanet.data.toy import split_points, toy_features")
    if settings.regularization != "none":
        imports.append(
            f"from nablanet.core.regularizers import {REGULARIZERS.lookup(settings.regularization).__name__}"
        )
    if settings.regression:
        data = f"data = toy_regression({settings.dataset!r}, {settings.samples}, noise={settings.noise!r}, seed=seed)"
        inputs, hidden = len(settings.features), list(settings.hidden)
        init = "he_normal" if "relu" in settings.activation else "glorot_uniform"
        model = "\n".join(
            [
                "weights = np.random.default_rng(seed)  # the initial weights, layer by layer",
                "layers = []",
                f"for size_in, size_out in zip([{inputs}, *{hidden}], {hidden}):",
                f"    layers += [Dense(size_in, size_out, init={init!r}, rng=weights), {activation}()]",
                f"model = Sequential([*layers, Dense({hidden[-1] if hidden else inputs}, 1, init='glorot_uniform', "
                "rng=weights)])",
            ]
        )
        loss = "mse"
    else:
        data = (
            f"data = toy_dataset({settings.dataset!r}, {settings.samples}, classes={settings.classes!r}, "
            f"noise={settings.noise!r}, seed=seed)"
        )
        model = (
            f"model = build_classifier({len(settings.features)}, data.num_classes, {list(settings.hidden)}, "
            f"activation={settings.activation!r}, rng=seed)"
        )
        loss = "auto"
    regularizer = (
        "None"
        if settings.regularization == "none"
        else f"{REGULARIZERS.lookup(settings.regularization).__name__}({settings.regularization_rate!r})"
    )
    setup = "\n".join(
        [
            f"seed = {settings.seed}",
            data,
            "P_train, Y_train, P_test, Y_test = split_points(",
            f"    data.X_train, data.Y_train, {settings.train_percent} / 100, seed=seed",
            ")",
            f"features = {list(settings.features)}",
            "X_train, X_test = toy_features(P_train, features), toy_features(P_test, features)",
            model,
            "print(model.summary())",
        ]
    )
    training = [
        f"optimizer = {optimizer}({settings.learning_rate!r})",
        f"regularizer = {regularizer}",
        "shuffle = np.random.default_rng(seed)  # the order of the mini-batches, epoch after epoch",
        "history = None",
    ]
    done = 0
    for stop in sorted({edit.epoch for edit in session.edits} | {epoch}):
        if stop > done:
            training.append(
                f"history = model.fit(X_train, Y_train, epochs={stop}, initial_epoch={done}, "
                f"batch_size={settings.batch_size}, optimizer=optimizer, loss={loss!r}, regularizer=regularizer, "
                "rng=shuffle, history=history, verbose=0)"
            )
            done = stop
        for edit in session.edits:
            if edit.epoch == stop:
                training.append(
                    f"model.layers[{2 * edit.layer}].weights[{edit.row}, {edit.column}] = {edit.value!r}  "
                    f"# set by hand after epoch {edit.epoch}"
                )
    result = [
        "test = model.evaluate(X_test, Y_test, loss=" + repr(loss) + ")",
    ]
    if epoch:
        result.append('print(f"after epoch {len(history.loss)}: training loss {history.loss[-1]!r}")')
    result.append("print(f\"test loss {test['loss']!r}\")")
    title = (
        f"# A nablanet playground run: {settings.dataset}, {epoch} epochs\n\n"
        f"The page's settings: `{json.dumps(settings.as_dict())}`.\n\n"
        "The same data (seeded points, seeded split, the input features), the same model (same initial weights), "
        "the same training loop (one optimizer, one shuffling generator"
        + (", the weights set by hand where the page set them" if session.edits else "")
        + "): the numbers printed at the end are the page's, to the last digit."
    )
    return [
        ("markdown", title),
        ("code", "\n".join(imports)),
        ("code", setup),
        ("code", "\n".join(training)),
        ("code", "\n".join(result)),
    ]


def notebook(session: ToySession) -> str:
    """The run as a Jupyter notebook (nbformat 4, no outputs: run it to see them)."""
    return json.dumps(
        {
            "cells": [
                {"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True)}
                | ({"execution_count": None, "outputs": []} if kind == "code" else {})
                for kind, source in cells(session)
            ],
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
            "nbformat": 4,
            "nbformat_minor": 4,
        },
        indent=1,
        ensure_ascii=False,
    )


def script(session: ToySession) -> str:
    """The run as a Python script (the notebook's text between comments)."""
    parts = []
    for kind, source in cells(session):
        parts.append("\n".join(f"# {line}".rstrip() for line in source.splitlines()) if kind == "markdown" else source)
    return '"""A nablanet playground run, as the page trained it."""\n\n' + "\n\n".join(parts) + "\n"
