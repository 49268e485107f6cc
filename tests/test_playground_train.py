"""The Train tab's TensorFlow-Playground features, through the server: input features, the train/test split,
regularisation, reproducible runs, weights edited by hand, and the export of a run as a notebook and a script
that reproduce it to the last digit."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys

import nbformat
import numpy as np
import pytest
from notebook_outputs import execute
from PIL import Image
from starlette.testclient import TestClient

from nablanet import Dense
from nablanet.app.playground import export, server, training
from nablanet.app.playground.training import ToySession, ToySettings


@pytest.fixture
def client(tmp_path):
    with TestClient(server.create_app([], tmp_path), base_url="http://127.0.0.1") as client:
        yield client


def trained(settings: ToySettings) -> ToySession:
    """A session trained to its last epoch in its own thread, as the page trains it."""
    session = ToySession(settings)
    session.resume()
    session.join(60)
    return session


def step_to(session: ToySession, epoch: int) -> None:
    """Press Step until ``epoch`` epochs are done and the thread waits, paused, for the next press."""
    while len(session.history.loss) < epoch:
        session.step()
        while session._steps or not session._idle:  # the thread takes the step, trains it, waits again
            session.join(0.01)


BAD = [
    ({"features": []}, "features must be distinct names of"),
    ({"features": ["x1", "x1"]}, "features must be distinct names of"),
    ({"features": ["x3"]}, "received: 'x3'"),
    ({"features": "x1,x2"}, "features must be distinct names of"),
    ({"train_percent": 95}, "train_percent must be an integer from 10 to 90"),
    ({"train_percent": 0.5}, "train_percent must be an integer"),
    ({"regularization": "l3"}, "regularization must be one of ['l1', 'l2']"),
    ({"regularization_rate": -1}, "regularization_rate must be a number from 0 to 10"),
    ({"regularization_rate": "1e9"}, "regularization_rate must be a number"),
    ({"seed": -1}, "seed must be an integer from 0 to 4294967295"),
]


@pytest.mark.parametrize(("settings", "words"), BAD)
def test_bad_settings_of_the_new_controls_are_a_400_naming_them(client, settings, words):
    response = client.post("/api/sessions", json=settings)
    assert response.status_code == 400 and words in response.json()["error"], response.json()


def test_the_features_are_the_network_s_inputs_and_the_split_its_data(client):
    created = client.post(
        "/api/sessions", json={"dataset": "circles", "samples": 200, "train_percent": 30, "features": ["x1sq", "x2sq"]}
    ).json()
    assert created["sizes"] == [2, 16, 16, 2] and [f["label"] for f in created["features"]] == ["x₁²", "x₂²"]
    assert len(created["points"]) == 60 and len(created["test_points"]) == 140
    assert len(created["test_point_colours"]) == 140
    train, test = {tuple(p) for p in created["points"]}, {tuple(p) for p in created["test_points"]}
    assert not train & test
    session = client.app.state.playground.sessions[created["id"]]
    points = session.data.points_train
    np.testing.assert_array_equal(session.data.X_train, np.stack([points[0] ** 2, points[1] ** 2]))


def test_xor_is_learned_in_a_few_epochs_from_x1x2_alone_and_not_from_x1_x2_without_hidden_units():
    settings = {"dataset": "xor", "hidden": (), "speed": "fast", "epochs": 5, "learning_rate": 0.1}
    product = trained(ToySettings(**settings, features=("x1x2",)))
    plain = trained(ToySettings(**settings, features=("x1", "x2")))
    assert product.history.accuracy[-1] > 0.9 and plain.history.accuracy[-1] < 0.7


def test_the_same_seed_gives_the_same_run_and_another_seed_another():
    settings = {"dataset": "spiral", "speed": "fast", "epochs": 5, "samples": 200}
    first, again, other = (trained(ToySettings(**settings, seed=seed)) for seed in (3, 3, 4))
    assert first.history.loss == again.history.loss and first.test_losses == again.test_losses
    assert first.snapshot_json == again.snapshot_json  # the pictures and every number
    assert first.history.loss != other.history.loss


def test_regularisation_shrinks_the_weights_and_l1_zeroes_them():
    settings = {"dataset": "xor", "speed": "fast", "epochs": 30, "samples": 200, "hidden": (8,), "learning_rate": 0.03}
    plain = trained(ToySettings(**settings))
    l2 = trained(ToySettings(**settings, regularization="l2", regularization_rate=0.05))
    l1 = trained(ToySettings(**settings, regularization="l1", regularization_rate=0.01))
    assert sum(l2.norms[-1]) < 0.8 * sum(plain.norms[-1])

    def small(session):
        return sum(int((np.abs(layer.W) < 1e-2).sum()) for layer in session.dense_layers())

    assert small(l1) > small(plain)


def test_the_diagram_has_every_weight_its_gradient_and_a_picture_per_hidden_unit(client):
    created = client.post(
        "/api/sessions", json={"dataset": "xor", "hidden": [3, 2], "speed": "fast", "epochs": 2}
    ).json()
    session = client.app.state.playground.sessions[created["id"]]
    first = json.loads(session.snapshot_json)["network"]
    assert first["gradients"] is None and len(first["neurons"]) == 2
    size = training.NEURON_GRID
    for strip, activations in zip(first["neurons"], hidden_activations(session), strict=True):
        pixels = picture(strip)  # the units side by side, each on its own scale: its largest |a| full red or blue
        assert pixels.shape == (size, len(activations) * size, 3)
        for unit, values in enumerate(activations):
            place = int(np.abs(values).argmax())
            full = training._VALUE_COLOURS[255 if values[place] > 0 else 0]
            np.testing.assert_array_equal(pixels[place // size, unit * size + place % size], full)
    step_to(session, 1)
    network = json.loads(session.snapshot_json)["network"]
    for layer, weights, gradients in zip(session.dense_layers(), network["weights"], network["gradients"], strict=True):
        np.testing.assert_allclose(weights, layer.weights, rtol=1e-5)
        np.testing.assert_allclose(gradients, layer.weights_gradient, rtol=1e-5, atol=1e-12)
    wide = client.post("/api/sessions", json={"hidden": [17]}).json()
    assert (
        not wide["drawn"]
        and json.loads(client.app.state.playground.sessions[wide["id"]].snapshot_json)["network"] is None
    )


def hidden_activations(session: ToySession) -> list[np.ndarray]:
    """Each hidden layer's activations on the diagram's grid, computed here layer by layer: (units, points)."""
    values, found = session._neuron_grid, []
    for layer in session.model.layers[: 2 * len(session.settings.hidden)]:
        values = layer.forward(values)
        if not isinstance(layer, Dense):
            found.append(values)
    return found


def picture(url: str) -> np.ndarray:
    """A PNG data URL's pixels, (height, width, 3)."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def test_a_weight_is_edited_only_while_paused_and_only_if_it_exists(client):
    created = client.post("/api/sessions", json={"dataset": "xor", "hidden": [2], "speed": "slow", "epochs": 50}).json()
    key = created["id"]
    session = client.app.state.playground.sessions[key]
    edit = {"layer": 1, "row": 0, "column": 2, "value": 0.75}  # the output's first bias
    assert client.post(f"/api/sessions/{key}/weight", json=edit).status_code == 200
    assert session.dense_layers()[1].b[0] == 0.75
    assert json.loads(session.snapshot_json)["network"]["weights"][1][0][2] == 0.75
    for bad, words in [
        ({**edit, "layer": 2}, "layer must be an integer from 0 to 1"),
        ({**edit, "column": 3}, "column must be an integer from 0 to 2"),
        ({**edit, "value": 1e6}, "value must be a number from -100 to 100"),
        ({**edit, "value": "NaN"}, "value must be a number"),
        ({"layer": 0}, "send {"),
    ]:
        response = client.post(f"/api/sessions/{key}/weight", json=bad)
        assert response.status_code == 400 and words in response.json()["error"], response.json()
    client.post(f"/api/sessions/{key}/resume")
    refused = client.post(f"/api/sessions/{key}/weight", json=edit)
    assert refused.status_code == 409 and "press Pause first" in refused.json()["error"]
    assert client.get(f"/api/sessions/{key}/export.py").status_code == 409
    client.post(f"/api/sessions/{key}/pause")
    assert len(session.edits) == 1
    for gone in (client.post("/api/sessions/nope/weight", json=edit), client.get("/api/sessions/nope/export.py")):
        assert gone.status_code == 404 and "no such training session" in gone.json()["error"]


def printed(text: str) -> dict[str, str]:
    """The losses an exported run prints, as they are printed (every digit)."""
    return dict(re.findall(r"(training loss|test loss) (\S+)", text))


def page_figures(session: ToySession) -> dict[str, str]:
    return {"training loss": repr(session.history.loss[-1]), "test loss": repr(session.test_losses[-1])}


def test_the_exported_script_reproduces_a_run_with_edits_bit_for_bit(client, tmp_path):
    settings = ToySettings(
        dataset="gaussians", samples=200, train_percent=70, features=("x1", "x2", "sinx1"), hidden=(4,),
        activation="tanh", regularization="l2", regularization_rate=0.003, batch_size=16, speed="fast", epochs=6,
        seed=11,
    )  # fmt: skip
    session = ToySession(settings)
    session.set_weight(0, 1, 2, -0.5)  # before the first epoch
    step_to(session, 3)
    session.set_weight(1, 0, 4, 0.2)  # after epoch 3: the output's bias
    session.resume()
    session.join(60)
    assert session.state == "done"
    code = export.script(session)
    assert code.count("model.fit(") == 2 and "after epoch 3" in code
    path = tmp_path / "run.py"
    path.write_text(code)
    ran = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120, check=True)
    assert printed(ran.stdout) == page_figures(session), ran.stdout


def test_the_exported_notebook_from_the_page_reproduces_its_run(client, tmp_path):
    key = client.post(
        "/api/sessions",
        json={"dataset": "xor", "features": ["x1x2", "x1"], "hidden": [4], "activation": "tanh", "speed": "fast",
              "epochs": 8, "regularization": "l1", "regularization_rate": 0.002, "seed": 5, "samples": 300},
    ).json()["id"]  # fmt: skip
    client.post(f"/api/sessions/{key}/resume")
    session = client.app.state.playground.sessions[key]
    session.join(60)
    response = client.get(f"/api/sessions/{key}/export.ipynb")
    assert response.status_code == 200
    assert 'filename="nablanet-xor-epoch-8.ipynb"' in response.headers["content-disposition"]
    path = tmp_path / "run.ipynb"
    path.write_bytes(response.content)
    nbformat.validate(nbformat.read(path, as_version=4))
    ran = execute(path)
    text = "".join(output.get("text", "") for cell in ran.cells for output in cell.get("outputs", []))
    assert printed(text) == page_figures(session), text
    assert client.get(f"/api/sessions/{key}/export.pdf").status_code == 404


def test_the_export_waits_for_the_epoch_under_way_when_pause_was_pressed_during_it(client, monkeypatch):
    """Pause takes effect when the epoch under way ends: until then the page will still show one more epoch, so
    an export (of the epochs done so far) would not be the page's run."""
    import threading

    key = client.post("/api/sessions", json={"dataset": "xor", "hidden": [2], "samples": 60, "epochs": 4}).json()["id"]
    session = client.app.state.playground.sessions[key]
    arrived, go = threading.Event(), threading.Event()
    after_epoch = session.after_epoch

    def held(model, epoch):  # the training thread, its epoch trained, not yet back between epochs
        arrived.set()
        go.wait(60)
        after_epoch(model, epoch)

    monkeypatch.setattr(session, "after_epoch", held)
    client.post(f"/api/sessions/{key}/resume")
    assert arrived.wait(60)
    client.post(f"/api/sessions/{key}/pause")
    refused = client.get(f"/api/sessions/{key}/export.py")
    assert refused.status_code == 409, refused.text
    assert "the epoch under way" in refused.json()["error"]
    go.set()
    while not session._idle:
        session.join(0.01)
    exported = client.get(f"/api/sessions/{key}/export.py")
    assert exported.status_code == 200 and "xor, 1 epochs" in exported.text


def test_a_weight_edit_after_the_last_epoch_says_the_run_is_over_not_press_pause(client):
    key = client.post("/api/sessions", json={"dataset": "xor", "hidden": [2], "samples": 40, "epochs": 2}).json()["id"]
    client.post(f"/api/sessions/{key}/resume")
    client.app.state.playground.sessions[key].join(60)
    edit = {"layer": 0, "row": 0, "column": 0, "value": 1.0}
    refused = client.post(f"/api/sessions/{key}/weight", json=edit)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert "the training is done" in error and "press Reset" in error and "press Pause" not in error, error


@pytest.mark.parametrize("dataset", ["xor", "plane"])
def test_the_exported_code_imports_only_what_it_uses(dataset):
    import ast

    settings = ToySettings(dataset=dataset, samples=40, hidden=(3,), regularization="l2")
    tree = ast.parse(export.script(ToySession(settings)))
    imported = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom | ast.Import)
                for alias in node.names}  # fmt: skip
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert imported - used == set()
