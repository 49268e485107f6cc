"""Attention, the positional embedding, the transformer block and the composite layers they are made of."""

import copy
import json
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nablanet as nn
from nablanet.core.attention import (
    attention,
    attention_backward,
    attention_loop,
    attention_loop_backward,
    causal_mask,
)
from nablanet.core.gradcheck import gradcheck
from nablanet.core.layers import MAX_DEPTH, MAX_NESTED_LAYERS, parameter_specs, run
from nablanet.files.serialization import ModelFileError, write_archive
from nablanet.training.budget import cost

TOLERANCE = 1e-6


def rows(array):
    """(features, T, N) → (N, T, features): the row layout of the batched path."""
    return array.transpose(2, 1, 0)


# -- scaled dot-product attention: the loop reference and the batched path
@settings(max_examples=15, deadline=None)
@given(
    d_k=st.integers(1, 5),
    d_v=st.integers(1, 4),
    steps=st.integers(1, 6),
    count=st.integers(1, 4),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_batched_attention_equals_the_loop_reference(d_k, d_v, steps, count, causal, seed):
    rng = np.random.default_rng(seed)
    Q, K = rng.normal(size=(2, d_k, steps, count))
    V = rng.normal(size=(d_v, steps, count))
    output, A = attention_loop(Q, K, V, causal)
    batched_output, batched_A = attention(rows(Q), rows(K), rows(V), causal)
    np.testing.assert_allclose(rows(batched_output), output, rtol=0, atol=1e-12)
    np.testing.assert_allclose(batched_A.transpose(1, 2, 0), A, rtol=0, atol=1e-12)

    G = rng.normal(size=output.shape)
    reference = attention_loop_backward(G, Q, K, V, A)
    batched = attention_backward(rows(G), rows(Q), rows(K), rows(V), batched_A)
    for expected, found in zip(reference, batched, strict=True):
        np.testing.assert_allclose(rows(found), expected, rtol=0, atol=1e-12)


def test_attention_by_hand_on_two_tokens():
    # q·k/√d_k with d_k = 1: scores [[1·1, 1·0], [2·1, 2·0]] → softmax rows; causal: query 0 sees key 0 only
    Q = np.array([[[1.0], [2.0]]]).reshape(1, 2, 1)
    K = np.array([1.0, 0.0]).reshape(1, 2, 1)
    V = np.array([10.0, 20.0]).reshape(1, 2, 1)
    output, A = attention_loop(Q, K, V, causal=False)
    first = np.exp(1) / (np.exp(1) + 1)
    second = np.exp(2) / (np.exp(2) + 1)
    np.testing.assert_allclose(A[:, :, 0], [[first, 1 - first], [second, 1 - second]])
    np.testing.assert_allclose(output[0, :, 0], [10 * first + 20 * (1 - first), 10 * second + 20 * (1 - second)])
    output, A = attention_loop(Q, K, V, causal=True)
    np.testing.assert_allclose(A[:, :, 0], [[1.0, 0.0], [second, 1 - second]], atol=1e-300)
    np.testing.assert_allclose(output[0, 0, 0], 10.0)


def test_the_causal_mask_hides_the_future():
    assert np.isneginf(causal_mask(4)[np.triu_indices(4, 1)]).all()
    assert (causal_mask(4)[np.tril_indices(4)] == 0).all()


# -- the layers against finite differences (float64, random shapes)
LAYER_CASES = {
    "MultiHeadSelfAttention": lambda d, h, rng: nn.MultiHeadSelfAttention(d, h, rng=rng),
    "MultiHeadSelfAttention(not causal)": lambda d, h, rng: nn.MultiHeadSelfAttention(d, h, causal=False, rng=rng),
    "PositionalEmbedding": lambda d, h, rng: nn.PositionalEmbedding(7, d, rng=rng),
    "TransformerBlock": lambda d, h, rng: nn.TransformerBlock(d, h, hidden=5, rng=rng),
    "Residual(Dense, Tanh)": lambda d, h, rng: nn.Residual([nn.Dense(d, d, init="he_normal", rng=rng), nn.Tanh()]),
}


@pytest.mark.parametrize("name", LAYER_CASES)
@settings(max_examples=4, deadline=None)
@given(heads=st.integers(1, 3), head_size=st.integers(2, 3), steps=st.integers(1, 6), batch=st.integers(1, 3))
def test_every_attention_layer_passes_finite_differences(name, heads, head_size, steps, batch):
    rng = np.random.default_rng(heads * 100 + head_size * 10 + steps)
    d_model = heads * head_size
    layer = LAYER_CASES[name](d_model, heads, rng)
    X = rng.normal(size=(d_model, steps, batch))
    report = gradcheck(layer, X, tolerance=TOLERANCE)
    assert report.passed, report.table()


def test_a_model_of_blocks_passes_finite_differences_with_a_loss():
    rng = np.random.default_rng(3)
    model = nn.Sequential(
        [nn.PositionalEmbedding(5, 4, rng=rng), nn.TransformerBlock(4, 2, hidden=6, rng=rng), nn.Dense(4, 3, rng=rng)]
    )
    report = gradcheck(model, rng.normal(size=(4, 5, 2)))
    assert report.passed, report.table()


# -- multi-head self-attention
def heads_by_loop(layer, X):
    """The layer's output computed head by head with the loop reference, from its weight views."""
    d_model = X.shape[0]
    d_k = d_model // layer.heads
    bias = layer.projections.b
    Q = np.einsum("ij,jtb->itb", layer.W_q, X) + bias[:d_model, None, None]
    K = np.einsum("ij,jtb->itb", layer.W_k, X) + bias[d_model : 2 * d_model, None, None]
    V = np.einsum("ij,jtb->itb", layer.W_v, X) + bias[2 * d_model :, None, None]
    heads = [
        attention_loop(Q[j * d_k : (j + 1) * d_k], K[j * d_k : (j + 1) * d_k], V[j * d_k : (j + 1) * d_k], True)
        for j in range(layer.heads)
    ]
    stacked = np.concatenate([output for output, _ in heads])
    maps = np.stack([A for _, A in heads])  # (h, T, T, b)
    return np.einsum("ij,jtb->itb", layer.W_o, stacked) + layer.layers[1].b[:, None, None], maps


def test_multi_head_attention_equals_its_heads_computed_one_by_one():
    rng = np.random.default_rng(0)
    layer = nn.MultiHeadSelfAttention(6, 3, rng=rng)
    X = rng.normal(size=(6, 5, 4))
    expected, maps = heads_by_loop(layer, X)
    np.testing.assert_allclose(layer.forward(X), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.attention_maps, maps, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.attention_maps.sum(axis=2), 1.0, atol=1e-12)


def test_a_position_never_reads_the_future():
    rng = np.random.default_rng(1)
    block = nn.TransformerBlock(4, 2, rng=rng)
    X = rng.normal(size=(4, 6, 2))
    before = block.forward(X).copy()
    X[:, 4:, :] += 10.0  # change positions 4 and 5
    after = block.forward(X)
    np.testing.assert_array_equal(after[:, :4], before[:, :4])
    assert not np.allclose(after[:, 4:], before[:, 4:])


def test_heads_must_divide_the_features():
    with pytest.raises(ValueError, match="heads must divide d_model = 6, received: 4"):
        nn.MultiHeadSelfAttention(6, 4)


def test_attention_refuses_a_matrix_and_the_wrong_features():
    layer = nn.MultiHeadSelfAttention(4, 2)
    with pytest.raises(ValueError, match=r"batch of sequences \(d, T, b\)"):
        layer.forward(np.ones((4, 3)))
    with pytest.raises(ValueError, match="must have 4 features"):
        layer.forward(np.ones((5, 3, 2)))


# -- the positional embedding
def test_the_positional_embedding_refuses_sequences_longer_than_its_context():
    layer = nn.PositionalEmbedding(4, 3)
    with pytest.raises(ValueError, match="sequences of 5 positions are longer than the context of 4"):
        layer.forward(np.zeros((3, 5, 1)))
    with pytest.raises(ValueError, match="longer than the context of 4"):
        nn.Sequential([nn.PositionalEmbedding(4, 3), nn.Dense(3, 2)]).shapes((3, 5))
    assert layer.build((3, 4)) == (3, 4)


def test_the_positional_embedding_learns_only_the_positions_it_saw():
    layer = nn.PositionalEmbedding(5, 2, rng=0)
    layer.forward(np.zeros((2, 3, 4)))
    layer.backward(np.ones((2, 3, 4)))
    np.testing.assert_array_equal(layer.parameters()[0].gradient, [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0]])


# -- composite layers: the contract
def test_a_composite_names_and_orders_its_sub_layers_parameters():
    block = nn.TransformerBlock(4, 2, hidden=6, rng=0)
    names = [parameter.name for parameter in block.parameters()]
    weights = [name for name in names if name.endswith("weights")]
    assert weights == ["0.1.0.weights", "0.1.1.weights", "1.1.weights", "1.3.weights"]  # MHA's two, the MLP's two
    assert len(set(names)) == len(names)
    assert all(name.startswith(("0.", "1.")) for name in names)
    model = nn.Sequential([block])
    assert next(iter(model.get_weights())).startswith("layer0.0.0.")
    with pytest.raises(ValueError, match="belongs to another composite already"):
        nn.Residual([block.layers[0]])


def test_switching_a_composites_mode_switches_its_sub_layers():
    dropout = nn.Dropout(0.5)
    block = nn.Residual([nn.Dense(3, 3), dropout])
    nn.Sequential([block]).train(False)
    assert dropout.training is False
    block.training = True
    assert dropout.training is True


def test_an_inference_pass_leaves_the_sub_layers_cache_alone():
    rng = np.random.default_rng(0)
    model = nn.Sequential([nn.TransformerBlock(4, 2, rng=rng)])
    X = rng.normal(size=(4, 3, 2))
    model.forward(X)
    attention = model.layers[0].attention
    maps, cached_input = attention.attention_maps.copy(), attention.input
    run(model.layers, rng.normal(size=(4, 3, 5)), inference=True)  # what predictions and evaluations run
    np.testing.assert_array_equal(attention.attention_maps, maps)
    assert attention.input is cached_input
    clone = copy.copy(model.layers[0])
    assert clone.layers[0] is not model.layers[0].layers[0]
    assert clone.parameters()[0] is model.layers[0].parameters()[0]  # the weights are shared


def test_a_residual_config_nests_its_layers_and_rebuilds_them():
    block = nn.Residual([nn.Dense(3, 3, rng=0), nn.ReLU(), nn.Residual([nn.Dense(3, 3, rng=1)])])
    config = block.get_config()
    assert config == json.loads(json.dumps(config))
    assert [entry["type"] for entry in config["layers"]] == ["Dense", "ReLU", "Residual"]
    rebuilt = nn.Residual.from_config(config)
    assert rebuilt.get_config() == config
    assert [p.name for p in rebuilt.parameters()] == ["0.weights", "2.0.weights"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"layers": []}, "no list of layers"),
        ({"layers": [{"type": "os.system", "config": {}}]}, "unknown type 'os.system'"),
        ({"layers": [{"type": "Dense", "config": {"input_size": -1, "output_size": 2}}]}, "sub-layer 0: input_size"),
        ({"layers": [{"type": "Dense"}], "rng": 3}, r"must be \{'layers'"),
    ],
)
def test_a_malformed_residual_config_is_refused(config, message):
    with pytest.raises(ValueError, match=message):
        nn.Residual.from_config(config)


def nested(depth):
    config = {"type": "ReLU", "config": {}}
    for _ in range(depth):
        config = {"type": "Residual", "config": {"layers": [config]}}
    return config


def test_nesting_is_bounded_in_depth_and_size_before_anything_is_built():
    nn.Sequential.from_config({"layers": [nested(MAX_DEPTH - 1)]})
    with pytest.raises(ValueError, match=f"nest more than {MAX_DEPTH} deep"):
        nn.Sequential.from_config({"layers": [nested(MAX_DEPTH)]})
    wide = {"type": "Residual", "config": {"layers": [{"type": "ReLU", "config": {}}] * (MAX_NESTED_LAYERS + 1)}}
    with pytest.raises(ValueError, match=f"more than {MAX_NESTED_LAYERS} nested layers"):
        nn.Sequential.from_config({"layers": [wide]})


def test_parameter_specs_of_a_huge_block_allocate_nothing():
    tracemalloc.start()
    specs = parameter_specs(nn.TransformerBlock, {"d_model": 4096, "heads": 64, "hidden": 16384})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert specs["0.1.0.weights"][0] == (3 * 4096, 4097)
    assert peak < 2**20


def test_a_transformer_saves_and_loads_with_the_same_outputs(tmp_path):
    rng = np.random.default_rng(0)
    model = nn.Sequential(
        [
            nn.Embedding(5, 4, rng=rng),
            nn.PositionalEmbedding(6, 4, rng=rng),
            nn.TransformerBlock(4, 2, hidden=8, rng=rng),
            nn.Residual([nn.Dense(4, 4, rng=rng), nn.Tanh()]),
            nn.Dense(4, 5, rng=rng),
        ]
    )
    X = rng.integers(0, 5, size=(6, 3)).astype(np.float64)  # token ids (T, b)
    loaded = nn.load(nn.save(model, tmp_path / "model.npz"))
    np.testing.assert_array_equal(run(loaded.layers, X, inference=True), run(model.layers, X, inference=True))
    assert loaded.get_config() == model.get_config()
    block_row = next(line for line in loaded.summary((6,)).splitlines() if line.startswith("TransformerBlock"))
    assert block_row.split()[1:] == ["(4,", "6)", f"{sum(p.value.size for p in loaded.layers[2].parameters()):,}"]


# -- hostile model files: huge layers are refused before anything is allocated
def hostile_file(path, layers):
    """A model file whose config declares ``layers`` and whose arrays are tiny stand-ins of the right names."""
    config = {"layers": layers, "metadata": {}}
    try:
        specs = nn.Sequential.parameter_specs(config)
    except ValueError:
        specs = {}
    arrays = {name: np.zeros((1,) * len(shape), dtype) for name, (shape, dtype) in specs.items()}
    write_archive(path, "model", config, arrays)
    return path


HOSTILE = {
    "huge vocabulary": ([{"type": "Embedding", "config": {"vocabulary_size": 2**31, "dimension": 64}}], "MiB"),
    "huge embedding": ([{"type": "PositionalEmbedding", "config": {"context": 2**20, "d_model": 2**20}}], "MiB"),
    "huge context": ([{"type": "PositionalEmbedding", "config": {"context": 2**40, "d_model": 8}}], "larger|MiB"),
    "huge heads": ([{"type": "MultiHeadSelfAttention", "config": {"d_model": 2**30, "heads": 2**30}}], "larger|MiB"),
    "huge block": ([{"type": "TransformerBlock", "config": {"d_model": 4096, "heads": 8}}], "MiB"),
    "deep nesting": ([nested(MAX_DEPTH + 5)], "nest more than"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_transformer_file_is_refused_before_allocating(tmp_path, case):
    layers, message = HOSTILE[case]
    path = hostile_file(tmp_path / "hostile.npz", layers)
    tracemalloc.start()
    with pytest.raises(ModelFileError, match=message):
        nn.load(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 2**20


def test_a_composite_carries_its_sub_layers_buffers_to_the_model_file(tmp_path):
    rng = np.random.default_rng(0)
    model = nn.Sequential([nn.Dense(3, 4, rng=rng), nn.Residual([nn.BatchNorm(4), nn.Dense(4, 4, rng=rng)])])
    model.forward(rng.normal(size=(3, 16)))  # training: the running statistics move
    buffers = [buffer.name for buffer in model.layers[1].buffers()]
    assert buffers and all(name.startswith("0.") for name in buffers)
    loaded = nn.load(nn.save(model, tmp_path / "model.npz"))
    for name, array in model.get_weights().items():
        np.testing.assert_array_equal(loaded.get_weights()[name], array)


def test_attention_is_priced_by_its_maps_which_grow_as_the_square_of_the_length():
    model = nn.Sequential([nn.TransformerBlock(8, 2, hidden=8)])
    short, long = (cost(model.layers, model.shapes((8, T)), (8, T)) for T in (16, 64))
    assert long.values > 2 * 64 * 64  # the two heads' (T, T) maps of one sample
    assert long.operations > 6 * short.operations  # 4× the length: the linear parts 4×, the maps 16×
