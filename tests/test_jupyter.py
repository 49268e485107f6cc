"""What ``fit`` says: Keras-like ``verbose`` levels, plain lines in a pipe, a widget bar and a live plot
in Jupyter (driven through nbclient and a real kernel)."""

import io

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from PIL import Image

import nablanet as nn
from nablanet.training.callbacks import ProgressBar


@pytest.fixture
def small(rng):
    X = rng.normal(size=(4, 60))
    Y = nn.one_hot((X[0] > 0).astype(int), 2)
    return X, Y


def model():
    return nn.Sequential([nn.Dense(4, 2, rng=0), nn.Softmax()])


@pytest.mark.parametrize("verbose", [1, 2, "auto"])
def test_fit_prints_one_line_per_epoch_outside_a_terminal(small, capsys, verbose):
    model().fit(*small, epochs=3, batch_size=20, verbose=verbose)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert all("loss = " in line and "accuracy = " in line for line in lines)
    assert "\r" not in "".join(lines)  # no bar redraws in a pipe


def test_fit_is_silent_with_verbose_0(small, capsys):
    model().fit(*small, epochs=2, batch_size=20, verbose=0)
    assert capsys.readouterr().out == ""


def test_a_terminal_gets_a_bar_over_the_batches(small):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    model().fit(*small, epochs=2, batch_size=20, callbacks=[ProgressBar(2, stream=stream)])
    text = stream.getvalue()
    assert "Epoch 1/2:   0%|" in text and "/3 [" in text and "batch/s" in text  # tqdm's bar over 3 batches
    assert "\r" in text  # redrawn in place
    assert text.count("Epoch 2/2: loss = ") == 1


def test_verbose_is_checked(small):
    with pytest.raises(ValueError, match="verbose must be one of"):
        model().fit(*small, epochs=1, verbose=3)


def test_live_plot_outside_a_notebook_writes_its_png_every_epoch(small, tmp_path):
    live = nn.LivePlot(tmp_path / "live.png")
    model().fit(*small, epochs=3, batch_size=20, validation_split=0.25, callbacks=[live], verbose=0)
    assert live.redraws == 3
    assert Image.open(tmp_path / "live.png").size == (1100, 400)
    assert set(live.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    with pytest.raises(ValueError, match="give it a path"):
        model().fit(*small, epochs=1, callbacks=[nn.LivePlot()], verbose=0)


class CountingClient(NotebookClient):
    """Counts the display updates the kernel sends (nbclient applies them to the outputs in place)."""

    updates = 0

    def process_message(self, msg, cell, cell_index):
        if msg["msg_type"] == "update_display_data":
            self.updates += 1
        return super().process_message(msg, cell, cell_index)


@pytest.mark.slow
def test_in_a_notebook_fit_shows_a_widget_bar_and_the_live_plot_updates_each_epoch(tmp_path):
    code = """
import numpy as np, nablanet as nn
rng = np.random.default_rng(0)
X = rng.normal(size=(4, 200)); Y = nn.one_hot((X[0] > 0).astype(int), 2)
model = nn.Sequential([nn.Dense(4, 2, rng=0), nn.Softmax()])
live = nn.LivePlot()
history = model.fit(X, Y, epochs=4, batch_size=20, validation_split=0.2, callbacks=[live])
print("redraws:", live.redraws)
"""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    client = CountingClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = notebook.cells[0].outputs
    assert not [output for output in outputs if output.output_type == "error"], outputs
    widgets = [output for output in outputs if "application/vnd.jupyter.widget-view+json" in output.get("data", {})]
    assert len(widgets) == 4  # one tqdm.notebook bar per epoch
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 1  # one figure, replaced in place
    assert client.updates == 3  # epochs 2, 3 and 4 redraw it
    text = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    assert "Epoch 4/4: loss = " in text and "redraws: 4" in text


def test_a_progress_bar_at_verbose_0_says_nothing(small, capsys):
    model().fit(*small, epochs=2, batch_size=20, verbose=0, callbacks=[ProgressBar(2, verbose=0)])
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("name", ["live.jpg", "missing/live.png", "."])
def test_live_plot_checks_its_path_before_training(small, tmp_path, name):
    trained = model()
    before = trained.get_weights()
    with pytest.raises(ValueError, match="LivePlot"):
        trained.fit(*small, epochs=1, callbacks=[nn.LivePlot(tmp_path / name)], verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, trained.get_weights(), strict=True))  # no epoch spent
