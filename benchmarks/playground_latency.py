"""Server-side latency of one playground prediction: a drawn digit (a 280×280 PNG) through the whole
request — PNG decoding, the `predict` preprocessing, the forward pass layer by layer, the softmax
Jacobian, every picture of the inside, the JSON — for the MLP 784-256-128-10 (float32).

    python benchmarks/playground_latency.py [--requests 300]

Prints the median and 95th percentile of the time measured inside the server (``server_ms``: from the
received body to the finished view) and of the whole request through Starlette's test client.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from playground_drawing import drawn_png
from starlette.testclient import TestClient

import nablanet as nn
from nablanet.app.playground import server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    for name, settings in {"mlp": {"hidden": [256, 128]}, "cnn": {"conv": [32, 64]}}.items():
        model = nn.build_classifier(784, 10, dtype="float32", rng=0, **settings)
        model.metadata = {"dataset": "mnist"}
        (folder / name).mkdir()
        nn.save(model, folder / name / "model.npz")
        served = server.open_model(folder / name / "model.npz", 0)
        with TestClient(server.create_app([served], folder), base_url="http://127.0.0.1") as client:
            inside, whole = [], []
            for number in range(args.requests + 20):
                body = drawn_png("7" if number % 2 else "1")
                start = time.perf_counter()
                response = client.post("/api/models/0/predict", content=body, headers={"content-type": "image/png"})
                elapsed = (time.perf_counter() - start) * 1000
                if number >= 20:  # after a warm-up
                    inside.append(response.json()["server_ms"])
                    whole.append(elapsed)
        for label, values in (("inside the server", inside), ("whole request", whole)):
            p95 = statistics.quantiles(values, n=20)[-1]
            print(
                f"{name} {model.summary().splitlines()[-1]}: {label}: median {statistics.median(values):.2f} ms, "
                f"95th percentile {p95:.2f} ms ({args.requests} requests)"
            )


if __name__ == "__main__":
    main()
