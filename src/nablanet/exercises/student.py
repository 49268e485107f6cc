"""The exercise notebooks: each kept once, with its solution; the student version is made from it.

In a solution notebook (``nablanet/exercises/notebooks/``), the learner's part of a code cell lies between
two marker lines, as nbgrader marks it::

    def forward(self, input):
        ### BEGIN SOLUTION
        self.input = input
        return self.weights[:, :-1] @ input + self.weights[:, -1:]
        ### END SOLUTION

:func:`student_version` replaces each such block by a placeholder at the block's indentation, a line that
raises ``NotImplementedError("not written yet")`` — so that :func:`~nablanet.check` says "not written yet"
and a training cell stops at the first method still to write, with those words. ``nablanet exercises
DIR`` writes the student versions (:func:`write_exercises`) for a teacher to hand out.
"""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from ..files.atomic import atomic_write
from ..files.folders import claim_folder

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
PLACEHOLDER = 'raise NotImplementedError("not written yet")  # your code here'
_MARKER = re.compile(r"^(?P<indent>[ \t]*)(?P<marker>### (?:BEGIN|END) SOLUTION)[ \t]*$")


def exercise_names() -> list[str]:
    """The exercise notebooks' file names, in the course's order."""
    folder = resources.files(__package__).joinpath("notebooks")
    return sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".ipynb"))


def solution(name: str) -> dict[str, Any]:
    """The solution notebook ``name`` (one of :func:`exercise_names`), as its JSON."""
    if name not in exercise_names():
        raise ValueError(f"no exercise notebook {name!r}: the exercises are {', '.join(exercise_names())}")
    text = resources.files(__package__).joinpath("notebooks").joinpath(name).read_text(encoding="utf-8")
    return json.loads(text)


def student_source(source: str) -> str:
    """A code cell's source with each marked solution block replaced by :data:`PLACEHOLDER`.

    >>> print(student_source("def f(x):\\n    ### BEGIN SOLUTION\\n    return 2 * x\\n    ### END SOLUTION\\n"))
    def f(x):
        raise NotImplementedError("not written yet")  # your code here
    <BLANKLINE>
    """
    lines, inside = [], False
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        marker = _MARKER.match(line.rstrip("\n"))
        if marker and marker["marker"] == BEGIN:
            if inside:
                raise ValueError(f"line {number}: {BEGIN} inside another solution block")
            inside = True
            lines.append(f"{marker['indent']}{PLACEHOLDER}\n")
        elif marker:
            if not inside:
                raise ValueError(f"line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            lines.append(line)
    if inside:
        raise ValueError(f"a {BEGIN} block is never ended")
    return "".join(lines)


def student_version(notebook: dict[str, Any], *, keep_outputs: bool = False) -> dict[str, Any]:
    """The student version of a solution notebook: solution blocks replaced, and (unless ``keep_outputs``,
    as the docs site shows what success looks like) every output and execution count cleared."""
    student = copy.deepcopy(notebook)
    for cell in student["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = student_source(source)
        if not keep_outputs:
            cell["outputs"], cell["execution_count"] = [], None
    return student


def write_exercises(folder: Path | str, *, solutions: bool = False) -> list[Path]:
    """Write the student version of every exercise notebook into ``folder`` (created if need be), and with
    ``solutions`` the solution notebooks beside them (``*_solution.ipynb``); return the paths written.

    A notebook already there is never replaced — it may hold a learner's work: the whole call is refused
    before anything is written, naming the file.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"the folder {folder} exists and is not a folder")
    planned: list[tuple[Path, dict[str, Any]]] = []
    for name in exercise_names():
        notebook = solution(name)
        planned.append((folder / name, student_version(notebook)))
        if solutions:
            planned.append((folder / name.replace(".ipynb", "_solution.ipynb"), notebook))
    taken = [path for path, _ in planned if path.exists()]
    if taken:
        raise FileExistsError(
            f"{taken[0]} exists (it may hold a learner's work) and is never replaced: move it, or choose another folder"
        )
    with claim_folder(folder, option="the folder"):
        for path, notebook in planned:
            with atomic_write(path, "w") as file:
                json.dump(notebook, file, indent=1, ensure_ascii=False)
                file.write("\n")
    return [path for path, _ in planned]
