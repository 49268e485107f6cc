"""What nablanet writes to a terminal: text from files made safe to show, and a standard output that a
closed pipe does not break."""

from __future__ import annotations

import os


class ClosablePipe:
    """Standard output that, once its reader has gone (``BrokenPipeError``), swallows what is written
    instead of raising, and points the file descriptor at /dev/null so that the final flush is quiet."""

    def __init__(self, stream):
        self.stream = stream
        self.closed_by_reader = False

    def write(self, text: str) -> int:
        if not self.closed_by_reader:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.closed_by_reader:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        self.closed_by_reader = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # no file descriptor (a test's capture): nothing to quieten
            pass

    def __getattr__(self, name):  # isatty, fileno, encoding, …: the real stream's
        return getattr(self.stream, name)


def one_line(text: str) -> str:
    """``text`` safe for a terminal, on one line: control characters (escape sequences included) shown
    as ``\\x1b``-style escapes, never sent raw."""
    return "".join(
        character if character.isprintable() else character.encode("unicode_escape").decode("ascii")
        for character in text.replace("\n", " ")
    )
