"""Which code runs the array work — numba's compiled loops or the NumPy code — is said by ``nablanet --version``
before a run and by ``nablanet train`` after it; numba stays out of the processes that need no kernel."""

import subprocess
import sys

import numpy as np
import pytest

import nablanet as nn
from nablanet.app.cli import main
from nablanet.core import kernels


@pytest.fixture
def nothing_ran_yet(monkeypatch):
    """This process's record of the kernels, as a fresh process has it."""
    monkeypatch.setattr(kernels._State, "asked", False)
    monkeypatch.setattr(kernels._State, "ran", set())


def test_importing_nablanet_and_training_the_softmax_classifier_by_sgd_leave_numba_unimported():
    script = (
        "import sys\n"
        "import numpy as np\n"
        "import nablanet as nn\n"
        "assert 'numba' not in sys.modules, 'import nablanet imported numba'\n"
        "from nablanet.core import kernels\n"
        "rng = np.random.default_rng(0)\n"
        "X, Y = rng.random((6, 40)), np.eye(3)[:, rng.integers(0, 3, 40)]\n"
        "model = nn.Sequential([nn.Dense(6, 3, rng=0), nn.Softmax()])\n"
        "model.fit(X, Y, epochs=2, batch_size=10, learning_rate=0.1, rng=0, verbose=0)\n"
        "assert 'numba' not in sys.modules, 'an SGD softmax classifier imported numba'\n"
        "print(kernels.used())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none needed (this model's work is matrix products and NumPy passes only)"


def test_version_names_numba_and_its_version_when_the_kernels_run(capsys, monkeypatch):
    import numba

    monkeypatch.delenv("NABLANET_KERNELS", raising=False)
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    lines = capsys.readouterr().out.splitlines()
    assert stopped.value.code == 0
    assert lines[0] == f"nablanet {nn.__version__} (Python {sys.version.split()[0]}, NumPy {np.__version__})"
    assert lines[1].startswith(f"array kernels: numba {numba.__version__}: compiled loops for im2col")


@pytest.mark.parametrize(
    ("hide_numba", "environment", "reason"),
    [
        (True, "1", "numba is not installed: nablanet installs it only where numba publishes wheels"),
        (False, "0", "NABLANET_KERNELS=0 turns the compiled loops off"),
    ],
)
def test_version_says_why_the_numpy_code_runs(capsys, monkeypatch, hide_numba, environment, reason):
    if hide_numba:
        monkeypatch.setitem(sys.modules, "numba", None)  # as if it were not installed: find_spec finds nothing
    monkeypatch.setenv("NABLANET_KERNELS", environment)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.splitlines()[1].startswith(f"array kernels: the NumPy code ({reason}")


def _train_a_small_cnn() -> None:
    rng = np.random.default_rng(0)
    X, Y = rng.random((1 * 6 * 6, 8)), np.eye(2)[:, rng.integers(0, 2, 8)]
    conv = nn.Conv2D(1, 2, 3, input_shape=(1, 6, 6), rng=0)
    model = nn.Sequential([conv, nn.ReLU(), nn.MaxPool2D(2), nn.Flatten(), nn.Dense(8, 2, rng=0), nn.Softmax()])
    model.fit(X, Y, epochs=1, batch_size=4, optimizer="adam", rng=0, verbose=0)


def test_after_a_cnn_epoch_used_names_each_compiled_loop_that_ran(monkeypatch, nothing_ran_yet):
    import numba

    monkeypatch.delenv("NABLANET_KERNELS", raising=False)
    _train_a_small_cnn()
    assert kernels.used() == (  # no col2im: nothing needs the gradient with respect to the data
        f"numba {numba.__version__} ran the compiled loops for Adam's update, ReLU's backward, im2col, "
        "max-pooling, max-pooling's backward"
    )


def test_with_the_kernels_off_used_says_the_numpy_code_ran_and_why(monkeypatch, nothing_ran_yet):
    monkeypatch.setenv("NABLANET_KERNELS", "0")
    _train_a_small_cnn()
    assert kernels.used() == "the NumPy code ran (NABLANET_KERNELS=0 turns the compiled loops off)"
