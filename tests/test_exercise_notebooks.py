"""The exercise notebooks: each solution runs top to bottom with every check passing and its training reaching
the accuracy it states (its committed outputs current); each student version, made from it, runs up to the
first method still to write and says "not written yet"; the docs site shows the student version with the
solution's outputs; ``nablanet exercises`` writes them and never replaces a learner's file."""

import json

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from notebook_outputs import DOCS_EXERCISES, EXERCISES, REFRESH, differences, docs_student_version, execute

from nablanet.app.cli import main
from nablanet.exercises import student

NOTEBOOKS = sorted(EXERCISES.glob("*.ipynb"))


def _outputs(notebook) -> str:
    return "".join(
        output.get("text", "") + output.get("data", {}).get("text/plain", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )


def test_there_is_one_exercise_notebook_a_step_of_the_course():
    assert [path.name for path in NOTEBOOKS] == student.exercise_names()
    assert [name.split("_", 1)[1] for name in student.exercise_names()] == [
        "softmax_classifier_gradient.ipynb",
        "dense_layer.ipynb",
        "softmax_jacobian.ipynb",
        "cross_entropy.ipynb",
        "hidden_layer.ipynb",
        "convolution.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_each_exercise_has_solution_blocks_each_followed_by_a_check(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    solved = [number for number, source in enumerate(code) if "### BEGIN SOLUTION" in source]
    assert solved, "no solution block"
    checked = [number for number, source in enumerate(code) if "nn.check(" in source or "nn.gradcheck(" in source]
    for number in solved:  # every cell the learner writes is checked before the training uses it
        assert any(check > number for check in checked), f"code cell {number} is never checked"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_the_student_version_keeps_no_line_of_the_solution(path):
    notebook = json.loads(path.read_text())
    version = student.student_version(notebook)
    for solution_cell, student_cell in zip(notebook["cells"], version["cells"], strict=True):
        if solution_cell["cell_type"] != "code":
            assert student_cell == solution_cell
            continue
        source = "".join(solution_cell["source"])
        assert "### BEGIN SOLUTION" not in student_cell["source"] and student_cell["outputs"] == []
        inside, solution_lines, other_lines = False, set(), set()
        for line in source.splitlines():
            if line.strip() in (student.BEGIN, student.END):
                inside = line.strip() == student.BEGIN
            elif line.strip():
                (solution_lines if inside else other_lines).add(line.strip())
        shown = {line.strip() for line in student_cell["source"].splitlines()}
        assert not (solution_lines - other_lines) & shown, "a line of the solution is in the student version"


@pytest.mark.parametrize(
    "source, message",
    [
        ("### BEGIN SOLUTION\nx = 1\n", "never ended"),
        ("x = 1\n### END SOLUTION\n", "without ### BEGIN SOLUTION"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n", "inside another solution block"),
    ],
)
def test_broken_markers_are_refused(source, message):
    with pytest.raises(ValueError, match=message):
        student.student_source(source)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_the_docs_site_shows_the_student_version_with_the_solutions_outputs(path):
    committed = nbformat.read(DOCS_EXERCISES / path.name, as_version=4)
    assert nbformat.writes(committed) == nbformat.writes(docs_student_version(path)), f"run `{REFRESH}`"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_each_solution_runs_with_every_check_passing_and_its_outputs_are_current(path, tmp_path):
    committed = nbformat.read(path, as_version=4)
    notebook = execute(path, tmp_path)
    text = _outputs(notebook)
    assert "Error" not in text and "✗" not in text and "not written yet" not in text
    checks = sum("nn.check(" in cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert text.count("passes every check") == checks
    stale = differences(committed, notebook)
    assert not stale, f"{path.name} has stale outputs; run `{REFRESH}`:\n" + "\n".join(stale)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_each_student_version_runs_to_the_first_method_to_write_and_says_not_written_yet(path, tmp_path):
    notebook = nbformat.from_dict(student.student_version(json.loads(path.read_text())))
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    with pytest.raises(CellExecutionError) as stopped:
        client.execute()
    assert (stopped.value.ename, stopped.value.evalue) == ("NotImplementedError", "not written yet")
    text = _outputs(notebook)
    assert "not written yet" in text and "passes every check" not in text


def test_the_command_writes_the_student_versions_and_never_replaces_a_file(tmp_path, capsys):
    assert main(["exercises", str(tmp_path / "class"), "--solutions"]) == 0
    written = sorted(path.name for path in (tmp_path / "class").iterdir())
    names = student.exercise_names()
    assert written == sorted([*names, *(name.replace(".ipynb", "_solution.ipynb") for name in names)])
    first = tmp_path / "class" / names[0]
    learners_work = first.read_text().replace("not written yet", "my own code")
    first.write_text(learners_work)
    assert main(["exercises", str(tmp_path / "class")]) == 2
    assert first.read_text() == learners_work  # untouched
    error = capsys.readouterr().err.strip()
    assert error.endswith("is never replaced: move it, or choose another folder") and "\n" not in error
