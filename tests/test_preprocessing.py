import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nablanet as nn


def test_one_hot_columns():
    np.testing.assert_array_equal(nn.one_hot([2, 0, 1], 3), [[0, 1, 0], [0, 0, 1], [1, 0, 0]])


@pytest.mark.parametrize(
    "labels, message",
    [
        ([0, 3], r"labels must lie in \[0, 3\), received label 3"),
        ([-1], "received label -1"),
        ([0.5], "integer class labels"),
        ([[0, 1]], "1-D"),
    ],
)
def test_one_hot_refuses_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        nn.one_hot(labels, 3)


def test_min_max_scaling_uses_the_training_range():
    scaler = nn.MinMaxScaler.fit(np.array([0, 255], dtype=np.uint8))
    np.testing.assert_allclose(scaler.transform(np.array([0, 51, 255, 300])), [0, 0.2, 1, 300 / 255])


def test_min_max_scaling_refuses_constant_or_non_finite_data():
    with pytest.raises(ValueError, match="constant"):
        nn.MinMaxScaler.fit(np.ones(4))
    with pytest.raises(ValueError, match="NaN or inf"):
        nn.MinMaxScaler.fit(np.array([0.0, np.inf]))


@given(num_samples=st.integers(1, 500), batch_size=st.integers(1, 600), seed=st.integers(0, 1000))
def test_batch_indices_are_a_partition_of_a_permutation(num_samples, batch_size, seed):
    batches = nn.generate_batch_indices(num_samples, batch_size, np.random.default_rng(seed))
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(num_samples))
    assert all(batch.size == batch_size for batch in batches[:-1])
    assert 0 < batches[-1].size <= batch_size


@pytest.mark.parametrize("batch_size", [0, -5, 2.5])
def test_batch_size_must_be_positive(batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        nn.generate_batch_indices(10, batch_size)
