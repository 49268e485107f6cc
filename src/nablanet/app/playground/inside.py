"""What a model does with one picture — the Draw tab's views — as plain data and small PNG images.

:func:`look_inside` pushes one (784, 1) column through the model layer by layer, in inference mode, and
keeps what a learner wants to see:

* the 28×28 image the model receives (after the same preprocessing as ``nablanet predict``);
* the class probabilities a = softmax(z) and the prediction;
* the softmax Jacobian ∇_z a = diag(a) − a aᵀ of this sample (``softmax_jacobian``), over the 20 most probable
  classes at most;
* for the softmax classifier (one Dense layer): the contribution map W_k ⊙ x of the top classes — the
  score z_k = Σ_p W_k[p] x[p] + b_k, pixel by pixel ("why it thinks 3");
* for deeper models: the output of every activation and pooling layer (the first 12), hidden units as a
  strip and convolutional feature maps as a mosaic.

Pictures are PNG data URLs, coloured with matplotlib's colour maps (no figure is drawn, so a view costs
well under a millisecond). Every coloured picture comes with its ``scale`` (:func:`colour_scale`): the values
its two ends stand for and a colour bar, which the page shows beside it. The Jacobian, which the page colours
itself, has one scale for every picture, ±1/4 (``JACOBIAN_LIMIT``, the most any entry can be), so that a
near-zero Jacobian looks near white.
"""

from __future__ import annotations

import base64
import functools
import io
import math

import numpy as np
from matplotlib import colormaps
from PIL import Image

from ...core.activations import ACTIVATIONS, Softmax, softmax_jacobian
from ...core.convolution import AvgPool2D, MaxPool2D
from ...core.layers import Dense, outputs
from ...data.images import SIZE

TOP_CLASSES = 3  # contribution maps shown for a softmax classifier
MAX_JACOBIAN_CLASSES = 20  # the Jacobian of at most this many classes, the most probable
MAX_LAYER_VIEWS = 12  # pictures of the first 12 activation and pooling layers at most
STRIP_WIDTH = 32  # hidden units per row of a strip
JACOBIAN_LIMIT = 0.25  # |a_j (δ_jk − a_k)| ≤ 1/4: a(1 − a) ≤ 1/4 on the diagonal, a_j a_k ≤ 1/4 off it


def png_data_url(values: np.ndarray, cmap: str = "gray", *, low: float | None = None, high: float | None = None) -> str:
    """A 2-D array as a PNG ``data:`` URL, coloured by ``cmap`` over [low, high] (default: its own range;
    NaN entries are transparent — the gaps of a mosaic)."""
    finite = values[np.isfinite(values)]
    low = float(finite.min()) if low is None and finite.size else (low or 0.0)
    high = float(finite.max()) if high is None and finite.size else (high if high is not None else 1.0)
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    rgba = colormaps[cmap](np.clip(np.nan_to_num(scaled, nan=0.0), 0, 1), bytes=True)
    rgba[..., 3] = np.where(np.isnan(values), 0, 255)
    return png_url(rgba)


def png_url(pixels: np.ndarray) -> str:
    """An (H, W, 3) RGB or (H, W, 4) RGBA array of bytes as a PNG ``data:`` URL."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@functools.lru_cache(maxsize=4)
def colour_bar(cmap: str) -> str:
    """The colour map ``cmap`` from its low end (left) to its high end (right), as a 128×1 PNG data URL."""
    return png_data_url(np.linspace(0.0, 1.0, 128)[None, :], cmap, low=0.0, high=1.0)


def colour_scale(cmap: str, low: float, high: float) -> dict:
    """What a picture's colours mean: ``low`` at the left of ``bar``, ``high`` at its right."""
    return {"low": low, "high": high, "bar": colour_bar(cmap)}


def coloured(values: np.ndarray) -> dict:
    """A picture of ``values`` with its scale: signed values on red (positive) / blue (negative), symmetric
    around 0 (white); values that are all ≥ 0 on viridis from 0 to their largest."""
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() < 0:
        cmap, high = "RdBu_r", float(np.abs(finite).max())
        low = -high
    else:
        cmap, low, high = "viridis", 0.0, float(finite.max(initial=0.0)) or 1.0
    return {"image": png_data_url(values, cmap, low=low, high=high), "scale": colour_scale(cmap, low, high)}


def mosaic(maps: np.ndarray, columns: int = 8) -> np.ndarray:
    """Feature maps (C, H, W) tiled ``columns`` to a row, one NaN pixel between them."""
    channels, height, width = maps.shape
    columns = min(columns, channels)
    rows = math.ceil(channels / columns)
    tiled = np.full((rows * (height + 1) - 1, columns * (width + 1) - 1), np.nan)
    for channel, values in enumerate(maps):
        row, column = divmod(channel, columns)
        tiled[row * (height + 1) : row * (height + 1) + height, column * (width + 1) : column * (width + 1) + width] = (
            values
        )
    return tiled


def strip(units: np.ndarray) -> np.ndarray:
    """Hidden units as rows of ``STRIP_WIDTH`` (the last row padded with NaN)."""
    width = min(STRIP_WIDTH, units.size)
    padded = np.full(math.ceil(units.size / width) * width, np.nan)
    padded[: units.size] = units
    return padded.reshape(-1, width)


def is_softmax_classifier(model) -> bool:
    """The notebook's model: one Dense layer, then Softmax."""
    return len(model.layers) == 2 and isinstance(model.layers[0], Dense) and isinstance(model.layers[1], Softmax)


def weight_templates(model, class_names) -> list[dict]:
    """The softmax classifier's rows W_k as 28×28 images, on one diverging scale (red raises z_k), for the
    classes named in ``class_names`` (the first ones)."""
    W = model.layers[0].W[: len(class_names)]  # the first classes only, if the caller names fewer
    limit = templates_limit(model, len(class_names))
    return [
        {"class": name, "image": png_data_url(row.reshape(SIZE, SIZE), "RdBu_r", low=-limit, high=limit)}
        for name, row in zip(class_names, W, strict=True)
    ]


def templates_limit(model, count: int) -> float:
    """The one scale of the first ``count`` weight templates: ±max |W_k|."""
    return float(np.abs(model.layers[0].W[:count]).max()) or 1.0


def _shown(layer) -> bool:
    activation = type(layer) in ACTIVATIONS.values()
    return activation or isinstance(layer, (MaxPool2D, AvgPool2D))


def _jacobian(a: np.ndarray, softmax: bool) -> dict:
    """The softmax Jacobian ∇_z a of the outputs ``a``, as ``jacobian``, over ``jacobian_classes``: every class,
    or the ``MAX_JACOBIAN_CLASSES`` most probable ones (of a model of many classes, the rest is near 0, and the
    whole matrix would be k² numbers in every answer)."""
    if not softmax:
        return {"jacobian": None, "jacobian_classes": []}
    classes = np.sort(np.argsort(a)[::-1][:MAX_JACOBIAN_CLASSES])  # in class order
    return {
        "jacobian": softmax_jacobian(a[classes]).round(6).tolist(),
        "jacobian_classes": classes.tolist(),
        "jacobian_limit": JACOBIAN_LIMIT,  # the page colours ±this as full red and blue, on every picture
    }


@np.errstate(all="ignore")  # a model whose outputs overflow is refused below, in one message
def look_inside(model, x: np.ndarray, class_names) -> dict:
    """Everything the Draw tab shows for the column ``x`` (784, 1): see the module's description."""
    x = x.astype(model.dtype or np.float64)
    layers: list[dict] = []
    showable = 0  # the activation and pooling layers, of which ``layers`` pictures the first 12
    output = x
    passes = outputs(model.layers, x, inference=True)  # keeps nothing in the layers: requests may run at once
    for position, (layer, shape, output) in enumerate(zip(model.layers, model.shapes(), passes, strict=True)):
        shown = position < len(model.layers) - 1 and _shown(layer) and shape is not None
        showable += shown
        if shown and len(layers) < MAX_LAYER_VIEWS:
            values = output[:, 0].astype(np.float64)
            picture = mosaic(values.reshape(shape)) if len(shape) == 3 else strip(values)
            layers.append(
                {
                    "name": f"{position} {type(layer).__name__}",
                    "shape": list(shape),
                    "kind": "maps" if len(shape) == 3 else "units",
                    "active": int(np.count_nonzero(values > 0)),
                    "size": int(values.size),
                    **coloured(picture),
                }
            )
    scores = output[:, 0].astype(np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("the model's outputs for this picture are not finite numbers: its weights overflow")
    softmax = isinstance(model.layers[-1], Softmax)  # else the outputs are scores, not probabilities
    best = int(scores.argmax())
    view = {
        "prediction": class_names[best],
        "best": best,
        "classes": list(class_names),
        "outputs": scores.round(6).tolist(),
        "probabilities": softmax,
        "input": png_data_url(x[:, 0].reshape(SIZE, SIZE).astype(np.float64), "gray", low=0.0, high=1.0),
        **_jacobian(scores, softmax),
        "layers": layers,
        "layers_of": showable,  # the page says "the first 12 of …" when it shows fewer
    }
    if is_softmax_classifier(model):
        dense = model.layers[0]
        contributions = dense.W * x[:, 0]  # W_k ⊙ x, row k: each pixel's share of z_k
        top = np.argsort(scores)[::-1][:TOP_CLASSES]
        limit = float(np.abs(contributions[top]).max()) or 1.0
        z = dense.W @ x[:, 0] + dense.b
        view["contributions_scale"] = colour_scale("RdBu_r", -limit, limit)
        view["contributions"] = [
            {
                "class": class_names[k],
                "probability": round(float(scores[k]), 6),
                "score": round(float(z[k]), 4),
                "bias": round(float(dense.b[k]), 4),
                "image": png_data_url(contributions[k].reshape(SIZE, SIZE), "RdBu_r", low=-limit, high=limit),
            }
            for k in top
        ]
    return view
