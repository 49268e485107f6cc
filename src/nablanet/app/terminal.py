"""What nablanet writes to a terminal: text from files made safe to show, errors as one line, and standard
streams that nothing on the reader's side can break."""

from __future__ import annotations

import os


class SturdyStream:
    """Standard output or error that never stops a command: a stream that is closed (``>&-``), whose reader
    has gone (``| head``), or that cannot be written (a full disk, ``/dev/full``) swallows what is written
    from then on — the run goes on, and only its printing is lost; text the stream's encoding cannot hold
    (an odd file name, ``PYTHONIOENCODING=ascii``) is written with backslash escapes."""

    def __init__(self, stream):
        self.stream = stream
        self.failed = stream is None

    def write(self, text: str) -> int:
        if not self.failed:
            try:
                return self.stream.write(text)
            except UnicodeEncodeError:
                encoding = getattr(self.stream, "encoding", None) or "ascii"
                return self.write(text.encode(encoding, "backslashreplace").decode(encoding))
            except (OSError, ValueError):  # BrokenPipeError, ENOSPC, EIO, or a closed file
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.failed:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self._drop()

    def isatty(self) -> bool:
        return not self.failed and self.stream.isatty()

    def _drop(self) -> None:
        self.failed = True
        try:  # point the descriptor at /dev/null, so that the interpreter's last flush is quiet too
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):  # no file descriptor (a test's capture)
            pass

    def __getattr__(self, name):  # fileno, encoding, …: the real stream's
        return getattr(self.stream, name)


def one_line(text: object) -> str:
    """``text`` safe for a terminal, on one line: control characters (escape sequences included) shown
    as ``\\x1b``-style escapes, never sent raw."""
    return "".join(
        character if character.isprintable() else character.encode("unicode_escape").decode("ascii")
        for character in str(text).replace("\n", " ")
    )


def describe(error: BaseException) -> str:
    """The one line that explains ``error``: its own message for the errors nablanet raises on bad input;
    otherwise what kind of failure it was."""
    message = str(error)
    if isinstance(error, MemoryError):
        return f"out of memory{': ' + message if message else ''}"
    if isinstance(error, RecursionError):
        return "the input is nested too deeply to process"
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    if isinstance(error, (ValueError, TypeError, OSError, ArithmeticError, RuntimeError, LookupError)) and message:
        return message
    return f"unexpected {type(error).__name__}{': ' + message if message else ''} (NABLANET_DEBUG=1 shows where)"
