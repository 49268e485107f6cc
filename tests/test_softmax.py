import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nablanet as nn


@given(
    classes=st.integers(2, 12),
    batch=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([0.1, 1.0, 10.0]),
)
def test_loop_einsum_and_vectorized_backward_agree(classes, batch, seed, scale):
    rng = np.random.default_rng(seed)
    Z = scale * rng.normal(size=(classes, batch))
    output_gradient = rng.normal(size=(classes, batch))
    gradients = {}
    for method in nn.Softmax.METHODS:
        layer = nn.Softmax(method)
        layer.forward(Z)
        gradients[method] = layer.backward(output_gradient)
    np.testing.assert_allclose(gradients["loop"], gradients["vectorized"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(gradients["einsum"], gradients["vectorized"], rtol=0, atol=1e-12)


def test_backward_is_the_notebooks_jacobian_product():
    a = nn.softmax(np.array([[1.0], [2.0], [0.5]]))
    layer = nn.Softmax()
    layer.forward(np.array([[1.0], [2.0], [0.5]]))
    g = np.array([[0.3], [-1.0], [2.0]])
    jacobian = np.array(
        [
            [a[0, 0] * (1 - a[0, 0]), -a[1, 0] * a[0, 0], -a[2, 0] * a[0, 0]],
            [-a[0, 0] * a[1, 0], a[1, 0] * (1 - a[1, 0]), -a[2, 0] * a[1, 0]],
            [-a[0, 0] * a[2, 0], -a[1, 0] * a[2, 0], a[2, 0] * (1 - a[2, 0])],
        ]
    )
    np.testing.assert_allclose(layer.backward(g), jacobian @ g, rtol=1e-14)


def test_forward_normalises_each_column_not_the_whole_matrix():
    Z = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    A = nn.Softmax().forward(Z)
    np.testing.assert_allclose(A.sum(axis=0), 1.0)
    expected = np.exp(Z) / np.exp(Z).sum(axis=0)
    np.testing.assert_allclose(A, expected, rtol=1e-14)


def test_large_logits_do_not_overflow():
    A = nn.softmax(np.array([[1000.0, -1000.0], [999.0, 0.0]]))
    assert np.isfinite(A).all()
    np.testing.assert_allclose(A[:, 0], [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1))])


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="method must be one of"):
        nn.Softmax("fast")
