"""The live loss curve: a callback that redraws training's figures after every epoch.

In a Jupyter notebook the figure appears under the cell once and is replaced in place each epoch;
anywhere, given a ``path``, it is also written there as a PNG each epoch (atomically), so a script's
run can be watched in an image viewer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..training.callbacks import Callback, jupyter_kernel
from . import plots


def _notebook_display():
    """IPython's ``display`` and ``Image`` inside a Jupyter kernel; None elsewhere."""
    if jupyter_kernel() is None:
        return None
    from IPython.display import Image, display

    return display, Image


class LivePlot(Callback):
    """Opt-in: loss and accuracy per epoch — training, and validation when ``fit`` has validation data; the
    loss alone for a regression — redrawn after every epoch with :func:`~nablanet.app.plots.plot_training`.

    In a notebook: ``model.fit(X, Y, epochs=10, validation_split=0.1, callbacks=[LivePlot()])``.
    Outside a notebook give ``path``: the PNG there is rewritten each epoch.

    Args:
        path (str | os.PathLike | None): Outside a notebook, the PNG rewritten after each epoch.
    """

    def __init__(self, path=None):
        self.path = Path(path) if path is not None else None
        self.history: dict[str, list[float]] = {}
        self._handle: Any = None
        self._display = None
        self.redraws = 0

    def on_train_begin(self, model):
        self.model = model
        self.history, self._handle, self.redraws = {}, None, 0
        self._display = _notebook_display()
        if self._display is None and self.path is None:
            raise ValueError("LivePlot shows its figure in a Jupyter notebook; elsewhere give it a path to write")
        if self.path is not None:  # checked before the first epoch is spent, not after it
            if self.path.suffix.lower() != ".png":
                raise ValueError(f"LivePlot writes a PNG: give a path ending in .png, received {self.path}")
            if self.path.is_dir() or not self.path.parent.is_dir():
                raise ValueError(f"LivePlot cannot write {self.path}: it is a folder, or its folder does not exist")

    def on_epoch_end(self, epoch, logs):
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        figure = plots.plot_training(self.history, self.path)
        self.redraws += 1
        if self._display is None:
            return
        display, Image = self._display
        image = Image(data=plots.png_bytes(figure), format="png")
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)
