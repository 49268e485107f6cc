"""What `nablanet train` does, in PyTorch (CPU): the peer of bench.py's whole-process comparison.

Loads the bundled MNIST through nablanet (the same files and float32 matrix), trains a classifier of the
given hidden layers with mini-batches in a new random order every epoch, prints each epoch's mean batch
loss and training accuracy, then the test accuracy — the same work as

    nablanet train --hidden 256,128 --optimizer adam --batch-size 128 --epochs 5

    python benchmarks/torch_train.py --hidden 256,128 --optimizer adam --batch-size 128 --epochs 5

``--conv 32,64 --dropout 0.5`` builds what `nablanet train` builds with those options (3×3 Conv2d, ReLU and 2×2
MaxPool2d per entry, Flatten, Dropout, then the Dense layers).
"""

from __future__ import annotations

import argparse
import itertools
import os

THREADS = 2
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(THREADS)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import nablanet as nn  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="", help="hidden layer sizes, comma-separated (default: none)")
    parser.add_argument("--conv", default="", help="filters of each 3×3 convolution block, comma-separated")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout after the convolutions and hidden layers")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--lr", type=float, default=None, help="default: 0.01 for SGD, 0.001 for Adam")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    data = nn.load_mnist(np.float32)
    rows, labels = torch.from_numpy(data.X_train.T), torch.from_numpy(data.y_train)
    modules: list[torch.nn.Module] = []
    channels, side = 1, 28
    for filters in (int(size) for size in args.conv.split(",") if size):
        modules += [torch.nn.Conv2d(channels, filters, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        channels, side = filters, (side - 2) // 2
    if modules:
        modules.append(torch.nn.Flatten())
    drop = [torch.nn.Dropout(args.dropout)] if args.dropout else []
    modules += drop
    sizes = [channels * side * side, *(int(size) for size in args.hidden.split(",") if size), 10]
    for fan_in, fan_out in itertools.pairwise(sizes):
        modules += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU(), *drop]
    model = torch.nn.Sequential(*modules[: -1 - len(drop)])
    if args.conv:
        rows = rows.reshape(-1, 1, 28, 28)
    if args.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=args.lr or 1e-3)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr or 0.01)
    for epoch in range(args.epochs):
        order = torch.randperm(rows.shape[0])
        total, correct, batches = 0.0, 0, 0
        for start in range(0, rows.shape[0], args.batch_size):
            indices = order[start : start + args.batch_size]
            optimizer.zero_grad(set_to_none=True)
            scores = model(rows[indices])
            loss = torch.nn.functional.cross_entropy(scores, labels[indices])
            loss.backward()
            optimizer.step()
            total += loss.item()
            correct += int((scores.argmax(dim=1) == labels[indices]).sum())
            batches += 1
        print(
            f"Epoch {epoch + 1}/{args.epochs}: loss = {total / batches:.6f}, accuracy = {correct / rows.shape[0]:.6f}"
        )
    with torch.no_grad():
        model.eval()
        test = torch.from_numpy(data.X_test.T).reshape(-1, *rows.shape[1:])
        accuracy = (model(test).argmax(dim=1) == torch.from_numpy(data.y_test)).float()
    print(f"Test accuracy: {accuracy.mean().item():.4f}")


if __name__ == "__main__":
    main()
