"""How a run is stopped from outside: Ctrl-C (SIGINT) raises ``KeyboardInterrupt``; SIGTERM, once the
command line has installed :func:`raise_terminated`, raises :class:`Terminated`, a ``KeyboardInterrupt``
too, so that every place that saves its state on Ctrl-C does the same on SIGTERM."""

from __future__ import annotations

import signal

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, the shell's status for a process ended by Ctrl-C
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, for one ended by SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop as on Ctrl-C, and exit with status 143."""


def raise_terminated(signal_number, frame) -> None:
    """A SIGTERM handler: turn the signal into :class:`Terminated` in the main thread."""
    raise Terminated()


def exit_status(interruption: BaseException) -> int:
    """130 for Ctrl-C, 143 for SIGTERM."""
    return EXIT_TERMINATED if isinstance(interruption, Terminated) else EXIT_INTERRUPTED
