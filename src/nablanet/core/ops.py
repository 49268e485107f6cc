"""The functional layer: the array work the layers call, each function choosing its fast path itself.

A layer's ``forward`` and ``backward`` read as the formulas in their docstrings; the work behind a step
such as im2col or max-pooling lives here, as a plain function of arrays (as PyTorch's modules call
``F.conv2d`` and numpy-ml's call ``im2col``). Each function holds its NumPy code — the reference, which
reads line by line like the math — and, where :mod:`nablanet.core.kernels` has one, a numba loop that does
the same arithmetic in the same order in one pass over memory. The loop runs when
:func:`nablanet.core.kernels.enabled` says so (numba installed, ``NABLANET_KERNELS`` not ``0``, native
float32/float64 data); the results are bit-identical either way, which ``tests/test_kernels.py`` checks.

Images are (b, C, H, W) arrays here; the layers convert from and to the notation's (C·H·W, b) matrix
with :func:`images` and :func:`matrix`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import kernels

Shape = tuple[int, ...]


# -- products in the data's layout
def product(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """A B, evaluated as (Bᵀ Aᵀ)ᵀ: the same numbers, but the result lies in memory sample-major, as the data
    does (each column's features side by side), the layout in which OpenBLAS runs the narrow products of a
    layer — a few hundred rows, a batch of a few hundred columns — about twice as fast."""
    return (B.T @ A.T).T


def columns(X: np.ndarray) -> np.ndarray:
    """A batch of sequences (features, T, b) as the (features, T·b) matrix of its positions (a view when its
    memory allows, as nablanet's layers' outputs do); a (features, b) matrix as it is."""
    return X.reshape(X.shape[0], -1)


def affine(W: np.ndarray, X: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Z = W X + b 1ᵀ, sample-major (see :func:`product`); the bias is added row by row in memory."""
    Z = product(W, X)
    Z.T[...] += np.ascontiguousarray(b)
    return Z


# -- images and matrices
def images(X: np.ndarray, shape: Shape) -> np.ndarray:
    """The (C·H·W, b) matrix X as a (b, C, H, W) array (a view when X is sample-major, as nablanet's are)."""
    return X.T.reshape(X.shape[1], *shape)


def matrix(batch: np.ndarray) -> np.ndarray:
    """A (b, C, H, W) array as the (C·H·W, b) matrix of the notation (a view of a C-ordered array)."""
    return batch.reshape(batch.shape[0], -1).T


def pad(x: np.ndarray, padding: int) -> np.ndarray:
    """x (b, C, H, W) with ``padding`` rows and columns of zeros on every side (x itself for 0)."""
    p = padding
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x


def sliding_size(size: int, window: int, stride: int, padding: int = 0) -> int:
    """⌊(size + 2p − k) / s⌋ + 1: how many windows of k, moved by s, fit in ``size`` padded by p (may be < 1)."""
    return (size + 2 * padding - window) // stride + 1


def window_views(x: np.ndarray, window: int, stride: int) -> Iterator[np.ndarray]:
    """The window² strided views x[:, :, s·i + u, s·j + v] of x (b, C, H, W), each (b, C, H', W'), in
    reading order of (u, v): view number u·window + v holds entry (u, v) of every window."""
    out_h, out_w = (sliding_size(size, window, stride) for size in x.shape[2:])
    for u in range(window):
        for v in range(window):
            yield x[:, :, u : u + stride * out_h : stride, v : v + stride * out_w : stride]


# -- convolution
def im2col(
    padded: np.ndarray, kernel: int, stride: int, out: np.ndarray | None = None, windows: Shape | None = None
) -> np.ndarray:
    """X_col (C·k·k, b·H'·W'): every k×k×C window of the padded images (b, C, H + 2p, W + 2p) as a column,
    its rows in the order (c, u, v) of W_col's columns, its columns in the order (n, i, j); written into
    ``out`` (a C-ordered array of C·k·k·b·H'·W' entries of the images' dtype) if given, else a new array.
    ``windows`` (H'', W''): only the windows of the first H'' rows and W'' columns of each image's grid of
    windows (the default: all H' × W')."""
    batch, channels = padded.shape[:2]
    out_h, out_w = windows or tuple(sliding_size(size, kernel, stride) for size in padded.shape[2:])
    shape = (channels, kernel, kernel, batch, out_h, out_w)
    columns = np.empty(shape, dtype=padded.dtype) if out is None else out.reshape(shape)
    loop = kernels.window_loop(kernel, stride, add_back=False)
    if not (kernels.enabled(padded) and loop(np.ascontiguousarray(padded), columns)):
        grid = sliding_window_view(padded, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride]
        columns[...] = grid[:, :, :out_h, :out_w].transpose(1, 4, 5, 0, 2, 3)  # (C, k, k, b, H', W')
    return columns.reshape(-1, batch * out_h * out_w)


def col2im(
    W_col: np.ndarray,
    delta: np.ndarray,
    shape: Shape,
    kernel: int,
    stride: int,
    padding: int,
    windows: Shape | None = None,
) -> np.ndarray:
    """col2im(W_colᵀ ∇Z_col): the product's columns (C·k·k, b·H'·W') — each the gradient of one window — added
    back onto the windows of the images they were taken from (windows overlap, so they add up; the adjoint of
    :func:`im2col`), as the (b, C, H, W) images of ``shape`` without their padding.

    The product is made and added back a few samples at a time (about :data:`CACHE_BYTES` of it), so that
    each piece is still in the processor's cache when col2im reads it: the whole product of the Keras
    convnet's second convolution is 18 MB a batch, which would go out to memory and back. Each column of
    W_colᵀ ∇Z_col is the product of W_colᵀ with its own column of ∇Z_col alone, and each sample's columns add
    onto that sample's image alone, so the numbers are those of the whole product — as long as BLAS computes a
    column alike in a narrower product, which OpenBLAS does but in its kernels for small products (below about
    10⁶ multiply-adds; a piece is larger, but for a last one). ``tests/test_kernels.py`` checks it bit for bit.
    ``windows`` (H'', W''): ∇Z_col holds only the windows of the first H'' rows and W'' columns of each
    image's grid, as :func:`im2col` made them (the default: all H' × W')."""
    batch, channels, height, width = shape
    k, s, p = kernel, stride, padding
    out_h, out_w = windows or (sliding_size(height, k, s, p), sliding_size(width, k, s, p))
    dtype = np.result_type(W_col, delta)
    padded = np.zeros((batch, channels, height + 2 * p, width + 2 * p), dtype=dtype)
    per_sample = out_h * out_w
    step = max(1, CACHE_BYTES // (W_col.shape[1] * per_sample * dtype.itemsize))
    for start in range(0, batch, step):
        stop = min(batch, start + step)
        columns = W_col.T @ delta[:, start * per_sample : stop * per_sample]  # (C·k·k, (stop − start)·H'·W')
        _add_back(padded[start:stop], columns.reshape(channels, k, k, stop - start, out_h, out_w), k, s)
    return padded[:, :, p : p + height, p : p + width]


CACHE_BYTES = 2**21
"""The size of the pieces :func:`col2im` makes its product in: 2 MiB, about what a core's cache holds."""


def _add_back(padded: np.ndarray, columns: np.ndarray, k: int, s: int) -> None:
    """Add every column of ``columns`` (C, k, k, b, H', W') onto its window of ``padded`` (b, C, H + 2p, W + 2p)."""
    loop = kernels.window_loop(k, s, add_back=True)
    if not (kernels.enabled(columns) and loop(padded, np.ascontiguousarray(columns))):
        out_h, out_w = columns.shape[-2:]
        for u in range(k):
            for v in range(k):
                padded[:, :, u : u + s * out_h : s, v : v + s * out_w : s] += columns[:, u, v].transpose(1, 0, 2, 3)


def conv2d_loops(padded: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """Z (b, F, H', W') one output value at a time, as the formula reads:
    Z[n, f, i, j] = Σ_c Σ_u Σ_v W[f, c, u, v] X[n, c, s·i + u, s·j + v] + b[f]. The readable reference of
    Conv2D (``method="loop"``); ``padded`` is (b, C, H + 2p, W + 2p), W (F, C, k, k)."""
    filters, k, s = W.shape[0], W.shape[-1], stride
    out_h, out_w = (sliding_size(size, k, s) for size in padded.shape[2:])
    Z = np.empty((padded.shape[0], filters, out_h, out_w), dtype=W.dtype)
    for n in range(padded.shape[0]):
        for f in range(filters):
            for i in range(out_h):
                for j in range(out_w):
                    window = padded[n, :, s * i : s * i + k, s * j : s * j + k]  # X[c, s·i + u, s·j + v]
                    Z[n, f, i, j] = np.sum(W[f] * window) + b[f]
    return Z


def conv2d_loops_backward(
    padded: np.ndarray, dZ: np.ndarray, W: np.ndarray, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Σ_n ∇W, Σ_n ∇b, ∇X padded) one output value at a time: each ∂L/∂Z[n, f, i, j] flows back to W[f]
    (times the window it saw), to b[f], and onto the window of X (times W[f]). Sums over the batch, not
    means; ``dZ`` is (b, F, H', W')."""
    k, s = W.shape[-1], stride
    dW, db, dx = np.zeros_like(W), np.zeros(W.shape[0], dtype=W.dtype), np.zeros_like(padded)
    for n in range(padded.shape[0]):
        for f in range(dZ.shape[1]):
            for i in range(dZ.shape[2]):
                for j in range(dZ.shape[3]):
                    g = dZ[n, f, i, j]
                    dW[f] += g * padded[n, :, s * i : s * i + k, s * j : s * j + k]
                    db[f] += g
                    dx[n, :, s * i : s * i + k, s * j : s * j + k] += g * W[f]
    return dW, db, dx


# -- pooling
def max_pool(x: np.ndarray, pool: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, winners) for x (b, C, H, W): the maximum of each p×p window (b, C, H', W') — NaN if the window holds
    a NaN, as ``np.maximum`` gives — and the position u·p + v of its first maximum in reading order, as bytes
    (p ≤ 16), for :func:`max_pool_backward`."""
    if kernels.enabled(x):
        shape = (*x.shape[:2], *(sliding_size(size, pool, stride) for size in x.shape[2:]))
        best, winner = np.empty(shape, dtype=x.dtype), np.empty(shape, dtype=np.uint8)
        if kernels.max_pool_loops(pool, stride)[0](np.ascontiguousarray(x), best, winner):
            return best, winner
    views = list(window_views(x, pool, stride))
    best = views[0].copy()
    for view in views[1:]:
        np.maximum(best, view, out=best)
    # the winner of each window: the first (u, v), in reading order, that holds the maximum — the number of
    # views before it that do not, counted without a masked copy (which costs 5× more)
    winner = np.zeros(best.shape, dtype=np.uint8)
    not_yet = np.ones(best.shape, dtype=bool)
    for view in views[:-1]:
        not_yet &= np.not_equal(view, best)
        winner += not_yet.view(np.uint8)
    return best, winner


def max_pool_backward(gradient: np.ndarray, winner: np.ndarray, shape: Shape, pool: int, stride: int) -> np.ndarray:
    """∇X (b, C, H, W) of ``shape``: each window's gradient (b, C, H', W') routed to its winner; the others of
    the window get gradient · 0 (so an inf gradient gives NaN there, as the product does), and an input in
    several windows collects the gradient of each it won."""
    dx = np.zeros(shape, dtype=gradient.dtype)
    if kernels.enabled(gradient) and kernels.max_pool_loops(pool, stride)[1](
        np.ascontiguousarray(gradient), winner, dx
    ):
        return dx
    for number, view in enumerate(window_views(dx, pool, stride)):
        if stride < pool:  # overlapping windows
            view += gradient * (winner == number)
        else:
            np.multiply(gradient, winner == number, out=view)
    return dx


# -- the fused path's loops (nablanet.core.fusion): no NumPy code of their own — where one cannot run (it says so
# by returning False), the fused block runs the eager layers it replaces, whose code is the reference
def fusable(array: np.ndarray) -> bool:
    """Whether the fused loops run for arrays of this one's dtype (see :func:`nablanet.core.kernels.enabled`)."""
    return kernels.enabled(array)


def conv_relu_pool(z: np.ndarray, bias: np.ndarray, pool: int, best: np.ndarray, winner: np.ndarray) -> bool:
    """The fused forward loop of Conv2D → ReLU → MaxPool2D (p×p windows side by side): from z, the product
    W_col X_col of the outputs a window reads as (F, b, p⌊H'/p⌋, p⌊W'/p⌋), A (b, F, H'/p, W'/p) into ``best``
    and each window's winner (with ReLU's mask at it) into ``winner``; whether it ran."""
    return kernels.conv_relu_pool_loops(pool)[0](z, bias, best, winner)


def conv_relu_pool_backward(gradient: np.ndarray, winner: np.ndarray, pool: int, delta: np.ndarray) -> bool:
    """The fused backward loop of Conv2D → ReLU → MaxPool2D: ∇Z_col as (F, b, p⌊H'/p⌋, p⌊W'/p⌋) into ``delta`` from ∇A
    (b, F, H'/p, W'/p) and the forward loop's winners; whether it ran."""
    return kernels.conv_relu_pool_loops(pool)[1](gradient, winner, delta)


def bias_relu(z: np.ndarray, bias: np.ndarray) -> bool:
    """max(Z + b 1ᵀ, 0) in place, for z the (b, units) memory of a sample-major Z; whether it ran."""
    return kernels.compiled(kernels.bias_relu_loop, "the fused Dense → ReLU")(z, bias)


# -- recurrent networks
def scatter_add(table: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> None:
    """table[ids[k]] += rows[k] for every k in order — ``np.add.at(table, ids, rows)``, which it is — by the compiled
    loop where it runs (one pass instead of NumPy's general indexed loop, several times slower)."""
    kernel = kernels.compiled(kernels.scatter_add_loop, "the Embedding's scatter-add")
    fits = kernels.enabled(table) and kernels.fusable(table, rows) and ids.flags.c_contiguous
    if not (fits and kernel(table, ids, rows)):
        np.add.at(table, ids, rows)


def lstm_gates(a: np.ndarray, c_prev: np.ndarray, c: np.ndarray, first: bool) -> bool:
    """One step of the LSTM's forward pass between its two tanh passes, by the compiled loop: the gates i, f, o of
    ``a`` from tanh(z/2) to σ(z) in place, and c_t into ``c`` (see :func:`nablanet.core.kernels.lstm_gates_loop`);
    whether it ran (else ``LSTM._forward`` runs its NumPy code, the reference)."""
    kernel = kernels.compiled(kernels.lstm_gates_loop, "the LSTM's gates")
    return kernel(a, c_prev, c, a.dtype.type(0.5), a.dtype.type(1.0), first)


def lstm_backward_step(
    a: np.ndarray, dh: np.ndarray, dc: np.ndarray, tanh_c: np.ndarray, c_prev: np.ndarray, d: np.ndarray, first: bool
) -> bool:
    """One step of the LSTM's backpropagation through time after its product, by the compiled loop: δ_t into ``d``
    and the cell's carry ``dc`` updated in place (see :func:`nablanet.core.kernels.lstm_backward_loop`); whether it
    ran (else ``LSTM._deltas`` runs its NumPy code, the reference)."""
    kernel = kernels.compiled(kernels.lstm_backward_loop, "the LSTM's backward step")
    return kernel(a, dh, dc, tanh_c, c_prev, d, a.dtype.type(1.0), first)


# -- activations
def relu_backward(output_gradient: np.ndarray, input: np.ndarray) -> np.ndarray:
    """∇_Z L = ∇_A L ⊙ 𝟙[Z > 0]: the product with a boolean mask, or the same product in one pass where the
    two arrays lie in memory alike (see :func:`nablanet.core.kernels.relu_backward`)."""
    fused = kernels.relu_backward(output_gradient, input)
    return output_gradient * (input > 0) if fused is None else fused


# -- optimizers
def squared_norm(array: np.ndarray) -> float:
    """Σ a², the entries taken in the order they lie in memory: no copy for a C- or Fortran-ordered array (a
    Dense layer's W̃ lies column by column; ``np.vdot`` on it would first copy it row by row, twice)."""
    flat = array.ravel("K")
    return float(np.vdot(flat, flat))


def adam_update(
    value: np.ndarray,
    gradient: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    scratch: np.ndarray,
    *,
    beta1: float,
    beta2: float,
    step: float,
    epsilon_hat: float,
) -> None:
    """One Adam step in place: m ← β₁ m + (1 − β₁) g, v ← β₂ v + (1 − β₂) g², W ← W + step · m / (√v + ε̂),
    (see ``Adam.update`` for the algebra); ``scratch`` is a work array of W's shape."""
    if kernels.enabled(value) and kernels.adam(value, gradient, m, v, beta1, beta2, step, epsilon_hat):
        return
    # β m + (1 − β) g = β (m − g) + g: three in-place passes, no temporary
    m -= gradient
    m *= beta1
    m += gradient
    np.multiply(gradient, gradient, out=scratch)
    v -= scratch
    v *= beta2
    v += scratch
    np.sqrt(v, out=scratch)
    scratch += epsilon_hat
    np.divide(m, scratch, out=scratch)
    scratch *= step
    value += scratch
