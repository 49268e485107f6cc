"""How a run is stopped from outside: Ctrl-C (SIGINT) raises ``KeyboardInterrupt``; SIGTERM, once the
command line has installed :func:`raise_terminated`, raises :class:`Terminated`, a ``KeyboardInterrupt``
too, so that every place that saves its state on Ctrl-C does the same on SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, the shell's status for a process ended by Ctrl-C
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, for one ended by SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop as on Ctrl-C, and exit with status 143."""


def raise_terminated(signal_number, frame) -> None:
    """A SIGTERM handler: turn the signal into :class:`Terminated` in the main thread."""
    raise Terminated()


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
