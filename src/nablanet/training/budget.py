"""What a model costs, worked out from its layers' shapes alone — before any data goes through it.

A model file, a checkpoint or a command line says how large a model is; what it costs to run is a
product of those numbers (filters × window × image, window × window …), which small numbers can make
enormous. So every model is priced before it is used, from its config or its settings alone (a model
built inside :func:`~nablanet.core.parameter.shapes_only` costs no memory), and refused above a
ceiling that names the figure. :func:`cost` gives, for one sample's forward pass:

* ``operations``: floating-point operations — 2 per multiply-add of a product, 1 per element of every
  other pass (padding's and im2col's copies, a pooling window's comparison, an activation); a composite
  layer's are its sub-layers', attention's include its (T, T) maps of every head;
* ``values``: the numbers it keeps — every layer's output (each layer keeps its own) and the largest work
  arrays besides, a convolution's padded input (C·(H + 2p)·(W + 2p)) and X_col (C·k·k·H'·W'): the one
  memory estimate, which batch sizing and file loading use;
* ``steps``: iterations of a Python loop, each costing microseconds rather than nanoseconds:
  ``Conv2D(method="loop")`` takes one per output value (F·H'·W');
* ``passes``, per batch whatever its size: NumPy passes made one by one from Python — a p×p pooling
  window takes p² of them, a convolution's col2im k².
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass

import numpy as np

from ..core.attention import MultiHeadSelfAttention
from ..core.convolution import AvgPool2D, Conv2D, MaxPool2D
from ..core.layers import Composite, Dense, Layer

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Cost:
    """The price of one sample's forward pass (see the module's description)."""

    operations: int
    values: int
    steps: int
    passes: int


def cost(layers: list[Layer], shapes: list[Shape | None], input_shape: Shape) -> Cost:
    """The :class:`Cost` of ``layers``, given the shape of one input sample and of each layer's output (``None``
    where a layer does not say: it counts as large as the largest known shape)."""
    largest = max(math.prod(shape) for shape in [input_shape, *shapes] if shape is not None)
    sizes = [math.prod(shape) if shape is not None else largest for shape in shapes]
    operations = steps = passes = work = 0
    inputs = [math.prod(input_shape), *sizes[:-1]]
    for layer, layer_inputs, size, shape in zip(layers, inputs, sizes, shapes, strict=True):
        layer_operations, layer_work, layer_steps, layer_passes = _layer_cost(layer, layer_inputs, size, shape)
        operations += layer_operations
        work = max(work, layer_work)
        steps += layer_steps
        passes += layer_passes
    return Cost(operations, sum(sizes) + work, steps, passes)


def _layer_cost(layer: Layer, inputs: int, outputs: int, shape: Shape | None) -> tuple[int, int, int, int]:
    """(operations, work values, steps, passes) of one layer, for ``inputs`` numbers in and ``outputs`` out."""
    if isinstance(layer, Dense):
        return 2 * layer.input_size * outputs, 0, 0, 1  # at every position of a sequence: input_size · units each
    if isinstance(layer, MultiHeadSelfAttention) and shape is not None:
        features, steps = shape  # the projections (sub-layers), then QᵀK and V Aᵀ: 2·T²·d each, and A (h·T²)
        inner = cost(layer.layers, [(3 * features, steps), shape], shape)
        maps = layer.heads * steps * steps
        return inner.operations + 4 * steps * steps * features + 5 * maps, inner.values + 3 * maps, 0, inner.passes + 8
    if isinstance(layer, Composite) and layer.shapes is not None and layer.shapes[0] is not None:
        inner = cost(layer.layers, layer.shapes[1:], layer.shapes[0])
        return inner.operations + outputs, inner.values, inner.steps, inner.passes + 1
    if isinstance(layer, Conv2D) and shape is not None and layer.input_shape is not None:
        filters, height, width = shape
        channels, in_height, in_width = layer.input_shape
        p = layer.padding_value
        padded = channels * (in_height + 2 * p) * (in_width + 2 * p) if p else 0  # the padded copy of the input
        columns = channels * layer.kernel_size**2 * height * width  # X_col of one sample
        if layer.method == "loop":
            return 2 * columns * filters + padded, padded, filters * height * width, 0
        return 2 * columns * filters + columns + padded, columns + padded, 0, layer.kernel_size**2
    if isinstance(layer, (MaxPool2D, AvgPool2D)):
        return outputs * layer.pool_size**2, 0, 0, layer.pool_size**2
    return outputs, 0, 0, 1  # an activation, Dropout, Flatten, a learner's layer: one pass over its output


def training_bytes(model, batch_size: int, input_size: int | None = None) -> int:
    """About how many bytes training ``model`` with batches of ``batch_size`` needs besides its data: the
    weights with their gradients and up to two optimizer moments (4 numbers a weight), and for every sample of
    a batch its forward pass's values, the gradients of the backward pass and the temporaries between them
    (3 × ``cost().values``; measured here: 2.3–2.9 × for CNNs of 100 to 400 filters). ``input_size`` is for a
    model whose first layer does not fix it (a character model: the T token ids of a window)."""
    weights = sum(parameter.value.size for parameter in model.parameters())
    itemsize = (model.dtype or np.dtype(np.float64)).itemsize
    return itemsize * (4 * weights + 3 * batch_size * model.cost(input_size).values)


def memory_bytes() -> int:
    """The memory this process may use: the computer's, or less if a limit on the address space says so."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    return physical if limit == resource.RLIM_INFINITY else min(physical, limit)
