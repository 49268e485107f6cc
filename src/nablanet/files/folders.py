"""Folders a run writes into: created when needed, checked to be writable, and held with a lock so that
two runs never write into one folder at once.

:func:`claim_folder` takes a folder for one run: it creates it, tests that a file can be written there
(with a new file of a random name, never following a link someone left), takes an exclusive lock on
the folder itself (``flock``, released when the run's process ends, however it ends), and removes the
temporary files that an interrupted atomic write left behind (see :mod:`nablanet.files.atomic`).
:func:`new_run_folder` makes a folder that no other run has: ``runs/YYYYmmdd-HHMMSS``, or with a
``-2``, ``-3``… suffix when several runs start in the same second.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from datetime import datetime
from pathlib import Path

from .atomic import TEMPORARY_SUFFIX


class FolderInUse(OSError):
    """Another nablanet run holds the folder's lock."""


class FolderLock:
    """An exclusive lock on a folder, held until :meth:`release` (or the end of the process)."""

    def __init__(self, folder: Path, descriptor: int):
        self.folder, self._descriptor = folder, descriptor

    def release(self) -> None:
        if self._descriptor >= 0:
            os.close(self._descriptor)  # closing the descriptor releases the lock
            self._descriptor = -1

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exception) -> None:
        self.release()


def new_run_folder(root: Path | str = "runs") -> Path:
    """Create and return a new folder ``root/YYYYmmdd-HHMMSS[-n]`` that no other run has."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for number in range(1, 10_000):
        folder = root / (stamp if number == 1 else f"{stamp}-{number}")
        try:
            folder.mkdir()  # atomic: of two runs in the same second, one gets -2
            return folder
        except FileExistsError:
            continue
    raise OSError(errno.EEXIST, f"no free run folder name under {root} for {stamp}")


def claim_folder(folder: Path | str, option: str = "--out") -> FolderLock:
    """Create ``folder`` if needed, check that it is writable, lock it for this run and clean it of
    stale temporary files. ``option`` names the command-line option in error messages."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{option} {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".nablanet-write-test-")  # O_EXCL: no link followed
        os.close(handle)
        os.unlink(probe)
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise OSError(f"{option} {folder} is not writable ({error.strerror or error})") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        raise FolderInUse(
            f"{option} {folder} is in use by another nablanet run; wait for it to end or choose another folder"
        ) from None
    for stale in folder.glob(f".*{TEMPORARY_SUFFIX}"):
        if stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)
    return FolderLock(folder, descriptor)
