"""A character LSTM trained on the `words` data set, in nablanet or in PyTorch (CPU): the peer processes of
bench.py's LSTM comparison.

The same model (Embedding(27, 32) → LSTM(32, 128) → Dense(128, 27), float32), the same initial weights
(PyTorch's are copied from nablanet's), the same data (windows of T = 32 token ids, side by side), the same
batches of 64 in the same order (``nablanet.generate_batch_indices`` with seed 0), the same loss (the mean
cross-entropy over the T·b positions) and optimizer (Adam, η = 0.002). Prints the mean batch loss, which agrees
between the two to float32 rounding:

    python benchmarks/char_lstm.py --framework nablanet --steps 50
    python benchmarks/char_lstm.py --framework torch --steps 50
"""

from __future__ import annotations

import argparse
import os

THREADS = 2
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(THREADS)

import numpy as np  # noqa: E402

import nablanet as nn  # noqa: E402

LENGTH, BATCH, DIMENSION, HIDDEN, LEARNING_RATE, SEED = 32, 64, 32, 128, 0.002, 0


def data(steps: int):
    """(X, Y): the first ``steps`` · 64 windows of the training stream, (T, N) float32 token ids."""
    words = nn.load_words()
    X, Y = nn.windows(words.train, LENGTH, dtype=np.float32)
    if X.shape[1] < steps * BATCH:
        raise SystemExit(f"the words hold {X.shape[1] // BATCH} batches, fewer than {steps}")
    return X[:, : steps * BATCH], Y[:, : steps * BATCH], words.vocabulary_size


def nablanet_model(vocabulary: int) -> nn.Sequential:
    return nn.Sequential(
        [
            nn.Embedding(vocabulary, DIMENSION, rng=SEED, dtype=np.float32),
            nn.LSTM(DIMENSION, HIDDEN, rng=SEED + 1, dtype=np.float32),
            nn.Dense(HIDDEN, vocabulary, init="glorot_uniform", rng=SEED + 2, dtype=np.float32),
        ]
    )


def train_nablanet(X, Y, vocabulary: int) -> float:
    model = nablanet_model(vocabulary)
    history = model.fit(
        X, Y, loss="sequence", epochs=1, batch_size=BATCH, optimizer=nn.Adam(LEARNING_RATE), rng=SEED, verbose=0
    )
    return history.loss[0]


def torch_model(vocabulary: int):
    """PyTorch's char-LSTM, its initial weights copied from :func:`nablanet_model`'s, and its Adam."""
    import torch

    torch.set_num_threads(THREADS)

    class CharLSTM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocabulary, DIMENSION)
            self.lstm = torch.nn.LSTM(DIMENSION, HIDDEN, batch_first=True)
            self.dense = torch.nn.Linear(HIDDEN, vocabulary)

        def forward(self, ids):  # (b, T) → logits (b, T, V)
            return self.dense(self.lstm(self.embedding(ids))[0])

    model = CharLSTM()
    ours = nablanet_model(vocabulary)  # the same initial weights
    embedding, lstm, dense = ours.layers
    gates = np.r_[0 : 2 * HIDDEN, 3 * HIDDEN : 4 * HIDDEN, 2 * HIDDEN : 3 * HIDDEN]  # i, f, o, g → i, f, g, o
    with torch.no_grad():
        model.embedding.weight.copy_(torch.from_numpy(embedding.table))
        model.lstm.weight_ih_l0.copy_(torch.from_numpy(lstm.W_x[gates]))
        model.lstm.weight_hh_l0.copy_(torch.from_numpy(lstm.W_h[gates]))
        model.lstm.bias_ih_l0.copy_(torch.from_numpy(lstm.b[gates]))
        model.lstm.bias_hh_l0.zero_()
        model.dense.weight.copy_(torch.from_numpy(dense.W))
        model.dense.bias.copy_(torch.from_numpy(dense.b))
    model.lstm.bias_hh_l0.requires_grad_(False)  # PyTorch's second bias: trained too, it would double b's steps
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE)
    return model, optimizer


def torch_steps(model, optimizer, X, Y, vocabulary: int, rng) -> float:
    """One epoch over the windows (X, Y), (T, N), in batches of 64 drawn by ``rng``: the mean batch loss."""
    import torch

    inputs = torch.from_numpy(X.T.astype(np.int64))  # (N, T)
    targets = torch.from_numpy(Y.T.astype(np.int64))
    total, batches = 0.0, nn.generate_batch_indices(X.shape[1], BATCH, rng)
    for indices in batches:
        rows = torch.from_numpy(indices)
        optimizer.zero_grad(set_to_none=True)
        logits = model(inputs[rows])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocabulary), targets[rows].reshape(-1))
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(batches)


def train_torch(X, Y, vocabulary: int) -> float:
    model, optimizer = torch_model(vocabulary)
    return torch_steps(model, optimizer, X, Y, vocabulary, np.random.default_rng(SEED))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("nablanet", "torch"), default="nablanet")
    parser.add_argument("--steps", type=int, default=50, help="training steps (batches of 64 windows)")
    args = parser.parse_args()
    X, Y, vocabulary = data(max(args.steps, 1))
    train = train_nablanet if args.framework == "nablanet" else train_torch
    print(f"{args.framework}: {args.steps} steps, mean batch loss {train(X, Y, vocabulary):.5f} nats")


if __name__ == "__main__":
    main()
