"""Saving and loading: round trips, and hostile files refused without running anything from them."""

import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

import nablanet as nn
from nablanet.files.serialization import write_archive

MARKER = Path("/tmp/nablanet-test-pickle-ran")


class _Exploit:
    """Unpickling this would create MARKER: proof that code from the file ran."""

    def __reduce__(self):
        return (Path.touch, (MARKER,))


@pytest.fixture
def model(rng):
    return nn.Sequential(
        [
            nn.Dense(6, 5, init="he_normal", rng=rng),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.3),
            nn.Dense(5, 4, rng=rng, dtype=np.float64),
            nn.Sigmoid(),
            nn.Dense(4, 3, rng=rng),
            nn.Softmax("loop"),
        ]
    )


def test_round_trip_gives_the_same_predictions(model, tmp_path, rng):
    X = rng.normal(size=(6, 9))
    model.metadata = {"dataset": "toy", "class_names": ["a", "b", "c"]}
    nn.save(model, tmp_path / "m.npz")
    loaded = nn.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert loaded.layers[1].alpha == 0.2 and loaded.layers[6].method == "loop" and loaded.metadata == model.metadata


def test_float32_models_stay_float32(tmp_path):
    nn.save(nn.Sequential([nn.Dense(3, 2, dtype=np.float32), nn.Softmax()]), tmp_path / "m.npz")
    assert nn.load(tmp_path / "m.npz").dtype == np.float32


def test_save_is_atomic_and_leaves_no_temporary_files(model, tmp_path):
    nn.save(model, tmp_path / "m.npz")
    nn.save(model, tmp_path / "m.npz")
    assert [path.name for path in tmp_path.iterdir()] == ["m.npz"]


def _valid_parts(model):
    return model.get_config(), {key: value.copy() for key, value in model.get_weights().items()}


def _hostile_files(tmp_path, model):
    """name → path of a file that must be refused."""
    files = {}
    pickled = tmp_path / "pickle.npz"
    pickled.write_bytes(pickle.dumps(_Exploit()))
    files["a pickle renamed .npz"] = pickled

    object_npy = tmp_path / "object.npz"
    with zipfile.ZipFile(object_npy, "w") as archive, archive.open("config.npy", "w") as member:
        np.save(member, np.array([_Exploit()], dtype=object), allow_pickle=True)
    files["an object array inside the archive"] = object_npy

    def variant(name, change):
        config, arrays = _valid_parts(model)
        change(config, arrays)
        path = tmp_path / f"{name}.npz"
        write_archive(path, "model", config, arrays)
        return path

    files["a missing array"] = variant("missing", lambda c, a: a.pop("layer0.weights"))
    files["an extra array"] = variant("extra", lambda c, a: a.update({"layer9.weights": np.ones(2)}))
    files["a wrong shape"] = variant("shape", lambda c, a: a.update({"layer0.weights": np.ones((5, 6))}))
    files["a wrong dtype"] = variant(
        "dtype", lambda c, a: a.update({"layer0.weights": a["layer0.weights"].astype(np.float32)})
    )
    files["a NaN weight"] = variant("nan", lambda c, a: a["layer3.weights"].__setitem__((0, 0), np.nan))
    files["an unknown layer"] = variant("unknown", lambda c, a: c["layers"][1].update(type="Conv3D"))
    files["a Python path as layer"] = variant("path", lambda c, a: c["layers"][1].update(type="os.system"))
    files["an unknown layer argument"] = variant(
        "argument", lambda c, a: c["layers"][0]["config"].update(code="rm -rf /")
    )
    files["a bad layer argument"] = variant("value", lambda c, a: c["layers"][2]["config"].update(rate=7))
    files["layers that do not fit"] = variant("fit", lambda c, a: c["layers"].pop(0))
    files["no layers"] = variant("empty", lambda c, a: c.update(layers=[]))

    wrong_version = tmp_path / "version.npz"
    config, arrays = _valid_parts(model)
    write_archive(wrong_version, "model", config, arrays)
    with np.load(wrong_version) as archive:
        stored = {name: archive[name] for name in archive.files}
    document = json.loads(stored["config"].tobytes())
    document["version"] = 99
    stored["config"] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    np.savez(wrong_version, **stored)
    files["an unknown format version"] = wrong_version

    no_config = tmp_path / "noconfig.npz"
    np.savez(no_config, weights=np.ones(3))
    files["an npz without config"] = no_config
    random_bytes = tmp_path / "random.npz"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(500))
    files["random bytes"] = random_bytes
    return files


def test_hostile_model_files_are_refused_and_run_nothing(model, tmp_path):
    MARKER.unlink(missing_ok=True)
    for description, path in _hostile_files(tmp_path, model).items():
        with pytest.raises(nn.ModelFileError):
            nn.load(path)
        assert not MARKER.exists(), f"{description}: code from the file ran"


def test_error_messages_say_what_is_wrong(model, tmp_path):
    files = _hostile_files(tmp_path, model)
    expected = {
        "a pickle renamed .npz": "a Python pickle, which nablanet never loads",
        "an object array inside the archive": "has dtype object, expected numbers",
        "random bytes": "not an .npz archive",
        "a missing array": "'layer0.weights' is missing",
        "a wrong shape": "has shape (5, 6)",
        "a NaN weight": "NaN or inf",
        "an unknown layer": "unknown type 'Conv3D'",
        "a Python path as layer": "unknown type 'os.system'",
        "an unknown format version": "format version 99",
    }
    for description, fragment in expected.items():
        with pytest.raises(nn.ModelFileError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            nn.load(files[description])


def test_a_checkpoint_is_not_a_model(model, tmp_path, rng):
    from nablanet import History
    from nablanet.files.checkpoint import Checkpoint

    history = History()
    checkpoint = Checkpoint(None, optimizer=nn.SGD(0.1), rng=rng, history=history)
    checkpoint.on_train_begin(model)
    checkpoint.write(tmp_path / "c.npz")
    with pytest.raises(nn.ModelFileError, match="holds a 'checkpoint', expected a 'model'"):
        nn.load(tmp_path / "c.npz")


@pytest.mark.slow
def test_loading_a_model_holds_its_weights_once(tmp_path):
    """The layers are built without arrays and take the ones read from the file: no second copy (a 64 MB model
    once peaked at three times its size)."""
    import subprocess
    import sys

    big = nn.Sequential(
        [nn.Dense(784, 20_000, rng=0, dtype=np.float32), nn.ReLU(), nn.Dense(20_000, 10, rng=0, dtype=np.float32)]
    )
    nn.save(big, tmp_path / "big.npz")
    nn.save(nn.Sequential([nn.Dense(784, 10, rng=0, dtype=np.float32)]), tmp_path / "small.npz")
    weights = sum(array.nbytes for array in big.get_weights().values())

    def peak(name):
        script = (
            "import resource, numpy as np, nablanet as nn\n"
            f"model = nn.load({str(tmp_path / name)!r})\n"
            "model.predict_proba(np.zeros((784, 1), np.float32))\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)"
        )
        return int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)

    assert peak("big.npz") - peak("small.npz") < 1.3 * weights


def test_a_model_that_starts_with_dropout_saves_and_loads(tmp_path):
    model = nn.Sequential([nn.Dropout(0.2, rng=0), nn.Dense(784, 10, rng=0), nn.Softmax()])
    nn.save(model, tmp_path / "dropout-first.npz")
    X = np.random.default_rng(0).random((784, 3))
    np.testing.assert_array_equal(nn.load(tmp_path / "dropout-first.npz").predict_proba(X), model.predict_proba(X))


def test_a_dense_layers_weights_stay_column_by_column_through_saving_and_resuming(tmp_path):
    """Dense keeps W̃ in Fortran order (W and b contiguous, the faster products): a loaded model, a model file
    written before (row by row), and a resumed checkpoint's Adam moments all come back in that layout, so that
    the optimizer's kernel runs on them as on a new model's."""
    from nablanet.files.checkpoint import Checkpoint, load_checkpoint
    from nablanet.training.loop import History

    def column_major(parameters):
        return all(p.order == "F" and p.value.flags.f_contiguous and p.gradient.flags.f_contiguous for p in parameters)

    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 40)), np.eye(3)[:, rng.integers(0, 3, 40)]
    model = nn.Sequential([nn.Dense(6, 5, rng=0), nn.ReLU(), nn.Dense(5, 3, rng=1), nn.Softmax()])
    assert column_major(model.parameters()) and model.layers[0].W.flags.f_contiguous
    assert model.layers[0].b.flags.c_contiguous
    optimizer, history = nn.Adam(), History()
    checkpoint = Checkpoint(tmp_path, optimizer=optimizer, rng=np.random.default_rng(0), history=history)
    model.fit(X, Y, epochs=1, batch_size=8, optimizer=optimizer, rng=checkpoint.rng, history=history,
              callbacks=[checkpoint], verbose=0)  # fmt: skip
    _, written = checkpoint.snapshot  # written as they lie, so that reading adopts them without a copy
    assert written["layer0.weights"].flags.f_contiguous and written["optimizer.0.m"].flags.f_contiguous
    state = load_checkpoint(tmp_path / "checkpoint.npz")
    assert column_major(state.model.parameters())
    assert all(m.flags.f_contiguous for moments in state.optimizer.state for m in moments.values())
    nn.save(model, tmp_path / "m.npz")
    assert column_major(nn.load(tmp_path / "m.npz").parameters())
    row_major = {name: np.ascontiguousarray(array) for name, array in model.get_weights().items()}
    write_archive(tmp_path / "old.npz", "model", model.get_config(), row_major)  # as files were written before
    old = nn.load(tmp_path / "old.npz")
    assert column_major(old.parameters())
    np.testing.assert_array_equal(old.predict_proba(X), model.predict_proba(X))
