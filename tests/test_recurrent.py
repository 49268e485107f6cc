"""Sequence layers and the sequence loss: finite differences in float64 on random shapes, loop references,
the layout (features, T, b), and ``fit`` on (T, N) windows of token ids."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nablanet as nn
from nablanet.core.gradcheck import gradcheck

TOLERANCE = 1e-6
shapes = {
    "vocabulary": st.integers(2, 7),
    "steps": st.integers(1, 5),
    "batch": st.integers(1, 4),
    "seed": st.integers(0, 2**32 - 1),
}


def ids(rng, vocabulary, steps, batch):
    return rng.integers(0, vocabulary, (steps, batch)).astype(np.float64)


@given(dimension=st.integers(1, 4), **shapes)
def test_embedding_gradient_matches_central_differences(vocabulary, dimension, steps, batch, seed):
    rng = np.random.default_rng(seed)
    report = gradcheck(nn.Embedding(vocabulary, dimension, rng=rng), ids(rng, vocabulary, steps, batch))
    assert [result.name for result in report.results] == ["layer 0 Embedding.table"]  # ids have no gradient
    assert report.passed, report.table()


@given(**shapes)
def test_sequence_loss_gradient_matches_central_differences(vocabulary, steps, batch, seed):
    rng = np.random.default_rng(seed)
    Z = 3 * rng.normal(size=(vocabulary, steps, batch))
    report = gradcheck(nn.SequenceCrossEntropy(), Z, ids(rng, vocabulary, steps, batch), tolerance=TOLERANCE)
    assert report.passed, report.table()


@given(dimension=st.integers(1, 4), **shapes)
def test_embedding_then_dense_under_the_sequence_loss_matches_central_differences(
    vocabulary, dimension, steps, batch, seed
):
    rng = np.random.default_rng(seed)
    model = nn.Sequential([nn.Embedding(vocabulary, dimension, rng=rng), nn.Dense(dimension, vocabulary, rng=rng)])
    X, Y = ids(rng, vocabulary, steps, batch), ids(rng, vocabulary, steps, batch)
    report = gradcheck(model, X, Y, loss="sequence", tolerance=TOLERANCE)
    assert len(report.results) == 2 and report.passed, report.table()


def test_the_sequence_loss_is_the_mean_cross_entropy_over_positions_in_nats():
    rng = np.random.default_rng(0)
    Z, Y = rng.normal(size=(5, 3, 4)), ids(rng, 5, 3, 4)
    probabilities = np.exp(Z) / np.exp(Z).sum(axis=0)
    expected = np.mean([-np.log(probabilities[int(Y[t, i]), t, i]) for t in range(3) for i in range(4)])
    assert nn.SequenceCrossEntropy().value(Y, Z) == pytest.approx(expected, rel=1e-12)
    gradient = nn.SequenceCrossEntropy().gradient(Y, Z)  # per sequence: (ŷ − e_y) / T
    one_hot = np.zeros_like(Z)
    for t in range(3):
        for i in range(4):
            one_hot[int(Y[t, i]), t, i] = 1.0
    np.testing.assert_allclose(gradient, (probabilities - one_hot) / 3, rtol=1e-12, atol=1e-15)
    assert nn.SequenceCrossEntropy().value(Y, Z + 1000.0) == pytest.approx(expected, rel=1e-9)  # max-shifted


def test_the_sequence_loss_names_what_is_wrong_with_its_arguments():
    loss, Z = nn.SequenceCrossEntropy(), np.zeros((4, 3, 2))
    with pytest.raises(ValueError, match=r"Y must be \(T, b\) = \(3, 2\)"):
        loss.value(np.zeros((2, 3)), Z)
    with pytest.raises(ValueError, match=r"Y must hold token ids in \[0, 4\), received ids from 4 to 4"):
        loss.value(np.full((3, 2), 4.0), Z)
    with pytest.raises(ValueError, match=r"Z must be \(V, T, b\) float logits"):
        loss.value(np.zeros((3, 2)), np.zeros((4, 6)))
    with pytest.raises(ValueError, match="Y must hold whole numbers"):
        loss.value(np.full((3, 2), 0.5), Z)


def test_embedding_looks_up_rows_and_scatter_adds_repeated_tokens():
    layer = nn.Embedding(4, 2, rng=0)
    X = np.array([[1.0, 1.0], [3.0, 1.0]])  # token 1 three times
    output = layer.forward(X)
    assert output.shape == (2, 2, 2)
    np.testing.assert_array_equal(output[:, 1, 0], layer.table[3])
    gradient = np.arange(8.0).reshape(2, 2, 2)
    np.testing.assert_array_equal(layer.backward(gradient), np.zeros((2, 2)))
    expected = np.zeros((4, 2))
    for t in range(2):
        for i in range(2):
            expected[int(X[t, i])] += gradient[:, t, i] / 2  # the mean over b = 2 sequences
    np.testing.assert_array_equal(layer.table_gradient, expected)


@pytest.mark.parametrize(
    ("ids_given", "message"),
    [
        (np.array([[0.0, 5.0]]), r"input must hold token ids in \[0, 5\), received ids from 0 to 5"),
        (np.array([[-1.0, 2.0]]), r"received ids from -1 to 2"),
        (np.array([[0.5, 2.0]]), "input must hold whole numbers"),
        (np.array([[np.nan, 2.0]]), "received NaN or inf"),
        (np.zeros((2, 3, 1)), r"non-empty \(T, batch\) matrix of token ids"),
        (np.array([["a"]]), "must hold token ids"),
    ],
)
def test_embedding_refuses_what_is_not_token_ids(ids_given, message):
    with pytest.raises(ValueError, match=message):
        nn.Embedding(5, 2).forward(ids_given)


def test_dense_applies_to_every_position_of_a_sequence():
    rng = np.random.default_rng(0)
    layer, X = nn.Dense(3, 2, rng=0), rng.normal(size=(3, 4, 5))
    output = layer.forward(X)
    assert output.shape == (2, 4, 5)
    for t in range(4):
        np.testing.assert_allclose(output[:, t, :], layer.W @ X[:, t, :] + layer.b[:, None], rtol=1e-12)
    assert layer.build((3, 4)) == (2, 4)
    report = gradcheck(layer, X)
    assert report.passed, report.table()


def test_fit_trains_a_character_model_on_windows_of_token_ids():
    data = nn.load_words(sample=True)
    X, Y = nn.windows(data.train, 16, dtype=np.float32)
    model = nn.Sequential([nn.Embedding(27, 8, rng=0, dtype=np.float32), nn.Dense(8, 27, rng=0, dtype=np.float32)])
    history = model.fit(
        X,
        Y,
        loss="sequence",
        epochs=3,
        batch_size=64,
        optimizer=nn.Adam(0.02),
        rng=0,
        verbose=0,
        validation_data=nn.windows(data.validation, 16, dtype=np.float32),
    )
    assert history.loss[0] < np.log(27) and history.val_loss[-1] < 2.7  # below uniform: a bigram is learned
    assert history.accuracy == []  # a character model is measured in nats
    assert model.evaluate(*nn.windows(data.validation, 16), loss="sequence")["loss"] == pytest.approx(
        history.val_loss[-1], rel=1e-5
    )


def test_fit_checks_windows_against_the_model():
    model = nn.Sequential([nn.Embedding(27, 8, rng=0), nn.Dense(8, 27, rng=0)])
    X = np.zeros((16, 10))
    with pytest.raises(ValueError, match="Y has 15 rows, the model's output has 16 positions"):
        model.fit(X, np.zeros((15, 10)), loss="sequence", verbose=0)
    with pytest.raises(ValueError, match="Y holds token id 27, the model predicts only 27 tokens"):
        model.fit(X, np.full((16, 10), 27.0), loss="sequence", verbose=0)
    with pytest.raises(ValueError, match="Y must hold next-token ids, whole numbers"):
        model.fit(X, np.full((16, 10), 0.5), loss="sequence", verbose=0)
    with pytest.raises(ValueError, match="input must hold token ids in"):
        model.fit(np.full((16, 10), 30.0), X, loss="sequence", verbose=0)


RECURRENT = [nn.RNN, nn.LSTM]


@pytest.mark.parametrize("layer_class", RECURRENT)
@pytest.mark.parametrize("method", ["vectorized", "loop"])
@settings(max_examples=15)  # four layers × methods; the loop reference is held equal to the vectorised passes below
@given(
    features=st.integers(1, 4),
    hidden=st.integers(1, 4),
    steps=st.integers(1, 5),
    batch=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_recurrent_gradients_match_central_differences(layer_class, method, features, hidden, steps, batch, seed):
    rng = np.random.default_rng(seed)
    layer = layer_class(features, hidden, method=method, rng=rng)
    layer.weights = 1.5 * layer.weights + 0.1 * rng.normal(size=layer.weights.shape)  # a bias too, not only 0
    report = gradcheck(layer, rng.normal(size=(features, steps, batch)), tolerance=TOLERANCE)
    assert [result.name for result in report.results][-1] == "input" and report.passed, report.table()


@pytest.mark.parametrize("layer_class", RECURRENT)
@given(features=st.integers(1, 5), hidden=st.integers(1, 5), steps=st.integers(1, 7), seed=st.integers(0, 2**32 - 1))
def test_the_vectorized_passes_equal_the_loop_reference(layer_class, features, hidden, steps, seed):
    rng = np.random.default_rng(seed)
    X, G = rng.normal(size=(features, steps, 3)), rng.normal(size=(hidden, steps, 3))
    fast, loop = layer_class(features, hidden, rng=seed), layer_class(features, hidden, method="loop", rng=seed)
    np.testing.assert_allclose(fast.forward(X), loop.forward(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.backward(G), loop.backward(G), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.weights_gradient, loop.weights_gradient, rtol=0, atol=1e-12)


def test_an_rnn_step_by_hand():
    """n = h = 1, T = 2, b = 1: h_1 = tanh(w_x x_1 + b), h_2 = tanh(w_x x_2 + w_h h_1 + b), and BPTT."""
    layer = nn.RNN(1, 1)
    layer.weights = np.array([[0.5, -1.0, 0.1]])  # [w_x | w_h | b]
    H = layer.forward(np.array([[[1.0], [2.0]]]))
    h1 = np.tanh(0.5 + 0.1)
    h2 = np.tanh(1.0 - h1 + 0.1)
    np.testing.assert_allclose(H.ravel(), [h1, h2], rtol=1e-15)
    dX = layer.backward(np.array([[[0.0], [1.0]]]))  # the loss reads h_2 only: L = h_2
    delta2 = 1 - h2**2
    delta1 = (-1.0 * delta2) * (1 - h1**2)  # what h_1 gave to step 2 comes back through w_h
    np.testing.assert_allclose(dX.ravel(), [0.5 * delta1, 0.5 * delta2], rtol=1e-14)
    np.testing.assert_allclose(
        layer.weights_gradient, [[delta1 + 2 * delta2, h1 * delta2, delta1 + delta2]], rtol=1e-14
    )


@pytest.mark.parametrize("layer_class", RECURRENT)
def test_recurrent_layers_read_sequences_and_say_their_shapes(layer_class):
    layer = layer_class(3, 4, rng=0)
    assert layer.build((3, 7)) == (4, 7)
    with pytest.raises(ValueError, match=rf"{layer_class.__name__} expects sequences \(3, T\), received \(3,\)"):
        layer.build((3,))
    with pytest.raises(ValueError, match=r"input must be a batch of sequences \(features, T, batch\)"):
        layer.forward(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="input must have 3 features"):
        layer.forward(np.zeros((2, 5, 1)))
    with pytest.raises(ValueError, match="method must be one of"):
        layer_class(3, 4, method="fast")
    assert layer_class.from_config(layer.get_config()).get_config() == layer.get_config()
    with pytest.raises(RuntimeError, match="backward needs a forward pass first"):
        layer_class(3, 4).backward(np.zeros((4, 1, 1)))


def test_an_lstm_character_model_trains_saves_and_loads(tmp_path):
    data = nn.load_words(sample=True)
    X, Y = nn.windows(data.train, 12, dtype=np.float32)
    model = nn.Sequential(
        [
            nn.Embedding(27, 8, rng=0, dtype=np.float32),
            nn.LSTM(8, 16, rng=0, dtype=np.float32),
            nn.Dense(16, 27, init="glorot_uniform", rng=0, dtype=np.float32),
        ]
    )
    assert model.output_shape(12) == (27, 12)
    history = model.fit(X, Y, loss="sequence", epochs=2, batch_size=64, optimizer=nn.Adam(0.02), rng=0, verbose=0)
    assert history.loss[-1] < history.loss[0] < np.log(27)
    nn.save(model, tmp_path / "lstm.npz")
    loaded = nn.load(tmp_path / "lstm.npz")
    np.testing.assert_array_equal(loaded.predict_proba(X[:, :5]), model.predict_proba(X[:, :5]))


def test_the_arrays_a_file_declares_are_worked_out_without_allocating_them():
    from nablanet.core.layers import parameter_specs

    table = parameter_specs(nn.Embedding, {"vocabulary_size": 10**9, "dimension": 10**6})  # 8 PB, never made
    assert table == {"table": ((10**9, 10**6), np.dtype(np.float64))}
    weights = parameter_specs(nn.LSTM, {"input_size": 10**6, "hidden_size": 10**6, "dtype": "float32"})
    assert weights == {"weights": ((4 * 10**6, 2 * 10**6 + 1), np.dtype(np.float32))}


@pytest.mark.parametrize("layer", [nn.Tanh(), nn.ReLU(), nn.Sigmoid(), nn.LeakyReLU(0.1), nn.Dropout(0.5, rng=0)])
def test_activations_and_dropout_apply_to_every_position_of_a_sequence(layer):
    X = np.random.default_rng(0).normal(size=(3, 4, 2))
    output = layer.forward(X)
    assert output.shape == X.shape
    flat = type(layer)(**layer.get_config()) if not isinstance(layer, nn.Dropout) else None
    if flat is not None:  # the same numbers as on the (3, 4·2) matrix of the positions
        np.testing.assert_array_equal(output.reshape(3, -1), flat.forward(X.reshape(3, -1)))
    assert layer.backward(np.ones_like(output)).shape == X.shape
