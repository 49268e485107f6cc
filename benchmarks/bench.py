"""nablanet against PyTorch (CPU) on the same work, in one run.

Both use 2 threads, the same data (the bundled MNIST), dtype, batch size and number of batches.
Every figure is the median of --repeats runs after one warm-up run. Prints a table; timing noise on
shared machines is large, so compare ratios within one run, never across runs.

    make bench                      # installs the bench extra (torch==2.13.0) and runs this
    python benchmarks/bench.py --repeats 7
    python benchmarks/bench.py --only whole   # whole `nablanet train` processes against torch_train.py
    python benchmarks/bench.py --only lm      # the tiny transformer's training step, whole processes
    python benchmarks/bench.py --only lstm    # whole char-LSTM processes (char_lstm.py), nablanet against PyTorch
    python benchmarks/bench.py --only alternate --rounds 9   # alternating rounds, a process a side, median ratio

The alternating mode is the one that holds still on a shared machine: each side (PyTorch, nablanet, nablanet
fused) runs in a process of its own and trains on the same batches for a round (80 CNN batches, an epoch of
the MLP or of the notebook recipe, 25 steps of the tiny transformer, 40 of the char-LSTM), the sides take
turns round after round (the others idle, waiting), and each round gives a ratio to PyTorch's round beside
it; the median of those ratios is reported, with the range of each side's round times.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

THREADS = 2
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(THREADS)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import nablanet as nn  # noqa: E402

torch.set_num_threads(THREADS)
TORCH_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}
TORCH_ADAM = functools.partial(torch.optim.Adam, lr=1e-3)
TORCH_SGD = functools.partial(torch.optim.SGD, lr=0.01)


def median_seconds(functions, repeats: int) -> list[float]:
    """Median time of each function; the functions take turns, so that drifting load hits all alike."""
    for function in functions:
        function()  # warm-up: first-touch page faults, lazy initialisation
    times = [[] for _ in functions]
    for _ in range(repeats):
        for function, samples in zip(functions, times, strict=True):
            start = time.perf_counter()
            function()
            samples.append(time.perf_counter() - start)
    return [statistics.median(samples) for samples in times]


# ---------------------------------------------------------------- nablanet


def nablanet_epoch(data, sizes, batch_size, optimizer, dtype, seed=0, fuse=False):
    rng = np.random.default_rng(seed)
    layers = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers.append(nn.Dense(fan_in, fan_out, init="he_normal", rng=rng, dtype=dtype))
        layers.append(nn.ReLU())
    model = nn.Sequential([*layers[:-1], nn.Softmax()])
    X, Y = data.X_train, data.Y_train
    return lambda: model.fit(
        X, Y, epochs=1, batch_size=batch_size, optimizer=optimizer(), rng=rng, verbose=0, fuse=fuse
    ), model


# ---------------------------------------------------------------- PyTorch


def torch_epoch(rows, labels, sizes, batch_size, optimizer, dtype, seed=0):
    torch.manual_seed(seed)
    modules = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        modules += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*modules[:-1]).to(TORCH_DTYPES[dtype])
    opt = optimizer(model.parameters())
    generator = torch.Generator().manual_seed(seed)

    def epoch():
        order = torch.randperm(rows.shape[0], generator=generator)
        for start in range(0, rows.shape[0], batch_size):
            indices = order[start : start + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(rows[indices]), labels[indices])
            loss.backward()
            opt.step()

    return epoch, model


# ---------------------------------------------------------------- the CNN (Keras's "simple MNIST convnet")

CNN_BATCH = 128


def nablanet_cnn_batches(data, num_batches, dtype=np.float32, seed=0, fuse=False):
    """The first ``num_batches`` batches of a CNN epoch: Conv(32) ReLU MaxPool Conv(64) ReLU MaxPool Flatten
    Dropout(0.5) Dense(10), Adam, batch 128 — what `nablanet train --conv 32,64 --dropout 0.5` builds; with
    ``fuse``, trained by the fused path (``fit(..., fuse=True)``)."""
    model = nn.build_classifier(784, 10, conv=(32, 64), dropout=0.5, dtype=dtype, rng=seed)
    X, Y = data.X_train[:, : num_batches * CNN_BATCH], data.Y_train[:, : num_batches * CNN_BATCH]
    optimizer = nn.Adam(1e-3)
    return lambda: model.fit(X, Y, epochs=1, batch_size=CNN_BATCH, optimizer=optimizer, rng=seed, verbose=0, fuse=fuse)


def torch_cnn_batches(rows, labels, num_batches, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(1600, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = rows[: num_batches * CNN_BATCH].reshape(-1, 1, 28, 28)
    targets = labels[: num_batches * CNN_BATCH]
    generator = torch.Generator().manual_seed(seed)

    def batches():
        order = torch.randperm(images.shape[0], generator=generator)
        for start in range(0, images.shape[0], CNN_BATCH):
            indices = order[start : start + CNN_BATCH]
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(images[indices]), targets[indices]).backward()
            opt.step()

    return batches


def gemm_cnn_batches(num_batches, seed=0):
    """The CNN's matrix products alone, as the im2col Conv2D and Dense run them (float32): per batch, for
    each convolution W_col X_col and ∇Z_col X_colᵀ (and W_colᵀ ∇Z_col for the second), and the Dense ones."""
    rng = np.random.default_rng(seed)
    shapes = [(32, 9, CNN_BATCH * 26 * 26, False), (64, 288, CNN_BATCH * 11 * 11, True)]  # F, C·k·k, b·H'·W'
    arrays = [
        (rng.random((f, k), np.float32), rng.random((k, n), np.float32), rng.random((f, n), np.float32), dx)
        for f, k, n, dx in shapes
    ]
    dense = rng.random((10, 1600), np.float32), rng.random((CNN_BATCH, 1600), np.float32)
    gradient = rng.random((CNN_BATCH, 10), np.float32)

    def batches():
        for _ in range(num_batches):
            for W, X_col, dZ, dx in arrays:
                W @ X_col
                dZ @ X_col.T
                if dx:
                    W.T @ dZ
            dense[1] @ dense[0].T
            gradient.T @ dense[1]
            gradient @ dense[0]

    return batches


def peak_rss_of_cnn_training() -> float:
    """Peak resident memory (MB) of one epoch of `nablanet train --conv 32,64 --dropout 0.5` (VmHWM)."""
    script = (
        "import atexit, sys\n"
        "from nablanet.app.cli import main\n"
        "atexit.register(lambda: print([line for line in open('/proc/self/status') if line.startswith('VmHWM')][0]))\n"
        "sys.exit(main(['train', '--conv', '32,64', '--dropout', '0.5', '--optimizer', 'adam', '--batch-size', '128',"
        " '--epochs', '1', '--out', sys.argv[1]]))\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run([sys.executable, "-c", script, folder], check=True, capture_output=True, text=True)
    return int(result.stdout.strip().splitlines()[-1].split()[1]) / 1024


# ---------------------------------------------------------------- GEMM only


def gemm_epoch(sizes, num_samples, batch_size, dtype, seed=0):
    """The matrix products of one epoch alone, in the layout the training loop uses (sample-major
    activations and gradients, W̃ with its bias column): forward, weight gradients, and the input
    gradients of every layer but the first."""
    rng = np.random.default_rng(seed)
    weights = [
        rng.standard_normal((fan_out, fan_in + 1)).astype(dtype) for fan_in, fan_out in itertools.pairwise(sizes)
    ]
    activations = [rng.standard_normal((batch_size, size)).astype(dtype) for size in sizes]  # (b, features)
    gradients = [rng.standard_normal((batch_size, size)).astype(dtype) for size in sizes]
    weight_gradients = [np.empty_like(w) for w in weights]
    num_batches = -(-num_samples // batch_size)

    def epoch():
        for _ in range(num_batches):
            for layer, w in enumerate(weights):  # Zᵀ = Xᵀ Wᵀ
                np.matmul(activations[layer], w[:, :-1].T, out=activations[layer + 1])
            for layer in reversed(range(len(weights))):  # ∇W = ∇Z Xᵀ, ∇Xᵀ = ∇Zᵀ W
                np.matmul(gradients[layer + 1].T, activations[layer], out=weight_gradients[layer][:, :-1])
                if layer:
                    np.matmul(gradients[layer + 1], weights[layer][:, :-1], out=gradients[layer])

    return epoch


def peak_rss_of_training(dtype: str) -> float:
    """Peak resident memory (MB) of a 20-epoch `nablanet train`, read by the process itself (VmHWM)."""
    script = (
        "import atexit, sys\n"
        "from nablanet.app.cli import main\n"
        "atexit.register(lambda: print([line for line in open('/proc/self/status') if line.startswith('VmHWM')][0]))\n"
        f"sys.exit(main(['train', '--dtype', '{dtype}', '--out', sys.argv[1]]))\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run([sys.executable, "-c", script, folder], check=True, capture_output=True, text=True)
    kilobytes = int(result.stdout.strip().splitlines()[-1].split()[1])
    return kilobytes / 1024


# ---------------------------------------------------------------- alternating rounds, a process a side


def machine() -> str:
    """The CPU (``lscpu``'s model name) and the load averages, for the heading of every run."""
    try:
        lines = subprocess.run(["lscpu"], check=True, capture_output=True, text=True).stdout.splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} CPUs, load averages {load}"


SETTLE_SECONDS = 0.5  # idle before each round: the threads of the round before stop spinning and sleep


def alternating_rounds(sides: dict, rounds: int) -> dict[str, list[float]]:
    """Each side's seconds for each round: one warm-up round each, then ``rounds`` rounds in which the sides take
    turns in the order given, so that load that drifts during the run hits every side of a round alike. A side
    is a function that runs one round and returns its seconds."""
    for run_round in sides.values():
        run_round()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, run_round in sides.items():
            time.sleep(SETTLE_SECONDS)
            times[name].append(run_round())
    return times


# the works of the alternating mode: their titles, and the sides that take turns (PyTorch's first)
ALTERNATING = {
    "cnn": ("CNN (Keras convnet), {cnn_batches} batches of 128, Adam, float32", ("nablanet", "nablanet fused")),
    "mlp": ("MLP 784-256-128-10 epoch, batch 128, Adam, float32", ("nablanet", "nablanet fused")),
    "recipe": ("notebook recipe epoch (softmax classifier, SGD, batch 200), float32", ("nablanet",)),
    "transformer": ("tiny transformer (2 blocks, d 64, 4 heads, T 32), 25 steps of 32, Adam", ("nablanet",)),
    "lstm": ("char-LSTM (Embedding 32, LSTM 128, T 32), 40 steps of 64, Adam", ("nablanet",)),
}


def round_function(work: str, side: str, cnn_batches: int):
    """The function that trains one round of ``work`` (a key of ``ALTERNATING``) on ``side`` ("PyTorch",
    "nablanet" or "nablanet fused"), built in the process that runs it; every side of a work trains on the same
    batches."""
    if work in ("transformer", "lstm"):
        return sequence_round(work, side)
    data = nn.load_mnist(np.float32)
    rows_t, labels_t = torch.from_numpy(data.X_train.T), torch.from_numpy(data.y_train)
    if work == "cnn":
        if side == "PyTorch":
            return torch_cnn_batches(rows_t, labels_t, cnn_batches)
        return nablanet_cnn_batches(data, cnn_batches, fuse=side == "nablanet fused")
    sizes, batch, optimizers = {
        "mlp": ((784, 256, 128, 10), 128, (TORCH_ADAM, lambda: nn.Adam(1e-3))),
        "recipe": ((784, 10), 200, (TORCH_SGD, lambda: nn.SGD(0.01))),
    }[work]
    if side == "PyTorch":
        return torch_epoch(rows_t, labels_t, sizes, batch, optimizers[0], np.float32)[0]
    return nablanet_epoch(data, sizes, batch, optimizers[1], np.float32, fuse=side == "nablanet fused")[0]


def sequence_round(work: str, side: str):
    """One round of a sequence model of the README: the tiny transformer (torch_lm.py's model, its weights
    copied from nablanet's) for an epoch of the bundled 3,000 words (25 steps of 32 windows), or the char-LSTM
    (char_lstm.py's) for 40 steps of 64 windows; the batches drawn by a generator of seed 0 on either side."""
    import char_lstm
    import torch_lm

    from nablanet.app import language

    rng = np.random.default_rng(0)
    if work == "lstm":
        X, Y, vocabulary = char_lstm.data(40)
        if side == "PyTorch":
            model, optimizer = char_lstm.torch_model(vocabulary)
            return lambda: char_lstm.torch_steps(model, optimizer, X, Y, vocabulary, rng)
        lstm, adam = char_lstm.nablanet_model(vocabulary), nn.Adam(char_lstm.LEARNING_RATE)
        return lambda: lstm.fit(X, Y, loss="sequence", epochs=1, batch_size=char_lstm.BATCH, optimizer=adam, rng=rng,
                                verbose=0)  # fmt: skip
    text = language.load_text("words-sample", 32)
    model = language.build_text_model("transformer", text.size, rng=0)  # LM_OPTIONS: d 64, 4 heads, 2 blocks
    if side == "PyTorch":
        theirs = torch_lm.Transformer(model, heads=4)
        optimizer = torch.optim.Adam(theirs.parameters(), lr=1e-3)
        ids = [torch.from_numpy(array.T.astype(np.int64)) for array in (text.X_train, text.Y_train)]
        return lambda: torch_lm.train_epoch(theirs, optimizer, *ids, 32, rng)
    adam = nn.Adam(1e-3)
    return lambda: model.fit(text.X_train, text.Y_train, loss="sequence", epochs=1, batch_size=32, optimizer=adam,
                             rng=rng, verbose=0)  # fmt: skip


def round_worker(connection, work: str, side: str, cnn_batches: int) -> None:
    """A side's process: builds its round, says so, then runs a round and sends its seconds each time it is
    asked, until it is told to stop."""
    run_round = round_function(work, side, cnn_batches)
    connection.send("ready")
    while connection.recv():
        start = time.perf_counter()
        run_round()
        connection.send(time.perf_counter() - start)


def alternating(rounds: int, cnn_batches: int, only_work: str = "") -> list[tuple[str, str, list[float], list[float]]]:
    """(work, side, nablanet's round times, PyTorch's round times) for each work of ``ALTERNATING`` whose title
    holds ``only_work``, measured by :func:`alternating_rounds` against PyTorch on the same batches. Each side
    runs in a process of its own (started fresh, with the same threads), idle while another side's round runs:
    in one process, PyTorch's OpenMP threads, still spinning after its round, took a core from nablanet's
    (its CNN rounds 20–30 % slower than with ``OMP_WAIT_POLICY=PASSIVE``)."""
    context = multiprocessing.get_context("spawn")
    rows = []
    for work, (title, ours) in ALTERNATING.items():
        title = title.format(cnn_batches=cnn_batches)
        if only_work and only_work not in title:
            continue
        connections, processes = {}, []
        for side in ("PyTorch", *ours):
            parent, child = context.Pipe()
            processes.append(context.Process(target=round_worker, args=(child, work, side, cnn_batches)))
            processes[-1].start()
            connections[side] = parent
        try:
            for connection in connections.values():
                connection.recv()  # built: data loaded, model made

            def ask(connection):
                connection.send(True)
                return connection.recv()

            times = alternating_rounds({side: functools.partial(ask, c) for side, c in connections.items()}, rounds)
        finally:
            for connection in connections.values():
                connection.send(False)
            for process in processes:
                process.join()
        for side in ours:
            rows.append((title, side, times[side], times["PyTorch"]))
            print(
                f"{title}, {side}: {[round(t, 3) for t in times[side]]}, PyTorch: "
                f"{[round(t, 3) for t in times['PyTorch']]}",
                flush=True,
            )
    return rows


def print_alternating(rows, rounds: int) -> None:
    print()
    print(
        f"Alternating rounds, a process a side ({rounds} rounds after a warm-up; ratio: the median of the rounds' "
        "ratios)"
    )
    print(f"{'work':<68} {'nablanet':>15} {'PyTorch':>15} {'ratio':>6}")
    for work, side, ours, theirs in rows:
        ratio = statistics.median(o / t for o, t in zip(ours, theirs, strict=True))
        ranges = [f"{min(times):6.3f}–{max(times):.3f}s" for times in (ours, theirs)]
        print(f"{work + ('' if side == 'nablanet' else f', {side}'):<68} {ranges[0]:>15} {ranges[1]:>15} {ratio:6.2f}")


# ---------------------------------------------------------------- whole processes

WHOLE = {  # what the user runs: `nablanet train` options (the same for torch_train.py), short and long run,
    # and the matrix products of its epoch alone (the GEMM-only figure); NABLANET_ONLY: options for nablanet alone
    "notebook recipe (softmax classifier, SGD, batch 200)": (
        [],
        (2, 12),
        lambda: gemm_epoch((784, 10), 60000, 200, np.float32),
    ),
    "MLP 784-256-128-10, Adam, batch 128": (
        ["--hidden", "256,128", "--optimizer", "adam", "--batch-size", "128"],
        (1, 5),
        lambda: gemm_epoch((784, 256, 128, 10), 60000, 128, np.float32),
    ),
    "CNN (Keras convnet), Adam, batch 128": (
        ["--conv", "32,64", "--dropout", "0.5", "--optimizer", "adam", "--batch-size", "128"],
        (1, 2),
        lambda: gemm_cnn_batches(469),
    ),
}
WHOLE["CNN (Keras convnet), Adam, batch 128, nablanet fused"] = WHOLE["CNN (Keras convnet), Adam, batch 128"]
NABLANET_ONLY = {"CNN (Keras convnet), Adam, batch 128, nablanet fused": ["--fuse"]}  # the same work, fused


def process_seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def whole_process(repeats: int, only_work: str = "") -> list[tuple[str, float, float, float]]:
    """Per-epoch seconds of whole `nablanet train` processes and of the same PyTorch script: the slope between a
    short and a long run (start-up, data loading, plots and the test evaluation cancel), the median over
    ``repeats`` rounds in which the four commands take turns; ``only_work``: the works whose name holds it."""
    rows = []
    torch_script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_train.py")
    for work, (options, (short, long), gemm_only) in WHOLE.items():
        if only_work and only_work not in work:
            continue
        slopes: dict[str, list[float]] = {"nablanet": [], "PyTorch": []}
        with tempfile.TemporaryDirectory() as folder:

            def command(tool: str, epochs: int, options=options, folder=folder, work=work) -> list[str]:
                if tool == "PyTorch":
                    return [sys.executable, torch_script, *options, "--epochs", str(epochs)]
                out = os.path.join(folder, f"run{epochs}-{time.perf_counter_ns()}")  # train refuses an earlier run's
                return [
                    sys.executable,
                    "-m",
                    "nablanet.app.cli",
                    "train",
                    *options,
                    *NABLANET_ONLY.get(work, []),
                    "--epochs",
                    str(epochs),
                    "--out",
                    out,
                ]

            commands = {tool: functools.partial(command, tool) for tool in slopes}
            for command in commands.values():
                process_seconds(command(short))  # warm-up: the file cache, Python's bytecode cache
            for _ in range(repeats):
                for name, command in commands.items():
                    seconds = {epochs: process_seconds(command(epochs)) for epochs in (short, long)}
                    slopes[name].append((seconds[long] - seconds[short]) / (long - short))
        gemm = median_seconds([gemm_only()], repeats)[0]
        rows.append((f"(w) {work}, whole process", *(statistics.median(slopes[n]) for n in slopes), gemm))
        print(rows[-1], "each run's slopes:", {n: [round(x, 3) for x in v] for n, v in slopes.items()}, flush=True)
    return rows


# the character model of the README: `nablanet train --dataset words-sample --model transformer` against
# benchmarks/torch_lm.py (the same model, weights, data order and Adam), on the 3,000 bundled words so that an
# epoch is short; the short and the long run's epochs
LM_OPTIONS = "--context 32 --embed 64 --heads 4 --blocks 2 --batch-size 32 --lr 0.001 --seed 0".split()
LM_EPOCHS = (1, 4)


def whole_process_lm(repeats: int) -> list[tuple[str, float, float, None]]:
    """Seconds per training step of the tiny transformer, whole processes: the slope between a short and a long
    run (start-up, loading, validation passes and pictures cancel, but for the validation of the extra epochs,
    which both do alike), in rounds in which the four commands take turns; the median over ``repeats`` rounds."""
    from nablanet.app import language

    windows = language.load_text("words-sample", 32).X_train.shape[1]
    steps = -(-windows // 32)  # batches of an epoch
    torch_script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_lm.py")
    slopes: dict[str, list[float]] = {"nablanet": [], "PyTorch": []}
    with tempfile.TemporaryDirectory() as folder:

        def command(tool: str, epochs: int) -> list[str]:
            if tool == "PyTorch":
                return [sys.executable, torch_script, "--sample", *LM_OPTIONS, "--epochs", str(epochs)]
            out = os.path.join(folder, f"run{epochs}-{time.perf_counter_ns()}")
            model = ["--dataset", "words-sample", "--model", "transformer", "--optimizer", "adam"]
            return [
                sys.executable,
                "-m",
                "nablanet.app.cli",
                "train",
                *model,
                *LM_OPTIONS,
                "--epochs",
                str(epochs),
                "--out",
                out,
            ]

        short, long = LM_EPOCHS
        for tool in slopes:
            process_seconds(command(tool, short))  # warm-up: the file cache, Python's bytecode cache
        for _ in range(repeats):
            for tool in slopes:
                seconds = {epochs: process_seconds(command(tool, epochs)) for epochs in (short, long)}
                slopes[tool].append((seconds[long] - seconds[short]) / ((long - short) * steps))
    work = f"(t) transformer step (2 blocks, d 64, 4 heads, T 32, batch 32, Adam), whole process, {steps} steps/epoch"
    row = (work, statistics.median(slopes["nablanet"]), statistics.median(slopes["PyTorch"]), None)
    print(row, "each round's step seconds:", {n: [round(x, 5) for x in v] for n, v in slopes.items()}, flush=True)
    return [row]


LSTM_STEPS = (20, 120)  # the short and the long run of benchmarks/char_lstm.py: 100 steps apart, several seconds


def lstm_whole_process(repeats: int) -> tuple[str, float, float, None]:
    """Seconds per training step of the character LSTM (benchmarks/char_lstm.py: the same model, weights, data,
    batches and Adam in both) as whole processes: the slope between a run of 20 and one of 120 steps (start-up
    and data loading cancel), the median over ``repeats`` rounds in which nablanet's and PyTorch's runs take
    turns."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "char_lstm.py")
    short, long = LSTM_STEPS
    slopes: dict[str, list[float]] = {"nablanet": [], "torch": []}

    def command(framework: str, steps: int) -> list[str]:
        return [sys.executable, script, "--framework", framework, "--steps", str(steps)]

    for framework in slopes:
        process_seconds(command(framework, short))  # warm-up: the file cache, Python's bytecode cache
    for _ in range(repeats):
        for framework, samples in slopes.items():
            seconds = {steps: process_seconds(command(framework, steps)) for steps in (short, long)}
            samples.append((seconds[long] - seconds[short]) / (long - short))
    row = (
        "(f) char-LSTM step, T 32, b 64, Adam, float32, whole proc.",
        statistics.median(slopes["nablanet"]),
        statistics.median(slopes["torch"]),
        None,
    )
    print(row, "each run's slopes:", {n: [round(x, 4) for x in v] for n, v in slopes.items()}, flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions per figure (default: 5)")
    parser.add_argument(
        "--cnn-batches",
        type=int,
        default=40,
        help="batches of 128 timed for the CNN; the epoch (469 batches) is scaled from them (default: 40)",
    )
    parser.add_argument(
        "--only",
        choices=("all", "alternate", "cnn", "mlp", "whole", "lm", "lstm"),
        default="all",
        help="every figure; the alternating rounds alone; the CNN's alone; the in-process MLP and softmax figures "
        "alone; or the whole-process ones alone (`nablanet train` against benchmarks/torch_train.py as separate "
        "processes); or the tiny transformer's training step alone (`nablanet train --model transformer` against "
        "benchmarks/torch_lm.py); or the char-LSTM's alone",
    )
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds after the warm-up round (default: 7)")
    parser.add_argument(
        "--round-batches", type=int, default=80, help="CNN batches of 128 in one alternating round (default: 80)"
    )
    parser.add_argument(
        "--work",
        default="",
        metavar="TEXT",
        help="the alternating and whole-process figures only of the works whose name holds TEXT (e.g. CNN, MLP, "
        "recipe, transformer, LSTM)",
    )
    args = parser.parse_args()
    repeats = max(args.repeats, 1)
    rows = []  # (work, nablanet seconds, PyTorch seconds or None, GEMM-only seconds or None)
    print(
        f"nablanet {nn.__version__}, NumPy {np.__version__}, PyTorch {torch.__version__}, {THREADS} threads, "
        f"median of {repeats}",
        flush=True,
    )
    print(f"CPU: {machine()}", flush=True)
    alternated = []
    if args.only in ("all", "alternate"):
        rounds = max(args.rounds, 1)
        alternated = alternating(rounds, max(args.round_batches, 1), args.work)

    if args.only in ("all", "whole"):
        rows += whole_process(repeats, args.work)
    if args.only in ("all", "lm"):
        rows += whole_process_lm(repeats)
    if args.only in ("all", "lstm"):
        rows.append(lstm_whole_process(repeats))
    if args.only in ("all", "cnn"):
        data = nn.load_mnist(np.float32)
        rows_t, labels_t = torch.from_numpy(data.X_train.T), torch.from_numpy(data.y_train)
        count = max(args.cnn_batches, 1)
        scale = 469 / count  # batches per epoch of 60,000 images
        seconds = median_seconds(
            [nablanet_cnn_batches(data, count), torch_cnn_batches(rows_t, labels_t, count), gemm_cnn_batches(count)],
            max(1, min(repeats, 3)),
        )
        rows.append(("(e) CNN epoch (Keras convnet), batch 128, Adam, float32", *(t * scale for t in seconds)))
        print(rows[-1], flush=True)

    for dtype in (np.float32, np.float64) if args.only in ("all", "mlp") else ():
        data = nn.load_mnist(dtype)
        rows_t = torch.from_numpy(data.X_train.T)  # sample-major view, no copy
        labels_t = torch.from_numpy(data.y_train)
        name = np.dtype(dtype).name
        sizes = (784, 10)
        ours, _ = nablanet_epoch(data, sizes, 200, lambda: nn.SGD(0.01), dtype)
        theirs, _ = torch_epoch(rows_t, labels_t, sizes, 200, lambda p: torch.optim.SGD(p, lr=0.01), dtype)
        rows.append(
            (
                f"(a) softmax classifier epoch, batch 200, SGD, {name}",
                *median_seconds([ours, theirs, gemm_epoch(sizes, 60000, 200, dtype)], repeats),
            )
        )
        print(rows[-1], flush=True)
        if dtype is np.float64:
            continue
        sizes = (784, 256, 128, 10)
        ours, model = nablanet_epoch(data, sizes, 128, lambda: nn.Adam(1e-3), dtype)
        theirs, torch_model = torch_epoch(rows_t, labels_t, sizes, 128, lambda p: torch.optim.Adam(p, lr=1e-3), dtype)
        rows.append(
            (
                "(b) MLP 784-256-128-10 epoch, batch 128, Adam, float32",
                *median_seconds([ours, theirs, gemm_epoch(sizes, 60000, 128, dtype)], repeats),
            )
        )
        print(rows[-1], flush=True)
        X_test, test_rows = data.X_test, torch.from_numpy(data.X_test.T)

        def torch_inference(torch_model=torch_model, test_rows=test_rows):
            with torch.no_grad():
                torch.softmax(torch_model(test_rows), dim=1)

        rows.append(
            (
                "(c) MLP inference, 10,000 test images, float32",
                *median_seconds(
                    [lambda model=model, X_test=X_test: model.predict_proba(X_test), torch_inference], repeats
                ),
                None,
            )
        )
        print(rows[-1], flush=True)

    rng = np.random.default_rng(0)
    Z, G = rng.standard_normal((10, 200)), rng.standard_normal((10, 200))
    Z_t, G_t = torch.from_numpy(Z), torch.from_numpy(G)
    A_t = torch.softmax(Z_t, dim=0)
    torch_backward = lambda: torch.ops.aten._softmax_backward_data(G_t, A_t, 0, torch.float64)  # noqa: E731
    for method in ("loop", "vectorized") if args.only in ("all", "mlp") else ():
        layer = nn.Softmax(method)
        layer.forward(Z)
        rows.append(
            (
                f"(d) Softmax backward, one batch (10, 200), {method}, float64",
                *median_seconds([lambda layer=layer: layer.backward(G), torch_backward], max(repeats, 50)),
                None,
            )
        )
        print(rows[-1], flush=True)

    if alternated:
        print_alternating(alternated, rounds)
    print()
    print(f"{'work':<58} {'nablanet':>10} {'PyTorch':>10} {'ratio':>7} {'GEMM only':>10} {'× GEMM':>7}")
    for work, ours, theirs, gemm in rows:
        unit, scale = ("ms", 1e3) if ours > 1e-3 else ("µs", 1e6)
        print(
            f"{work:<58} {ours * scale:8.2f}{unit} {theirs * scale:8.2f}{unit} {ours / theirs:7.2f} "
            + (f"{gemm * scale:8.2f}{unit} {ours / gemm:7.2f}" if gemm else f"{'':>10} {'':>7}")
        )
    print()
    print(f"Load averages at the end: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")
    for dtype in ("float32", "float64") if args.only == "all" else ():
        print(f"Peak RSS of a 20-epoch `nablanet train --dtype {dtype}`: {peak_rss_of_training(dtype):.0f} MB")
    if args.only in ("all", "cnn"):
        rss = peak_rss_of_cnn_training()
        print(f"Peak RSS of one epoch of `nablanet train --conv 32,64 --dropout 0.5`: {rss:.0f} MB")


if __name__ == "__main__":
    main()
