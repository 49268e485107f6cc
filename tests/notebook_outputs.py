"""The example notebooks' committed outputs: executed here, compared by the tests.

    python tests/notebook_outputs.py            # `make notebooks`: execute every notebook, write its outputs
    python tests/notebook_outputs.py 04_*.ipynb # only these

Every notebook: the course's (``examples/``) and the exercises' solutions (``src/nablanet/exercises/notebooks/``);
for each exercise, the docs site's student version (``docs/exercises/``) is written too, with the solution's
outputs: what success looks like.

The tests execute each notebook again and compare the fresh outputs with the committed ones
(:func:`differences`): text must match word for word, numbers to within a relative 1e-3 (another
CPU's BLAS rounds differently; a changed result moves far more), and each cell must show as many
pictures. Cells tagged ``timing`` print measured times, which no two runs share: their outputs are
not compared. A stale notebook fails the test with the command that refreshes it.
"""

from __future__ import annotations

import math
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EXERCISES = ROOT / "src" / "nablanet" / "exercises" / "notebooks"
DOCS_EXERCISES = ROOT / "docs" / "exercises"
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
REFRESH = "make notebooks"


def execute(path: Path, folder: Path | None = None):
    """Run the notebook at ``path`` top to bottom in a fresh kernel, in ``folder`` (default: a temporary
    one, so that nothing lands in examples/); return it with its outputs."""
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as temporary:
        NotebookClient(
            notebook,
            timeout=600,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": str(folder or temporary)}},
        ).execute()
    return notebook


def _compared_cells(notebook):
    for number, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and "timing" not in cell.metadata.get("tags", []):
            yield number, cell


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream" and output.name == "stdout":  # stderr: warnings, with paths
            parts.append(output.text)
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
        elif "image/png" not in output.get("data", {}):
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def _pictures(cell) -> int:
    return sum("image/png" in output.get("data", {}) for output in cell.get("outputs", []))


def _close(a: float, b: float) -> bool:
    """Within a relative 1e-3; below 1e-6 (rounding-level figures such as a gradient check's relative
    errors, which each CPU's BLAS rounds its own way), the same sign and within a factor of 100."""
    if max(abs(a), abs(b)) >= 1e-6:
        return math.isclose(a, b, rel_tol=1e-3)
    if a == 0 or b == 0:
        return a == b
    return (a > 0) == (b > 0) and abs(math.log10(abs(a)) - math.log10(abs(b))) <= 2


def _same(committed: str, fresh: str) -> bool:
    if NUMBER.split(committed) != NUMBER.split(fresh):
        return False
    numbers = zip(NUMBER.findall(committed), NUMBER.findall(fresh), strict=True)
    return all(_close(float(a), float(b)) for a, b in numbers)


def differences(committed, fresh) -> list[str]:
    """How the outputs of the ``fresh`` execution differ from the ``committed`` notebook, cell by cell."""
    found = []
    committed_cells, fresh_cells = dict(_compared_cells(committed)), dict(_compared_cells(fresh))
    if list(committed_cells) != list(fresh_cells):
        return ["the notebook's code cells changed since its outputs were written"]
    for number, cell in committed_cells.items():
        new = fresh_cells[number]
        if not _same(_text(cell), _text(new)):
            found.append(f"cell {number}: committed {_text(cell)[:300]!r}, now {_text(new)[:300]!r}")
        elif _pictures(cell) != _pictures(new):
            found.append(f"cell {number}: committed {_pictures(cell)} pictures, now {_pictures(new)}")
    return found


def docs_student_version(solution_path: Path):
    """The docs site's version of an exercise: the student's code cells, the solution's outputs."""
    from nablanet.exercises.student import student_version

    return nbformat.from_dict(student_version(nbformat.read(solution_path, as_version=4), keep_outputs=True))


def main(names: list[str]) -> int:
    every = [*sorted(EXAMPLES.glob("*.ipynb")), *sorted(EXERCISES.glob("*.ipynb"))]
    paths = [path for path in every if not names or any(path.match(name) for name in names)]
    for path in paths:
        start = time.perf_counter()
        notebook = execute(path)
        nbformat.write(notebook, path)
        print(f"{path.name}: executed in {time.perf_counter() - start:.1f} s, outputs written")
        if path.parent == EXERCISES:
            DOCS_EXERCISES.mkdir(exist_ok=True)
            nbformat.write(docs_student_version(path), DOCS_EXERCISES / path.name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
