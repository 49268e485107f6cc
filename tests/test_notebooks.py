"""The example notebooks run top to bottom (nbclient, a real kernel), and their committed outputs are the
ones they give now (see notebook_outputs.py)."""

import nbformat
import pytest
from notebook_outputs import EXAMPLES, REFRESH, _same, differences, execute

NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_there_are_example_notebooks():
    assert [path.name[:3] for path in NOTEBOOKS] == [
        "01_",
        "02_",
        "03_",
        "04_",
        "05_",
        "06_",
        "07_",
        "08_",
        "09_",
        "10_",
        "11_",
    ]


@pytest.mark.parametrize(
    "committed, fresh, same",
    [
        ("loss = 0.683426, accuracy = 0.9035", "loss = 0.683427, accuracy = 0.9035", True),  # another CPU's rounding
        ("loss = 0.683426", "loss = 0.693426", False),
        ("accuracy = 0.9035", "accuracy: 0.9035", False),  # the text changed
        ("relative error 1.47e-09 pass", "relative error 8.9e-09 pass", True),  # noise-level figures
        ("relative error 1.47e-09 pass", "relative error 3.2e-07 pass", False),
        ("difference -2e-18", "difference 2e-18", False),  # a sign flip
        ("[1 2 3]", "[1 2 3 4]", False),
    ],
)
def test_the_staleness_comparison(committed, fresh, same):
    assert _same(committed, fresh) is same


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_is_committed_with_its_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert sum(bool(cell.get("outputs")) for cell in code) >= len(code) // 2, f"run `{REFRESH}`"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_top_to_bottom_and_its_outputs_are_current(path, tmp_path):
    committed = nbformat.read(path, as_version=4)
    notebook = execute(path, tmp_path)
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.output_type == "error"
    ]
    assert not errors
    images = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    if "mnist" in path.name:
        assert len(images) >= 2  # the loss curve and the misclassified digits
    if "convolution" in path.name:
        assert len(images) >= 3  # im2col, the filters, the feature maps
    if "inside" in path.name:
        assert len(images) >= 1  # the weight templates
        text = "".join(
            output.get("text", "")
            for cell in notebook.cells
            if cell.cell_type == "code"
            for output in cell.get("outputs", [])
        )
        assert "W̃ X̃ == W X + b: True" in text and "naive:       [nan nan" in text
    if "toy" in path.name:
        assert any("## The same toy, learning" in cell.source for cell in notebook.cells)
        assert len(images) >= 1  # the loss going down
    if "regression" in path.name:
        assert len(images) >= 1  # the data and the fitted curve
    if "attention" in path.name:
        assert len(images) >= 2  # the 4-token weights, the trained model's maps
        text = "".join(
            output.get("text", "")
            for cell in notebook.cells
            if cell.cell_type == "code"
            for output in cell.get("outputs", [])
        )
        assert "the layer equals the hand computation: True True" in text
    if "hidden" in path.name:
        assert len(images) >= 2  # the sigmoid network's dynamics, the three optimizers' losses
    if "recurrent" in path.name:
        assert len(images) >= 2  # the gradient reaching back through time, the LSTM's gradient norms
    if "normalisation" in path.name:
        assert len(images) >= 1  # the gradient norm per layer, with and without BatchNorm
    if "tuning" in path.name:
        assert len(images) >= 2  # accuracy against the learning rate, the parameters' importances
    stale = differences(committed, notebook)
    assert not stale, f"{path.name} has stale outputs; run `{REFRESH}`:\n" + "\n".join(stale)
