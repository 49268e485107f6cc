"""How a run is stopped from outside: Ctrl-C (SIGINT) stops it as ``KeyboardInterrupt``, SIGTERM as
:class:`Terminated` (a ``KeyboardInterrupt`` too), so that every place that saves its state on Ctrl-C does
the same on SIGTERM.

A handler that raises wherever the program happens to be can land inside some library's ``try … except``
(matplotlib's import of its 3-D axes once swallowed a SIGTERM that way, and the run trained on to the
end). So the command line installs :func:`on_signal`, and where the work has safe points — training, with
one between every two batches — it runs inside :func:`deferred`: there a signal is only noted, and the
next :func:`safe_point` raises it, in nablanet's own code. A second signal while the first waits stops at
once (for work with no safe point in reach, such as a download), and outside :func:`deferred` every signal
stops at once, as Python's own Ctrl-C does.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, the shell's status for a process ended by Ctrl-C
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, for one ended by SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop as on Ctrl-C, and exit with status 143."""


class _Stops:
    """The one record, for the main thread: how deep inside :func:`deferred` it is, and the stop noted there."""

    deferring = 0
    pending: KeyboardInterrupt | None = None


def on_signal(signal_number: int, frame) -> None:
    """The handler of Ctrl-C and SIGTERM: note the stop for the next :func:`safe_point` inside
    :func:`deferred`; elsewhere, or for a second signal while one waits, raise it at once."""
    stop = Terminated() if signal_number == signal.SIGTERM else KeyboardInterrupt()
    if _Stops.deferring and _Stops.pending is None:
        _Stops.pending = stop
        return
    _Stops.pending = None
    raise stop


def install() -> Callable[[], None]:
    """Make :func:`on_signal` the handler of SIGINT and SIGTERM (in the main thread); return what puts the
    handlers before it back (those that were changed since are left alone: an ignored signal stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for number, handler in previous.items():
            if signal.getsignal(number) is on_signal:
                signal.signal(number, handler)

    return restore


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Inside this block (in the main thread) a signal is acted on at the next :func:`safe_point`, and at the
    latest when the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _Stops.deferring += 1
    try:
        yield
    except BaseException:
        if _Stops.deferring == 1:  # the block ends by an error or a stop of its own: the process stops with it
            _Stops.pending = None
        raise
    finally:
        _Stops.deferring -= 1
    safe_point()


def safe_point() -> None:
    """Raise the stop that a signal noted inside :func:`deferred`, if one did (in the main thread only)."""
    if _Stops.pending is not None and threading.current_thread() is threading.main_thread():
        stop, _Stops.pending = _Stops.pending, None
        raise stop


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while the block runs (in the main thread), so that a file that must not
    be lost is written whole; a signal that came meanwhile arrives when the block ends."""
    held = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def signals_ignored(*, keep: bool = False) -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM inside the block (in the main thread): for what a stopping process still
    has to do — write its state, print where it is — which a second signal must not cut short. A signal
    that comes meanwhile is dropped; the handlers are back afterwards, unless ``keep`` (a process that
    is about to exit)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        if not keep:
            for number, handler in previous.items():
                signal.signal(number, handler)


def exit_status(interruption: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return EXIT_TERMINATED if isinstance(interruption, Terminated) else EXIT_INTERRUPTED
