"""The checker (nablanet.exercises): a learner's solution, written as a learner would (plain NumPy, not
nablanet's code), passes every check on any shapes; each mistake learners really make, written out as a real
wrong implementation, is flagged with its own diagnosis (the mutation suite)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nablanet as nn
from nablanet.exercises.checker import check

# ----- the learner's solutions, as the exercise notebooks write them -------------------------------------


class Dense(nn.Layer):
    """The bias trick: W̃ = [W | b], Z = W X + b 1ᵀ; ∇_W̃ L = (1/b) ∇_Z L X̃ᵀ; ∇_X L = Wᵀ ∇_Z L."""

    def __init__(self, input_size, output_size):
        self.weights = np.zeros((output_size, input_size + 1))
        self.weights_gradient = np.zeros_like(self.weights)
        self._parameters = [nn.Parameter("weights", self.weights, self.weights_gradient)]

    def parameters(self):
        return self._parameters

    def forward(self, input):
        self.input = input
        return self.weights[:, :-1] @ input + self.weights[:, -1:]

    def gradients(self, output_gradient):
        """(∇_W̃ L, ∇_X L) with the weights as they are."""
        b = self.input.shape[1]
        with_ones = np.vstack([self.input, np.ones((1, b))])
        return output_gradient @ with_ones.T / b, self.weights[:, :-1].T @ output_gradient

    def backward(self, output_gradient, learning_rate=None):
        weights_gradient, input_gradient = self.gradients(output_gradient)
        self.weights_gradient[...] = weights_gradient
        if learning_rate is not None:
            self.weights -= learning_rate * self.weights_gradient
        return input_gradient


class ReLU(nn.Layer):
    def forward(self, input):
        self.input = input
        return np.maximum(input, 0)

    def backward(self, output_gradient, learning_rate=None):
        return output_gradient * (self.input > 0)


class Softmax(nn.Layer):
    def forward(self, input):
        exponentials = np.exp(input - input.max(axis=0, keepdims=True))
        self.output = exponentials / exponentials.sum(axis=0, keepdims=True)
        return self.output

    def backward(self, output_gradient, learning_rate=None):
        a = self.output  # (diag(a) − a aᵀ) g = a ⊙ g − a (aᵀ g), column by column
        return a * output_gradient - a * np.sum(a * output_gradient, axis=0, keepdims=True)


class MaxPool2D(nn.Layer):
    """Loops over every window of every channel of every sample; the gradient goes to the window's winner."""

    def __init__(self, pool_size, *, input_shape):
        self.p, self.shape = pool_size, input_shape

    def windows(self):
        channels, height, width = self.shape
        p = self.p
        for c in range(channels):
            for i in range(height // p):
                for j in range(width // p):
                    yield c, i, j, (c, slice(p * i, p * i + p), slice(p * j, p * j + p))

    def forward(self, input):
        self.input = input
        channels, height, width = self.shape
        out = np.zeros((channels, height // self.p, width // self.p, input.shape[1]))
        for n in range(input.shape[1]):
            image = input[:, n].reshape(self.shape)
            for c, i, j, window in self.windows():
                out[c, i, j, n] = image[window].max()
        return out.reshape(-1, input.shape[1])

    def route(self, window_values, gradient):
        """The window's gradient: all of it to the first maximum."""
        routed = np.zeros_like(window_values)
        routed[np.unravel_index(np.argmax(window_values), window_values.shape)] = gradient
        return routed

    def backward(self, output_gradient, learning_rate=None):
        channels, height, width = self.shape
        gradient = output_gradient.reshape(channels, height // self.p, width // self.p, -1)
        dx = np.zeros((channels, height, width, self.input.shape[1]))
        for n in range(self.input.shape[1]):
            image = self.input[:, n].reshape(self.shape)
            for c, i, j, window in self.windows():
                dx[(*window, n)] += self.route(image[window], gradient[c, i, j, n])
        return np.moveaxis(dx, -1, 0).reshape(self.input.shape[1], -1).T


class Conv2D(nn.Layer):
    """Cross-correlation with loops: Z[f, i, j] = Σ_{c,u,v} W[f, c, u, v] X[c, i + u, j + v] + b_f."""

    def __init__(self, in_channels, out_channels, kernel_size, *, input_shape):
        self.k, self.shape = kernel_size, input_shape
        self.weights = np.zeros((out_channels, in_channels * kernel_size**2 + 1))
        self.weights_gradient = np.zeros_like(self.weights)
        self._parameters = [nn.Parameter("weights", self.weights, self.weights_gradient)]

    def parameters(self):
        return self._parameters

    def kernel(self, weights):
        channels = self.shape[0]
        return weights[:, :-1].reshape(len(weights), channels, self.k, self.k)

    def positions(self):
        _, height, width = self.shape
        for i in range(height - self.k + 1):
            for j in range(width - self.k + 1):
                yield i, j, (slice(None), slice(i, i + self.k), slice(j, j + self.k))

    def forward(self, input):
        self.input = input
        _, height, width = self.shape
        W, b = self.kernel(self.weights), self.weights[:, -1]
        out = np.zeros((len(W), height - self.k + 1, width - self.k + 1, input.shape[1]))
        for n in range(input.shape[1]):
            image = input[:, n].reshape(self.shape)
            for i, j, window in self.positions():
                out[:, i, j, n] = np.sum(W * image[window], axis=(1, 2, 3)) + b
        return out.reshape(-1, input.shape[1])

    def backward(self, output_gradient, learning_rate=None):
        _, height, width = self.shape
        batch = self.input.shape[1]
        W = self.kernel(self.weights)
        delta = output_gradient.reshape(len(W), height - self.k + 1, width - self.k + 1, batch)
        dW, db, dx = np.zeros_like(W), np.zeros(len(W)), np.zeros((batch, *self.shape))
        for n in range(batch):
            image = self.input[:, n].reshape(self.shape)
            for i, j, window in self.positions():
                g = delta[:, i, j, n]
                dW += g[:, None, None, None] * image[window]
                db += g
                dx[(n, *window)] += np.tensordot(g, W, axes=1)
        self.weights_gradient[:, :-1] = dW.reshape(len(W), -1) / batch
        self.weights_gradient[:, -1] = db / batch
        if learning_rate is not None:
            self.weights -= learning_rate * self.weights_gradient
        return dx.reshape(batch, -1).T


class RNN(nn.Layer):
    """h_t = tanh(W_x x_t + W_h h_{t−1} + b) for t = 1 … T; backward through time, step T first."""

    def __init__(self, input_size, hidden_size):
        self.n = input_size
        self.weights = np.zeros((hidden_size, input_size + hidden_size + 1))
        self.weights_gradient = np.zeros_like(self.weights)
        self._parameters = [nn.Parameter("weights", self.weights, self.weights_gradient)]

    def parameters(self):
        return self._parameters

    def split(self):
        return self.weights[:, : self.n], self.weights[:, self.n : -1], self.weights[:, -1:]

    def forward(self, input):
        self.input = input
        W_x, W_h, b = self.split()
        _, steps, batch = input.shape
        self.states = [np.zeros((len(W_h), batch))]  # h_0 = 0
        for t in range(steps):
            self.states.append(np.tanh(W_x @ input[:, t] + W_h @ self.states[-1] + b))
        return np.stack(self.states[1:], axis=1)

    def deltas(self, output_gradient):
        """δ_t = (∇_{h_t} L + W_hᵀ δ_{t+1}) ⊙ (1 − h_t²), from t = T down to 1."""
        _, W_h, _ = self.split()
        deltas, carry = {}, 0
        for t in reversed(range(self.input.shape[1])):
            deltas[t] = (output_gradient[:, t] + carry) * (1 - self.states[t + 1] ** 2)
            carry = W_h.T @ deltas[t]
        return deltas

    def backward(self, output_gradient, learning_rate=None):
        W_x, _, _ = self.split()
        deltas = self.deltas(output_gradient)
        gradient = np.zeros_like(self.weights)
        input_gradient = np.zeros(self.input.shape)
        for t, delta in deltas.items():
            gradient += np.hstack([delta @ self.input[:, t].T, delta @ self.states[t].T, delta.sum(1, keepdims=True)])
            input_gradient[:, t] = W_x.T @ delta
        self.weights_gradient[...] = gradient / self.input.shape[2]
        if learning_rate is not None:
            self.weights -= learning_rate * self.weights_gradient
        return input_gradient


def cce(Y, Yhat):
    return -np.sum(Y * np.log(np.maximum(Yhat, np.finfo(Yhat.dtype).tiny))) / Y.shape[1]


def cce_gradient(Y, Yhat):
    return -Y / np.maximum(Yhat, np.finfo(Yhat.dtype).tiny)


def scaled_dot_product_attention(Q, K, V):
    """O = V Aᵀ, A = softmax(QᵀK/√d_k + M) over each row, M the causal mask."""
    scores = Q.T @ K / np.sqrt(Q.shape[0])
    scores[np.triu_indices(scores.shape[0], 1)] = -np.inf
    exponentials = np.exp(scores - scores.max(axis=1, keepdims=True))
    return V @ (exponentials / exponentials.sum(axis=1, keepdims=True)).T


def softmax_classifier_gradient(W, x, y):
    """The first notebook's ∇_W L = (ŷ − y) x̃ᵀ for one sample, ŷ = softmax(W x̃)."""
    z = W @ x
    exponentials = np.exp(z - z.max())
    return (exponentials / exponentials.sum() - y) @ x.T


class LayerNorm(nn.Layer):
    """x̂ = (x − μ) / √(σ² + ε) over each column's features, y = γ ⊙ x̂ + β; the backward pass through μ and σ²."""

    def __init__(self, features):
        self.gamma, self.beta = np.ones((features, 1)), np.zeros((features, 1))
        self.gamma_gradient, self.beta_gradient = np.zeros_like(self.gamma), np.zeros_like(self.beta)
        self._parameters = [
            nn.Parameter("gamma", self.gamma[:, 0], self.gamma_gradient[:, 0]),
            nn.Parameter("beta", self.beta[:, 0], self.beta_gradient[:, 0]),
        ]

    def parameters(self):
        return self._parameters

    def forward(self, input):
        mean, variance = input.mean(axis=0, keepdims=True), input.var(axis=0, keepdims=True)
        self.inverse_std = 1 / np.sqrt(variance + 1e-5)
        self.normalized = (input - mean) * self.inverse_std
        return self.gamma * self.normalized + self.beta

    def input_gradient(self, g):
        """∇_x L from g = ∇_x̂ L: (g − mean(g) − x̂ mean(g x̂)) / √(σ² + ε), the means over the features."""
        mean_g, mean_gx = g.mean(axis=0, keepdims=True), (g * self.normalized).mean(axis=0, keepdims=True)
        return self.inverse_std * (g - mean_g - self.normalized * mean_gx)

    def backward(self, output_gradient, learning_rate=None):
        b = output_gradient.shape[1]
        self.gamma_gradient[...] = np.sum(output_gradient * self.normalized, axis=1, keepdims=True) / b
        self.beta_gradient[...] = np.sum(output_gradient, axis=1, keepdims=True) / b
        input_gradient = self.input_gradient(self.gamma * output_gradient)
        if learning_rate is not None:
            self.gamma -= learning_rate * self.gamma_gradient
            self.beta -= learning_rate * self.beta_gradient
        return input_gradient


SOLUTIONS = {
    "Dense": Dense,
    "ReLU": ReLU,
    "Softmax": Softmax,
    "MaxPool2D": MaxPool2D,
    "Conv2D": Conv2D,
    "RNN": RNN,
    "LayerNorm": LayerNorm,
}
FUNCTIONS = {
    "cce": cce,
    "cce_gradient": cce_gradient,
    "softmax_classifier_gradient": softmax_classifier_gradient,
    "scaled_dot_product_attention": scaled_dot_product_attention,
}


@pytest.mark.parametrize("name", [*SOLUTIONS, *FUNCTIONS])
def test_the_solutions_pass_every_check(name):
    report = check({**SOLUTIONS, **FUNCTIONS}[name], like=name)
    assert report.passed, str(report)
    assert len(report.verdicts) >= 2 and report.summary().endswith(f"passes every check against nablanet's {name}")


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from([*SOLUTIONS, *FUNCTIONS]))
def test_the_solutions_pass_on_any_random_shapes(seed, name):
    assert check({**SOLUTIONS, **FUNCTIONS}[name], like=name, seed=seed).passed


# ----- the mutation suite: each mistake a real wrong implementation --------------------------------------


class NoMean(Dense):
    def gradients(self, output_gradient):
        weights_gradient, input_gradient = super().gradients(output_gradient)
        return weights_gradient * self.input.shape[1], input_gradient


class OneSample(Dense):
    def gradients(self, output_gradient):
        with_ones = np.vstack([self.input, np.ones((1, self.input.shape[1]))])
        return output_gradient[:, -1:] @ with_ones[:, -1:].T, self.weights[:, :-1].T @ output_gradient


class BiasOverWrongAxis(Dense):
    def backward(self, output_gradient, learning_rate=None):
        b = self.input.shape[1]
        self.weights_gradient[:, :-1] = output_gradient @ self.input.T / b
        self.weights_gradient[:, -1] = output_gradient.mean(axis=0)  # axis 0: over the units
        return self.weights[:, :-1].T @ output_gradient


class TransposedProduct(Dense):
    def forward(self, input):
        self.input = input
        return input.T @ self.weights[:, :-1].T + self.weights[:, -1]  # row-major habits: X W


class NoBias(Dense):
    def forward(self, input):
        self.input = input
        return self.weights[:, :-1] @ input


class UpdatedW(Dense):
    def backward(self, output_gradient, learning_rate=None):
        self.weights_gradient[...] = self.gradients(output_gradient)[0]
        if learning_rate is not None:
            self.weights -= learning_rate * self.weights_gradient  # the step first
        return self.weights[:, :-1].T @ output_gradient  # then ∇_X L, with the new W


class Uphill(Dense):
    def backward(self, output_gradient, learning_rate=None):
        weights_gradient, input_gradient = self.gradients(output_gradient)
        self.weights_gradient[...] = weights_gradient
        if learning_rate is not None:
            self.weights += learning_rate * self.weights_gradient
        return input_gradient


class StepsWithoutRate(Dense):
    def backward(self, output_gradient, learning_rate=None):
        weights_gradient, input_gradient = self.gradients(output_gradient)
        self.weights_gradient[...] = weights_gradient
        self.weights -= (learning_rate or 0.01) * self.weights_gradient
        return input_gradient


class ChangesItsArgument(Dense):
    def backward(self, output_gradient, learning_rate=None):
        output_gradient /= self.input.shape[1]  # in place: the caller's array
        weights_gradient, input_gradient = self.gradients(output_gradient)
        self.weights_gradient[...] = weights_gradient * self.input.shape[1]
        return input_gradient * self.input.shape[1]


class BiasFlowsBack(Dense):
    def gradients(self, output_gradient):
        return super().gradients(output_gradient)[0], self.weights.T @ output_gradient


class ReboundGradient(Dense):
    def backward(self, output_gradient, learning_rate=None):
        self.weights_gradient = self.gradients(output_gradient)[0]  # a new array: parameters() keeps the old one
        return self.gradients(output_gradient)[1]


class ReboundWeights(Dense):
    def backward(self, output_gradient, learning_rate=None):
        weights_gradient, input_gradient = self.gradients(output_gradient)
        self.weights_gradient[...] = weights_gradient
        if learning_rate is not None:
            self.weights = self.weights - learning_rate * self.weights_gradient  # a new array, not the one handed out
        return input_gradient


class SoftmaxBatchShift(Softmax):
    def forward(self, input):
        exponentials = np.exp(input - input.max())  # the batch's one max, not each column's
        self.output = exponentials / exponentials.sum(axis=0, keepdims=True)
        return self.output


class SoftmaxWrongAxis(Softmax):
    def forward(self, input):
        exponentials = np.exp(input - input.max(axis=1, keepdims=True))
        self.output = exponentials / exponentials.sum(axis=1, keepdims=True)
        return self.output


class SoftmaxUnshifted(Softmax):
    def forward(self, input):
        exponentials = np.exp(input)
        self.output = exponentials / exponentials.sum(axis=0, keepdims=True)
        return self.output


class JacobianSign(Softmax):
    def backward(self, output_gradient, learning_rate=None):
        return -super().backward(output_gradient)


class JacobianWithoutDiagonal(Softmax):
    def backward(self, output_gradient, learning_rate=None):
        a = self.output
        return -a * np.sum(a * output_gradient, axis=0, keepdims=True)


class JacobianDiagonalOnly(Softmax):
    def backward(self, output_gradient, learning_rate=None):
        return self.output * (1 - self.output) * output_gradient


class JacobianLoop(Softmax):
    """The notebook's loop, with the first sample's Jacobian reused for every column."""

    def backward(self, output_gradient, learning_rate=None):
        a = self.output[:, 0]
        jacobian = np.diag(a) - np.outer(a, a)
        return np.stack([jacobian @ output_gradient[:, i] for i in range(output_gradient.shape[1])], axis=1)


class ReLUWrongSide(ReLU):
    def backward(self, output_gradient, learning_rate=None):
        return output_gradient * (self.input < 0)


class ReLUTimesOutput(ReLU):
    def backward(self, output_gradient, learning_rate=None):
        return output_gradient * np.maximum(self.input, 0)


class PoolToEveryElement(MaxPool2D):
    def route(self, window_values, gradient):
        return np.full_like(window_values, gradient)


class FlippedKernel(Conv2D):
    def kernel(self, weights):
        return super().kernel(weights)[:, :, ::-1, ::-1]


class LayerNormOverTheBatch(LayerNorm):
    def forward(self, input):  # the statistics over axis 1, the batch: BatchNorm's
        mean, variance = input.mean(axis=1, keepdims=True), input.var(axis=1, keepdims=True)
        self.inverse_std = 1 / np.sqrt(variance + 1e-5)
        self.normalized = (input - mean) * self.inverse_std
        return self.gamma * self.normalized + self.beta


class LayerNormWithoutStatisticsTerms(LayerNorm):
    def input_gradient(self, g):
        return self.inverse_std * g


class LayerNormWithoutVarianceTerm(LayerNorm):
    def input_gradient(self, g):
        return self.inverse_std * (g - g.mean(axis=0, keepdims=True))


class LayerNormGammaGradientWithoutXhat(LayerNorm):
    def backward(self, output_gradient, learning_rate=None):
        input_gradient = super().backward(output_gradient)
        self.gamma_gradient[...] = self.beta_gradient
        return input_gradient


def cce_unguarded(Y, Yhat):
    return -np.sum(Y * np.log(Yhat)) / Y.shape[1]


def cce_summed(Y, Yhat):
    return cce(Y, Yhat) * Y.shape[1]


def cce_epsilon(Y, Yhat):
    return -np.sum(Y * np.log(np.maximum(Yhat, 1e-12))) / Y.shape[1]


def cce_gradient_sign(Y, Yhat):
    return -cce_gradient(Y, Yhat)


def cce_gradient_mean(Y, Yhat):
    return cce_gradient(Y, Yhat) / Y.shape[1]


def cce_gradient_fused(Y, Yhat):
    return Yhat - Y


def cce_gradient_unguarded(Y, Yhat):
    return -Y / Yhat


def scores_for_probabilities(W, x, y):
    return (W @ x - y) @ x.T


def gradient_transposed(W, x, y):
    return softmax_classifier_gradient(W, x, y).T


def gradient_unshifted(W, x, y):
    exponentials = np.exp(W @ x)
    return (exponentials / exponentials.sum() - y) @ x.T


def _attention(Q, K, V, *, scale=True, axis=1, mask=True, shift=True):
    scores = Q.T @ K / (np.sqrt(Q.shape[0]) if scale else 1.0)
    if mask:
        scores[np.triu_indices(scores.shape[0], 1)] = -np.inf
    exponentials = np.exp(scores - scores.max(axis=axis, keepdims=True) if shift else scores)
    return V @ (exponentials / exponentials.sum(axis=axis, keepdims=True)).T


def attention_unscaled(Q, K, V):
    return _attention(Q, K, V, scale=False)


def attention_over_queries(Q, K, V):
    return _attention(Q, K, V, axis=0)


def attention_unmasked(Q, K, V):
    return _attention(Q, K, V, mask=False)


def attention_unshifted(Q, K, V):
    return _attention(Q, K, V, shift=False)


class RNNWithoutCarry(RNN):
    def deltas(self, output_gradient):
        return {t: output_gradient[:, t] * (1 - self.states[t + 1] ** 2) for t in range(self.input.shape[1])}


class RNNDerivativeOfThePreviousState(RNN):
    def deltas(self, output_gradient):
        _, W_h, _ = self.split()
        deltas, carry = {}, 0
        for t in reversed(range(self.input.shape[1])):
            deltas[t] = (output_gradient[:, t] + carry) * (1 - self.states[t] ** 2)
            carry = W_h.T @ deltas[t]
        return deltas


class RNNStateNotFedBack(RNN):
    def forward(self, input):
        W_x, W_h, b = self.split()
        self.input = input
        self.states = [np.zeros((len(W_h), input.shape[2]))]
        for t in range(input.shape[1]):
            self.states.append(np.tanh(W_x @ input[:, t] + b))
        return np.stack(self.states[1:], axis=1)


MUTATIONS = [  # (the exercise, the wrong implementation, the check that fails, a fragment of its diagnosis)
    ("Dense", NoMean, "backward: ∇ of weights", "the 1/b is missing"),
    ("Dense", OneSample, "backward: ∇ of weights", "only the last sample counts"),
    ("Dense", BiasOverWrongAxis, "backward", "averages ∇_Z L over the batch, axis=1"),
    (
        "Dense",
        ReboundGradient,
        "backward: ∇ of weights",
        "parameters() hands out the old one: write into it, self.weights_gradient[...] = …",
    ),
    ("Dense", ReboundWeights, "backward(g, η) takes the step", "write into it, self.weights -= …"),
    ("Dense", NoMean, "backward(g, η) takes the step", "the step took a wrong gradient: the 1/b is missing"),
    ("Dense", TransposedProduct, "forward: the output", "transposed: a batch is a (features, b) matrix"),
    ("Dense", NoBias, "forward: the output", "the bias is missing"),
    ("Dense", UpdatedW, "backward(g, η): ∇ of the input, W before the step", "computed with W after the update"),
    ("Dense", Uphill, "backward(g, η) takes the step W ← W − η ∇_W L (weights)", "the step goes uphill"),
    ("Dense", StepsWithoutRate, "backward(g) without a learning rate changes no weight", "only stores the gradients"),
    ("Dense", ChangesItsArgument, "forward and backward leave their arguments unchanged", "in-place operation"),
    ("Dense", BiasFlowsBack, "backward: ∇ of the input", "the bias column does not flow back"),
    ("Softmax", SoftmaxWrongAxis, "forward: the output", "normalised over the wrong axis"),
    ("Softmax", SoftmaxUnshifted, "forward on scores of 1000 and more", "subtract each column's own max before exp"),
    ("Softmax", SoftmaxBatchShift, "forward on scores of 1000 and more", "a shift by the batch's max underflows"),
    ("Softmax", JacobianSign, "backward: ∇ of the input", "the Jacobian's sign is wrong"),
    ("Softmax", JacobianWithoutDiagonal, "backward: ∇ of the input", "the diagonal term is missing"),
    ("Softmax", JacobianDiagonalOnly, "backward: ∇ of the input", "only the Jacobian's diagonal"),
    ("Softmax", JacobianLoop, "backward: ∇ of the input", "each sample has its own"),
    ("RNN", RNNWithoutCarry, "backward: ∇ of the input", "does not flow back through hₜ₋₁"),
    ("RNN", RNNWithoutCarry, "backward: ∇ of weights", "does not flow back through hₜ₋₁"),
    ("RNN", RNNDerivativeOfThePreviousState, "backward: ∇ of the input", "the tanh derivative at the wrong step"),
    ("RNN", RNNStateNotFedBack, "forward: the output", "hₜ₋₁ is not fed back"),
    ("ReLU", ReLUWrongSide, "backward: ∇ of the input", "the mask is on the wrong side"),
    ("ReLU", ReLUTimesOutput, "backward: ∇ of the input", "multiplied by max(0, z)"),
    ("MaxPool2D", PoolToEveryElement, "backward: ∇ of the input", "every element of the window got the gradient"),
    ("Conv2D", FlippedKernel, "forward: the output", "the kernel is flipped"),
    ("LayerNorm", LayerNormOverTheBatch, "forward: the output", "standardised over the batch (axis=1)"),
    ("LayerNorm", LayerNormWithoutStatisticsTerms, "backward: ∇ of the input", "the terms of μ and σ² are missing"),
    ("LayerNorm", LayerNormWithoutVarianceTerm, "backward: ∇ of the input", "the σ² term is missing"),
    ("LayerNorm", LayerNormGammaGradientWithoutXhat, "backward: ∇ of gamma", "the x̂ is missing"),
    ("cce", cce_unguarded, "a probability of exactly 0 for a class that is not the label", "0 · log 0 gave NaN"),
    ("cce", cce_unguarded, "a probability of exactly 0 for the label", "log 0 = −inf"),
    ("cce", cce_summed, "the batch's mean loss", "the 1/b is missing"),
    ("cce", cce_epsilon, "a probability of exactly 0 for the label", "guarded with ε = 1e-12"),
    ("cce_gradient", cce_gradient_sign, "∇_Ŷ L, column by column", "the sign is wrong"),
    ("cce_gradient", cce_gradient_mean, "∇_Ŷ L, column by column", "∇_ŷ L is per sample"),
    ("cce_gradient", cce_gradient_fused, "∇_Ŷ L, column by column", "that is ∇_z L, Softmax and the loss together"),
    ("cce_gradient", cce_gradient_unguarded, "a probability of exactly 0 for a class", "0 / 0 gave NaN"),
    ("softmax_classifier_gradient", scores_for_probabilities, "∇_W L for one sample", "the scores z in place of"),
    ("softmax_classifier_gradient", gradient_transposed, "∇_W L for one sample", "transposed"),
    ("softmax_classifier_gradient", gradient_unshifted, "∇_W L, scores near 1000", "overflows to inf"),
    ("scaled_dot_product_attention", attention_unscaled, "O = V Aᵀ for one sequence", "the √d_k is missing"),
    ("scaled_dot_product_attention", attention_over_queries, "O = V Aᵀ for one sequence", "softmax over the wrong"),
    ("scaled_dot_product_attention", attention_unmasked, "O = V Aᵀ for one sequence", "the causal mask is not"),
    ("scaled_dot_product_attention", attention_unshifted, "O, scores in the thousands", "overflows to inf"),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the mutants' own overflows and 0/0: what they are about
@pytest.mark.parametrize(
    ("exercise", "mutant", "failing", "diagnosis"), MUTATIONS, ids=[mutant.__name__ for _, mutant, _, _ in MUTATIONS]
)
def test_each_mistake_is_flagged_with_its_own_diagnosis(exercise, mutant, failing, diagnosis):
    report = check(mutant, like=exercise)
    assert not report.passed, str(report)
    verdict = next((v for v in report.verdicts if v.check.startswith(failing)), None)
    assert verdict is not None and verdict.passed is False, str(report)
    assert diagnosis in verdict.hint, str(report)


def test_a_method_not_written_yet_is_said_so_not_a_traceback():
    class Unwritten(nn.Layer):
        def forward(self, input):
            raise NotImplementedError  # the student version's placeholder

    class Ellipsis_(nn.Layer):
        def forward(self, input): ...

    for unwritten in (Unwritten, Ellipsis_):
        report = check(unwritten, like="ReLU")
        assert not report.passed and not report.written
        assert report.summary() == f"{unwritten.__name__}: not written yet"
    assert check(lambda Y, Yhat: ..., like="cce").summary().endswith("not written yet")


def test_a_constructor_of_another_signature_is_named():
    class Wrong(Dense):
        def __init__(self, sizes):
            super().__init__(*sizes)

    report = check(Wrong, like="Dense")
    verdict, rest = report.verdicts
    assert not verdict.passed and "the exercise's constructor takes (input_size, output_size)" in verdict.hint
    assert rest.passed is None and rest.measured.startswith("not run")


def test_the_report_reads_as_lines_and_as_a_table():
    report = check(ReLUWrongSide, like="ReLU")
    text = str(report)
    assert text.splitlines()[0].startswith("ReLUWrongSide checked against nablanet's ReLU (ReLU on (")
    assert "  ✗ backward: ∇ of the input" in text and "→ the mask is on the wrong side" in text
    assert text.splitlines()[-1] == f"ReLUWrongSide: {len(report.failures())} of {len(report.verdicts)} checks failed"
    table = report._repr_html_()
    assert table.count("<tr>") == len(report.verdicts) + 1 and "✗" in table and "&lt;" not in text


def test_an_unknown_reference_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"like must be one of \['Conv2D', 'Dense', .*'softmax_classifier_gradient'\]"):
        check(Dense, like="Dense2")


def test_a_class_where_a_function_is_checked_and_back_is_refused():
    with pytest.raises(TypeError, match="like='cce' checks a function"):
        check(Dense, like="cce")
    with pytest.raises(TypeError, match="like='Dense' checks a layer class"):
        check(Dense(3, 2), like="Dense")


def test_the_docs_example_is_what_the_checker_prints():
    from pathlib import Path

    page = (Path(__file__).parents[1] / "docs" / "exercises.md").read_text(encoding="utf-8")
    shown = page.split("```text\n")[1].split("```")[0]
    assert shown == str(check(BiasOverWrongAxis, like="Dense")) + "\n"
