"""What `nablanet train --dataset words --model transformer` does, in PyTorch (CPU): the same model, the same
initial weights, the same data in the same order, the same optimizer and the same number of steps.

    nablanet train --dataset words --model transformer --optimizer adam --batch-size 32 --epochs 2 --seed 0
    python benchmarks/torch_lm.py --batch-size 32 --epochs 2 --seed 0
    python benchmarks/torch_lm.py --check    # one batch in float64: the same loss and gradients, to ~1e-15

* data: the `words` windows of --context characters, as nablanet cuts them (nablanet.app.language.load_text);
* initial weights: nablanet builds its model with `numpy.random.default_rng(seed)`, exactly as `nablanet train`
  does, and every array is copied into the PyTorch modules (so "the same initialisation scheme" is literal);
* data order: the same generator then draws each epoch's permutation (nablanet.core.preprocessing
  .generate_batch_indices), as nablanet's `fit` does;
* the model: token embedding + learnt positional embedding, pre-norm blocks x + MHA(LN(x)), x + MLP(LN(x)) with
  causal attention, a final LayerNorm and a linear map to the V logits, written with PyTorch's own
  functions (`scaled_dot_product_attention`, `layer_norm`, `linear`);
* Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8, nablanet's defaults) with the same learning rate and schedule (each
  epoch's rate from nablanet's own `make_schedule`), the loss the mean cross-entropy over the T·b positions.

Prints each epoch's mean batch loss and validation loss (nats per character) and the seconds of training,
as `nablanet train` does.
"""

from __future__ import annotations

import argparse
import math
import os
import time

THREADS = int(os.environ.get("NABLANET_BENCH_THREADS", "2"))  # 1 on a machine whose cores are all busy
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(THREADS)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from nablanet.app import language  # noqa: E402
from nablanet.core.losses import LOSSES  # noqa: E402
from nablanet.core.preprocessing import generate_batch_indices  # noqa: E402
from nablanet.core.schedules import make_schedule  # noqa: E402

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_weights(reference) -> dict[str, np.ndarray]:
    """Every array of a nablanet transformer (Embedding, PositionalEmbedding, TransformerBlock…, LayerNorm,
    Dense), by the name :class:`Transformer` uses, in PyTorch's layout (outputs × inputs; a bias apart)."""
    embedding, position, *blocks, norm, head = reference.layers
    weights = {"embedding": embedding.table, "position": position.P.T}  # (V, d); (context, d)
    for n, block in enumerate(blocks):
        (norm1, attention), (norm2, hidden, _, output) = block.layers[0].layers, block.layers[1].layers
        named = {"qkv": attention.projections, "attention_output": attention.layers[1], "hidden": hidden}
        for name, layer in {**named, "mlp_output": output}.items():  # qkv: [W_q; W_k; W_v], (3d, d)
            weights[f"block{n}_{name}"], weights[f"block{n}_{name}_bias"] = layer.W, layer.b
        for name, layer in (("norm1", norm1), ("norm2", norm2)):
            weights[f"block{n}_{name}_gamma"], weights[f"block{n}_{name}_beta"] = layer.gamma, layer.beta
    weights["norm_gamma"], weights["norm_beta"] = norm.gamma, norm.beta
    weights["head"], weights["head_bias"] = head.W, head.b
    return weights


class Transformer(torch.nn.Module):
    """The nablanet transformer, its weights copied from ``reference`` (a model of
    :func:`nablanet.app.language.build_text_model`): the same computation, written with PyTorch's functions."""

    def __init__(self, reference, heads: int):
        super().__init__()
        self.heads, self.blocks = heads, len(reference.layers) - 4
        self.epsilon = reference.layers[-2].epsilon
        self.w = torch.nn.ParameterDict(
            {name: torch.from_numpy(np.array(array)) for name, array in torch_weights(reference).items()}
        )

    def norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}_gamma"], self.w[f"{name}_beta"], eps=self.epsilon)

    def linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[name], self.w[f"{name}_bias"])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits (b, T, V) of ids (b, T)."""
        x = F.embedding(ids, self.w["embedding"]) + self.w["position"][: ids.shape[1]]
        b, steps, d = x.shape
        for n in range(self.blocks):
            qkv = self.linear(self.norm(x, f"block{n}_norm1"), f"block{n}_qkv")
            q, k, v = qkv.view(b, steps, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (b, h, T, d_k)
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, steps, d)
            x = x + self.linear(attended, f"block{n}_attention_output")
            hidden = F.relu(self.linear(self.norm(x, f"block{n}_norm2"), f"block{n}_hidden"))
            x = x + self.linear(hidden, f"block{n}_mlp_output")
        return self.linear(self.norm(x, "norm"), "head")


def train_epoch(model, optimizer, X: torch.Tensor, Y: torch.Tensor, batch_size: int, rng) -> float:
    """One epoch over the windows X, Y (N, T) in the batches ``rng`` draws, as nablanet's ``fit`` draws them: the
    mean batch loss."""
    batches = generate_batch_indices(X.shape[0], batch_size, rng)
    total = 0.0
    for indices in batches:
        rows = torch.from_numpy(indices)
        optimizer.zero_grad(set_to_none=True)
        logits = model(X[rows])
        loss = F.cross_entropy(logits.flatten(0, 1), Y[rows].flatten())
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / len(batches)


def validation_loss(model: torch.nn.Module, X: torch.Tensor, Y: torch.Tensor, chunk: int = 512) -> float:
    """The mean cross-entropy over every position of the validation windows, in nats."""
    total = 0.0
    with torch.no_grad():
        for start in range(0, X.shape[0], chunk):
            logits = model(X[start : start + chunk])
            total += F.cross_entropy(logits.flatten(0, 1), Y[start : start + chunk].flatten(), reduction="sum").item()
    return total / Y.numel()


def check_gradients(data, args) -> None:
    """Print the largest differences between nablanet's and PyTorch's loss and gradients on one batch, both in
    float64 from the same weights: the two models are the same function when these are ~1e-15."""
    reference = language.build_text_model(
        "transformer", data.size, context=args.context, embed=args.embed, heads=args.heads, blocks=args.blocks,
        dtype=np.float64, rng=args.seed,
    )  # fmt: skip
    model = Transformer(reference, args.heads).double()
    X, Y = data.X_train[:, : args.batch_size].astype(np.float64), data.Y_train[:, : args.batch_size]
    loss, gradient = LOSSES["sequence"]().value_and_gradient(Y, reference.forward(X))
    for layer in reversed(reference.layers):
        gradient = layer.backward(gradient)
    theirs = F.cross_entropy(model(torch.from_numpy(X.T.astype(np.int64))).flatten(0, 1),
                             torch.from_numpy(Y.T.astype(np.int64)).flatten())  # fmt: skip
    theirs.backward()
    for parameter in reference.parameters():  # torch_weights names the gradients when they stand in the values
        parameter.value, parameter.gradient = parameter.gradient, parameter.value
    ours = torch_weights(reference)
    worst = max(
        (float(np.abs(ours[name] - model.w[name].grad.numpy()).max() / np.abs(model.w[name].grad.numpy()).max()), name)
        for name in ours
    )
    print(f"loss: nablanet {loss:.15f}, PyTorch {theirs.item():.15f}")
    print(f"largest relative difference of a gradient: {worst[0]:.1e} ({worst[1]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=32)
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--schedule", choices=("constant", "cosine"), default="constant", help="as nablanet's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", choices=tuple(TORCH_DTYPES), default="float32")
    parser.add_argument("--sample", action="store_true", help="the 3,000 bundled words (nablanet's words-sample)")
    parser.add_argument(
        "--check", action="store_true", help="compare the loss and gradients of one batch in float64, then stop"
    )
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    data = language.load_text("words-sample" if args.sample else "words", args.context, np.dtype(args.dtype))
    if args.check:
        check_gradients(data, args)
        return
    rng = np.random.default_rng(args.seed)  # as nablanet train: the weights, then every epoch's order
    reference = language.build_text_model(
        "transformer",
        data.size,
        context=args.context,
        embed=args.embed,
        heads=args.heads,
        blocks=args.blocks,
        dtype=args.dtype,
        rng=rng,
    )
    model = Transformer(reference, args.heads)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    X, Y = (torch.from_numpy(array.T.astype(np.int64)) for array in (data.X_train, data.Y_train))  # (N, T)
    X_val, Y_val = (torch.from_numpy(array.T.astype(np.int64)) for array in (data.X_val, data.Y_val))
    schedule = make_schedule(args.schedule, args.lr, args.epochs)  # nablanet's: the learning rate of each epoch
    for epoch in range(args.epochs):
        for group in optimizer.param_groups:
            group["lr"] = float(schedule(epoch))
        print(
            f"Epoch {epoch + 1}/{args.epochs}: loss = {train_epoch(model, optimizer, X, Y, args.batch_size, rng):.6f}, "
            f"val_loss = {validation_loss(model, X_val, Y_val):.6f}",
            flush=True,
        )
    loss = validation_loss(model, X_val, Y_val)
    print(f"Validation loss: {loss:.4f} nats per character ({loss / math.log(2):.3f} bits)")
    print(f"Time: {time.perf_counter() - started:.1f} s for loading and training")


if __name__ == "__main__":
    main()
