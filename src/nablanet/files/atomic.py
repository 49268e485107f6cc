"""Atomic file writes: a temporary file in the destination's folder, flushed, then ``os.replace``d.

A reader never sees a half-written file, and a crash leaves the previous version in place. Every file
nablanet writes goes through :func:`atomic_write`. A process killed in the middle of a write leaves a
hidden ``.<name>.<random>.nablanet-partial`` file; the next run that claims the folder removes it
(:func:`nablanet.files.folders.claim_folder`).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TEMPORARY_SUFFIX = ".nablanet-partial"  # a write in progress; one left by a killed process is removed later


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on success move it to ``path``, on failure delete it.

    The file object's ``name`` is the temporary file's path, so that its content can be checked
    before the with block ends (an exception there leaves nothing behind). The file gets the usual
    permissions (0666 less the umask), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    os.close(handle)
    try:
        os.chmod(temporary, 0o666 & ~_umask())
        with open(temporary, mode, encoding=None if "b" in mode else "utf-8") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno is not None and error.filename is None:
            raise OSError(error.errno, error.strerror, str(path)) from error  # name the file that failed
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path, data) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_write(path, "w") as file:
        json.dump(data, file, indent=2)
        file.write("\n")
    return Path(path)
