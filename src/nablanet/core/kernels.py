"""Fused loops for the hot element-wise work, compiled by numba when it is installed.

NumPy runs an update such as Adam's as a dozen whole-array passes — one per operation, each reading and
writing every entry again — and a 2×2 max-pooling as a dozen passes over strided views. A loop compiled by
numba (a dependency where it has wheels: see below) does all of them for one entry, or one window,
before it moves to the next: one pass over memory. Each kernel here is the same arithmetic, in the same
order, as the NumPy code beside its call in :mod:`nablanet.core.ops` (which is its reference, and what runs
without numba), so the two give bit-identical results; the tests check it. The layers and optimizers never
call a kernel themselves: they call :mod:`~nablanet.core.ops`, which chooses. One freedom is left: where
max-pooling meets equal values of different sign (−0.0 and 0.0, or two NaNs), the kernel keeps the first
and ``np.maximum`` may keep the other, so a pooled zero or NaN may differ in its sign bit.

The fused path's loops (:func:`conv_relu_pool_loops`, :func:`bias_relu_loop`, for :mod:`nablanet.core.fusion`)
each do the work of several eager layers; their reference is those layers, which the fused blocks run where a
loop cannot, and which they equal bit for bit. The LSTM's backward step (:func:`lstm_backward_loop`) has its
reference beside its call, in ``LSTM._deltas``.

The loops over windows (max-pooling, im2col, col2im) are built for one window size and stride at a time:
those are constants of the compiled code, so that the compiler unrolls the loops over a window.

numba is a dependency of nablanet wherever it publishes wheels (CPython 3.10–3.14 on Linux x86-64 and
aarch64, macOS arm64, Windows x64); elsewhere the NumPy code runs, and ``pip install numba`` (or the ``fast``
extra) asks for it anyway. ``NABLANET_KERNELS=0`` in the environment turns the kernels off. :func:`path` says
which code runs (``nablanet --version`` prints it), :func:`used` which ran (``nablanet train`` prints it).
numba is imported, and each kernel compiled (then cached on disk), the first time an op needs it, so that
``import nablanet`` stays fast, and a model that needs no kernel (the softmax classifier trained by SGD)
never imports numba.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np


def enabled(*arrays: np.ndarray) -> bool:
    """Whether the fused kernels are used (for these arrays): numba is installed and works, ``NABLANET_KERNELS``
    is not ``0``, and every array holds float32 or float64 numbers in the machine's byte order. The NumPy code
    takes anything else (float16, long double, big-endian), as it did before the kernels."""
    _State.asked = True
    if os.environ.get("NABLANET_KERNELS", "1") == "0" or _State.failed or not _numba_usable():
        return False
    return all(array.dtype.type in (np.float32, np.float64) and array.dtype.isnative for array in arrays)


class _State:
    """What this process learnt of numba: whether its disk cache failed (then kernels compile without it),
    whether a kernel failed to compile or run (then the NumPy code runs from there on), whether an op asked
    for a kernel at all, and the names of the kernels that ran."""

    uncached = False
    failed = False
    asked = False
    ran: ClassVar[set[str]] = set()


def path() -> str:
    """Which code runs the array work in this process, in one line: numba's compiled loops (with numba's
    version), or the NumPy code and why. Imports numba to check that it works (``import nablanet`` does not).

    >>> path().startswith(("numba ", "the NumPy code ("))
    True
    """
    reason = _why_numpy()
    if reason is not None:
        return f"the NumPy code ({reason})"
    import numba

    loops = "im2col, col2im, max-pooling, ReLU's backward, Adam and the fused blocks"
    return f"numba {numba.__version__}: compiled loops for {loops}"


def used() -> str:
    """Which code ran the array work of this process so far, in one line: the compiled loops that ran, or
    why none did. Imports nothing: a model that never asked for a kernel leaves numba unimported."""
    if _State.ran:
        import numba

        return f"numba {numba.__version__} ran the compiled loops for {', '.join(sorted(_State.ran))}"
    if not _State.asked:
        return "none needed (this model's work is matrix products and NumPy passes only)"
    return f"the NumPy code ran ({_why_numpy() or 'the arrays were not native float32 or float64'})"


def _why_numpy() -> str | None:
    """Why the NumPy code runs instead of the kernels (None if nothing stops them)."""
    if os.environ.get("NABLANET_KERNELS", "1") == "0":
        return "NABLANET_KERNELS=0 turns the compiled loops off"
    if importlib.util.find_spec("numba") is None:
        return (
            "numba is not installed: nablanet installs it only where numba publishes wheels; "
            "`pip install numba` tries elsewhere"
        )
    if not _numba_usable():
        return "numba is installed but does not import"
    if _State.failed:
        return "a compiled loop failed in this process"
    return None


@functools.cache
def _numba_usable() -> bool:
    """numba is installed and imports (once per process; an import that fails is said once, then NumPy runs)."""
    if importlib.util.find_spec("numba") is None:
        return False
    try:
        import numba  # noqa: F401
    except Exception as error:  # a broken install must not break training: the NumPy code runs instead
        _warn(f"numba is installed but does not import ({type(error).__name__}: {error}): the NumPy code runs")
        return False
    return True


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def adam_loop(w, g, m, v, beta1, beta2, step, epsilon_hat):
    """One Adam step for every entry i of the flat arrays w, g, m, v (see ``Adam.update`` for the algebra):

    m ← (m − g) β₁ + g,  v ← (v − g²) β₂ + g²,  w ← w + step · m / (√v + ε̂).
    """
    for i in range(w.size):
        gi = g[i]
        square = gi * gi
        mi = (m[i] - gi) * beta1 + gi
        vi = (v[i] - square) * beta2 + square
        m[i] = mi
        v[i] = vi
        w[i] += step * (mi / (np.sqrt(vi) + epsilon_hat))


def relu_backward_loop(output_gradient, input, out):
    """∇_Z L = ∇_A L ⊙ 𝟙[z > 0] for every entry i of the flat arrays (a product, as NumPy computes it: NaN
    and ±inf gradients propagate the same way)."""
    for i in range(out.size):
        out[i] = output_gradient[i] * (1.0 if input[i] > 0 else 0.0)


@functools.cache
def max_pool_loops(pool: int, stride: int) -> tuple[Kernel, Kernel]:
    """MaxPool2D's forward and backward loops for p×p windows moved by a stride s, compiled."""
    last = pool * pool - 1

    def forward(x, best, winner):
        """For each window of x (b, C, H, W): its maximum into best (b, C, H', W') — NaN if the window holds
        a NaN, as np.maximum gives — and into winner the position u·p + v of its first maximum in reading
        order (p² − 1 if no earlier entry equals it)."""
        batch, channels, out_h, out_w = best.shape
        for n in range(batch):
            for c in range(channels):
                for i in range(out_h):
                    for j in range(out_w):
                        top = x[n, c, stride * i, stride * j]
                        for u in range(pool):
                            for v in range(pool):
                                value = x[n, c, stride * i + u, stride * j + v]
                                top = value if value > top or value != value else top
                        won = last
                        for k in range(last - 1, -1, -1):
                            if x[n, c, stride * i + k // pool, stride * j + k % pool] == top:
                                won = k
                        best[n, c, i, j] = top
                        winner[n, c, i, j] = won

    return compiled(forward, "max-pooling"), compiled(_max_pool_backward(pool, stride), "max-pooling's backward")


def _max_pool_backward(pool: int, stride: int) -> Callable:
    """MaxPool2D's backward loop for p×p windows moved by a stride s: it routes each window's gradient
    (b, C, H', W') to its winner in dx (b, C, H, W), zeros beforehand, and the others of the window get
    gradient · 0 (so an inf gradient gives NaN there, as NumPy's product does)."""

    def overlapping(gradient, winner, dx):
        """Windows that overlap (s < p) add up, position by position, in the order of NumPy's code: window
        entry k = u·p + v by window entry."""
        batch, channels, out_h, out_w = gradient.shape
        for n in range(batch):
            for c in range(channels):
                for k in range(pool * pool):
                    for i in range(out_h):
                        for j in range(out_w):
                            g = gradient[n, c, i, j]
                            share = g if winner[n, c, i, j] == k else g * 0
                            dx[n, c, stride * i + k // pool, stride * j + k % pool] += share

    def apart(gradient, winner, dx):
        """Windows that do not overlap (s ≥ p) each write their own positions once: dx is written row by row,
        as it lies in memory (for the Keras convnet's first 2×2 pooling, twice as fast as window entry by
        window entry, 2.4 → 1.1 ms a batch), and the numbers are the same in any order."""
        batch, channels, out_h, out_w = gradient.shape
        for n in range(batch):
            for c in range(channels):
                for i in range(out_h):
                    for u in range(pool):
                        for j in range(out_w):
                            g = gradient[n, c, i, j]
                            won = winner[n, c, i, j]
                            for v in range(pool):
                                dx[n, c, stride * i + u, stride * j + v] = g if won == u * pool + v else g * 0

    return overlapping if stride < pool else apart


@functools.cache
def window_loop(kernel: int, stride: int, add_back: bool) -> Kernel:
    """Conv2D's im2col (``add_back=False``) or col2im (``add_back=True``) for k×k windows moved by a stride
    s, compiled: one loop over every entry of every window, in the two directions."""

    def loop(padded, columns):
        """Entry (c, u, v) of the window at (i, j) of sample n: padded (b, C, H + 2p, W + 2p) at
        (n, c, s·i + u, s·j + v), columns (C, k, k, b, H', W') at (c, u, v, n, i, j). im2col copies it into
        columns; col2im adds it back onto padded (zeros beforehand): for each position, window offset by
        window offset (u, v), as the NumPy loop over (u, v) does."""
        channels, _, _, batch, out_h, out_w = columns.shape
        for c in range(channels):
            for u in range(kernel):
                for v in range(kernel):
                    for n in range(batch):
                        for i in range(out_h):
                            for j in range(out_w):
                                if add_back:
                                    padded[n, c, stride * i + u, stride * j + v] += columns[c, u, v, n, i, j]
                                else:
                                    columns[c, u, v, n, i, j] = padded[n, c, stride * i + u, stride * j + v]

    return compiled(loop, "col2im" if add_back else "im2col")


@functools.cache
def conv_relu_pool_loops(pool: int) -> tuple[Kernel, Kernel]:
    """The fused Conv2D → ReLU → MaxPool2D block's two loops (see :class:`nablanet.core.fusion.ConvReLUPool`)
    for p×p windows side by side (stride p), compiled: what the eager layers do in five passes over the
    convolution's output — the bias, the layout copy, ReLU, the pooling, and back — each in one."""

    def forward(z, bias, best, winner):
        """z: the convolution's product W_col X_col, before its bias, as (F, b, H'', W'') — H'' = p⌊H'/p⌋ and
        W'' = p⌊W'/p⌋, the outputs a window reads. For each p×p window of z_f + b_f: A = max(0, max of the
        window) into best (b, F, H'/p, W'/p) — pooling before ReLU, the same function — and the position u·p + v
        of the window's first maximum in reading order into winner (for a window that holds a NaN: that NaN, and
        p² − 1, as MaxPool2D gives), plus 128 where ReLU lets the winner's gradient through (its z + b > 0;
        p² ≤ 121 leaves that bit free). Each z + b is the eager layer's sum, in the dtype of z; one reading of
        the window finds its maximum and the winner together."""
        filters, batch = z.shape[0], z.shape[1]
        out_h, out_w = best.shape[2], best.shape[3]
        for f in range(filters):
            b = bias[f]
            for n in range(batch):
                for i in range(out_h):
                    for j in range(out_w):
                        top = z[f, n, pool * i, pool * j] + b
                        value = top
                        won = 0
                        nan = top != top
                        for k in range(1, pool * pool):  # written as selects, not branches: data decide them
                            value = z[f, n, pool * i + k // pool, pool * j + k % pool] + b
                            greater = value > top
                            won = k if greater else won
                            top = value if greater or value != value else top  # a NaN, once read, stays the top
                            nan |= value != value
                        best[n, f, i, j] = top if top >= 0 or nan else 0
                        live = (top > 0) | (nan & (value > 0))  # ReLU's mask at the winner (a NaN's: the last)
                        won += nan * (pool * pool - 1 - won)
                        winner[n, f, i, j] = won + 128 * live

    def backward(gradient, winner, delta):
        """∇Z_col as (F, b, H'', W'') into delta — the outputs a window reads — from ∇A (b, F, H'/p, W'/p):
        each window's gradient g goes to its winner times ReLU's mask 𝟙[z + b > 0] there (the winner's bit 128);
        the others get g · 0, as MaxPool2D's backward then ReLU's give them."""
        filters, batch = delta.shape[0], delta.shape[1]
        out_h, out_w = gradient.shape[2], gradient.shape[3]
        for f in range(filters):
            for n in range(batch):
                for i in range(out_h):
                    for u in range(pool):  # delta row by row, as it lies in memory
                        for j in range(out_w):
                            g = gradient[n, f, i, j]
                            kept = g if winner[n, f, i, j] >= 128 else g * 0.0  # g · 𝟙[z + b > 0]: g · 1.0 or g · 0.0
                            nothing = g * 0.0
                            won = winner[n, f, i, j] & 127
                            for v in range(pool):
                                delta[f, n, pool * i + u, pool * j + v] = kept if won == u * pool + v else nothing

    return (
        compiled(forward, "the fused Conv2D → ReLU → MaxPool2D"),
        compiled(backward, "the fused Conv2D → ReLU → MaxPool2D's backward"),
    )


def scatter_add_loop(table, ids, rows):
    """table[ids[k]] += rows[k] for k = 0, 1, … in this order, entry by entry, as ``np.add.at`` adds them: the
    Embedding's gradient, each position's gradient added into its token's row."""
    for k in range(ids.shape[0]):
        row = ids[k]
        for j in range(rows.shape[1]):
            table[row, j] += rows[k, j]


def lstm_gates_loop(a, c_prev, c, half, one, first):
    """One step of the LSTM's forward pass between NumPy's two tanh passes (see ``LSTM._forward``), for every
    sample n and unit j: a holds tanh(z/2) for the gates i, f, o and tanh(z) for g (b, 4h); each of i, f, o becomes
    σ(z) = (tanh(z/2) + 1) · ½ in place — the operations of :func:`nablanet.core.recurrent.sigmoid` in its order —
    and c_t = i ⊙ g + f ⊙ c_{t−1} (i ⊙ g at the first step) goes into c; ``half`` and ``one`` are ½ and 1 in the
    arrays' dtype."""
    h = c.shape[1]
    for n in range(c.shape[0]):
        for j in range(h):
            i = (a[n, j] + one) * half
            f = (a[n, h + j] + one) * half
            a[n, j], a[n, h + j], a[n, 2 * h + j] = i, f, (a[n, 2 * h + j] + one) * half
            product = i * a[n, 3 * h + j]
            c[n, j] = product if first else product + f * c_prev[n, j]


def lstm_backward_loop(a, dh, dc, tanh_c, c_prev, d, one, first):
    """One step t of the LSTM's backpropagation through time after its product (see ``LSTM._deltas``), for every
    sample n and unit j, from the gates a = [i | f | o | g] (b, 4h), ∂h_t (dh), the carry ∂c_{t+1} ⊙ f_{t+1} (dc,
    updated in place), tanh c_t and c_{t−1} (b, h): δ_t into d (b, 4h), the operations of the NumPy code in its
    order and dtype (``one`` is 1 in that dtype), so that the two agree bit for bit:

    ∂c_t = dc + ∂h_t ⊙ o ⊙ (1 − tanh² c_t),  δ^o = ∂h_t ⊙ tanh c_t ⊙ o(1 − o),  δ^i = ∂c_t ⊙ g ⊙ i(1 − i),
    δ^g = ∂c_t ⊙ i ⊙ (1 − g²),  δ^f = ∂c_t ⊙ c_{t−1} ⊙ f(1 − f) (0 at the first step),  dc ← ∂c_t ⊙ f.
    """
    h = dh.shape[1]
    for n in range(dh.shape[0]):
        for j in range(h):
            i, f, o, g = a[n, j], a[n, h + j], a[n, 2 * h + j], a[n, 3 * h + j]
            grad_h, tanh = dh[n, j], tanh_c[n, j]
            carry = dc[n, j] + (grad_h * o) * (one - tanh * tanh)
            d[n, 2 * h + j] = (grad_h * tanh) * (o * (one - o))
            d[n, j] = (carry * g) * (i * (one - i))
            d[n, 3 * h + j] = (carry * i) * (one - g * g)
            d[n, h + j] = (one - one) if first else (carry * c_prev[n, j]) * (f * (one - f))
            dc[n, j] = carry * f


def bias_relu_loop(z, bias):
    """The fused Dense → ReLU block's forward after its product (see :class:`nablanet.core.fusion.DenseReLU`):
    A = max(Z + b 1ᵀ, 0) in place, for z the (b, units) memory of the sample-major Z: the bias added as Dense
    adds it, then ReLU as ``np.maximum(Z, 0)`` keeps it (−0.0 and NaN included), in one pass instead of two."""
    for n in range(z.shape[0]):
        for u in range(z.shape[1]):
            value = z[n, u] + bias[u]
            z[n, u] = value if value >= 0 or value != value else 0


class Kernel:
    """A loop compiled by numba on its first call — no bounds checks, NumPy's floating-point semantics (a division
    by zero gives inf, as in NumPy, instead of raising), the GIL released (the playground trains in threads) —
    and kept in numba's disk cache.

    Calling it runs the loop and returns ``True``; or returns ``False`` if numba cannot compile or run it, so
    that the caller runs its NumPy code. Whatever numba's trouble — a cache it cannot write (a read-only
    install or home folder), a damaged cache file, a compiler error — training goes on: a cache that fails is
    left out (the loop compiled anew, once, with a warning); anything else turns the kernels off for the rest
    of the process, with one warning.
    """

    def __init__(self, loop: Callable, name: str) -> None:
        self.loop, self.name = loop, name
        self.dispatcher: Callable | None = None
        self.cached = True  # whether the dispatcher uses numba's disk cache

    def __call__(self, *arguments) -> bool:
        if _State.failed:
            return False
        try:
            self._run(arguments)
        except Exception as error:
            if _State.uncached:
                _State.failed = True
                _warn(f"a compiled kernel failed ({type(error).__name__}: {error}): the NumPy code runs instead")
                return False
            _State.uncached = True  # once more, and from now on, without the disk cache
            cleared = " (its cache cleared: the next run caches it anew)" if self._clear_cache() else ""
            _warn(
                f"a compiled kernel failed ({type(error).__name__}: {error}): trying once more without numba's "
                f"cache{cleared}"
            )
            return self(*arguments)
        _State.ran.add(self.name)
        return True

    def _clear_cache(self) -> bool:
        """Empty the index of this loop's disk cache, so that a damaged entry (a truncated file) is compiled and
        written anew by the next process instead of failing in every one; whether that could be done (not in a
        read-only cache, nor with a numba whose dispatchers keep their cache otherwise)."""
        try:
            self.dispatcher._cache.flush()  # type: ignore[union-attr]
        except Exception:
            return False
        return True

    def _run(self, arguments: tuple) -> None:
        cache = not _State.uncached
        if self.dispatcher is None or self.cached != cache:
            import numba

            jit = numba.njit(boundscheck=False, error_model="numpy", nogil=True, cache=cache)
            self.dispatcher, self.cached = jit(self.loop), cache
        self.dispatcher(*arguments)


@functools.cache
def compiled(loop: Callable, name: str | None = None) -> Kernel:
    """The one :class:`Kernel` of ``loop`` in this process, named ``name`` (default: the loop's) in :func:`used`."""
    return Kernel(loop, name or loop.__name__)


def fusable(*arrays: np.ndarray) -> bool:
    """Whether a kernel can run on these arrays in place: all C-contiguous, of one float dtype."""
    return all(array.flags.c_contiguous and array.dtype == arrays[0].dtype for array in arrays)


def layout(*arrays: np.ndarray) -> Literal["C", "F"] | None:
    """How arrays of one shape and dtype all lie in memory, "C" (row by row) or "F" (column by column) — then an
    entry-by-entry loop can run over their flat memory, ``array.ravel(order)``, views all — or None if they do not
    lie alike."""
    first = arrays[0]
    if not all(array.shape == first.shape and array.dtype == first.dtype for array in arrays):
        return None
    if all(array.flags.c_contiguous for array in arrays):
        return "C"
    if all(array.flags.f_contiguous for array in arrays):
        return "F"
    return None


def relu_backward(output_gradient: np.ndarray, input: np.ndarray) -> np.ndarray | None:
    """∇_A L ⊙ 𝟙[Z > 0] by the compiled :func:`relu_backward_loop`, or None where the kernels are off or the
    two arrays do not lie in memory alike (see :func:`layout`): then NumPy does it."""
    if not (isinstance(output_gradient, np.ndarray) and enabled(output_gradient)):
        return None
    order = layout(output_gradient, input)
    if order is None:
        return None
    out = np.empty_like(output_gradient, order=order)
    ran = compiled(relu_backward_loop, "ReLU's backward")(
        output_gradient.ravel(order), input.ravel(order), out.ravel(order)
    )
    return out if ran else None


def adam(w, g, m, v, beta1, beta2, step, epsilon_hat) -> bool:
    """Run the compiled :func:`adam_loop` on the arrays (any shape, all laid out alike: see :func:`layout`), the
    scalars in their dtype; ``False`` if it could not run (nothing changed then)."""
    order = layout(w, g, m, v)
    if order is None:
        return False
    scalar = w.dtype.type
    return compiled(adam_loop, "Adam's update")(
        w.ravel(order),
        g.ravel(order),
        m.ravel(order),
        v.ravel(order),
        scalar(beta1),
        scalar(beta2),
        scalar(step),
        scalar(epsilon_hat),
    )
