"""Character models of the ``words`` data set, as ``nablanet train --dataset words --model …`` builds them,
and ``nablanet sample``, which makes them write.

A character model reads a window of T characters (token ids, a (T, b) batch: one column per window) and
gives at every position t the logits of the next character, a (V, T, b) output scored by the registered
``"sequence"`` loss (softmax cross-entropy, mean over the T·b positions, in nats per character). Three
models, each a :class:`~nablanet.Sequential`:

* ``bigram``: the baseline — an Embedding of V×V logits, one row of next-character scores per character
  (the counts table of a bigram model, learnt by gradient descent);
* ``lstm``: Embedding (d), an LSTM of ``hidden`` units, Dense to V logits;
* ``transformer``: Embedding (d) + positional embedding (T × d), ``blocks`` pre-norm transformer blocks of
  ``heads`` causal attention heads, LayerNorm, Dense to V logits.

The model file keeps what it needs to write: the vocabulary (as Unicode code points, plain numbers) and
the context length T in its metadata, checked when it is read (:func:`text_model_facts`). In a notebook::

    from nablanet.app.language import generate
    words = generate(nablanet.load("runs/words/model.npz"), count=5, seed=0)
"""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import numpy as np

from ..core import _checks
from ..core.attention import PositionalEmbedding, TransformerBlock
from ..core.layers import Dense, run
from ..core.normalization import LayerNorm
from ..core.recurrent import LSTM, Embedding
from ..data.text import load_words, windows
from ..files.atomic import atomic_write
from ..training.model import Sequential

TEXT_MODELS = ("bigram", "lstm", "transformer")
TEXT_DATASETS = ("words", "words-sample")  # the word list, and the 3,000 words bundled with nablanet
SEPARATOR = "\n"  # what ends a word in the stream, and so a sample
MAX_COUNT = 1000  # samples one `nablanet sample` writes at most
MAX_LENGTH = 200  # characters a sample may have, the prompt's included
MAX_CONTEXT = 4096  # a model file's context length at most: attention's work grows as T²


@dataclasses.dataclass(frozen=True)
class TextData:
    """The windows a character model trains on: ``X_train`` (T, N) token ids — one window per column — and
    ``Y_train`` (T, N) the next character of each (the window shifted by one), the validation windows
    likewise, in the model's float dtype; ``vocabulary``: the characters, id order."""

    name: str
    X_train: np.ndarray
    Y_train: np.ndarray
    X_val: np.ndarray
    Y_val: np.ndarray
    vocabulary: str

    @property
    def size(self) -> int:
        """V, the number of characters."""
        return len(self.vocabulary)


def load_text(name: str, context: int, dtype=np.float32) -> TextData:
    """The ``name`` data set — ``"words"``, or ``"words-sample"``, the 3,000 words bundled with nablanet — cut
    into windows of ``context`` characters side by side (see :func:`nablanet.data.text.load_words`).

    Args:
        name: "words" (Debian's word list) or "words-sample" (the bundled 3,000 words).
        context: T, the characters of a window (a positive integer).
        dtype: The float dtype of the (T, N) windows of character ids and of their targets.
    """
    words = load_words(sample=_checks.choice("dataset", name, TEXT_DATASETS) == "words-sample")
    X_train, Y_train = windows(words.train, context, dtype=dtype)
    X_val, Y_val = windows(words.validation, context, dtype=dtype)
    return TextData(name, X_train, Y_train, X_val, Y_val, "".join(words.vocabulary))


def build_text_model(
    model: str,
    vocabulary_size: int,
    *,
    context: int = 32,
    embed: int = 64,
    heads: int = 4,
    blocks: int = 2,
    hidden: int = 128,
    dtype=np.float32,
    rng=None,
) -> Sequential:
    """The character model ``model`` ("bigram", "lstm" or "transformer") for V = ``vocabulary_size``
    characters: input ids (T, b) with T ≤ ``context``, output logits (V, T, b).

    Args:
        model: "bigram", "lstm" or "transformer".
        vocabulary_size: V, the characters.
        context: T, the longest window (the transformer's positional embedding has T rows).
        embed: d, the width of the embedding (lstm, transformer).
        heads: Attention heads per block (transformer; d must be a multiple).
        blocks: Transformer blocks.
        hidden: The LSTM's state size.
        dtype (numpy.float32 | numpy.float64): Of the weights.
        rng (int | numpy.random.Generator | None): Seed or generator of the initial weights.

    >>> [type(layer).__name__ for layer in build_text_model("transformer", 30, context=8, embed=16, rng=0).layers]
    ['Embedding', 'PositionalEmbedding', 'TransformerBlock', 'TransformerBlock', 'LayerNorm', 'Dense']
    """
    model = _checks.choice("model", model, TEXT_MODELS)
    rng = np.random.default_rng(rng)
    if model == "bigram":
        return Sequential([Embedding(vocabulary_size, vocabulary_size, rng=rng, dtype=dtype)])
    if model == "lstm":
        return Sequential(
            [
                Embedding(vocabulary_size, embed, rng=rng, dtype=dtype),
                LSTM(embed, hidden, rng=rng, dtype=dtype),
                Dense(hidden, vocabulary_size, init="glorot_uniform", rng=rng, dtype=dtype),
            ]
        )
    if embed % heads:
        raise ValueError(f"--embed {embed} must be a multiple of --heads {heads}: each head takes embed/heads features")
    return Sequential(
        [
            Embedding(vocabulary_size, embed, rng=rng, dtype=dtype),
            PositionalEmbedding(context, embed, rng=rng, dtype=dtype),
            *(TransformerBlock(embed, heads, rng=rng, dtype=dtype) for _ in range(blocks)),
            LayerNorm(embed, dtype=dtype),
            Dense(embed, vocabulary_size, init="glorot_uniform", rng=rng, dtype=dtype),
        ]
    )


def text_metadata(model: str, data: TextData, context: int) -> dict:
    """What a character model's file keeps beside its layers: the data set, the kind of model, the context
    length and the vocabulary as code points (plain numbers: a newline is not printable text)."""
    return {"dataset": data.name, "model": model, "context": context, "vocabulary": [ord(c) for c in data.vocabulary]}


@dataclasses.dataclass(frozen=True)
class TextModelFacts:
    """What :func:`generate` reads from a character model's metadata, checked."""

    vocabulary: str
    context: int


def text_model_facts(model: Sequential, where: str = "the model") -> TextModelFacts:
    """The vocabulary and context length of a character model, from its metadata; a ``ValueError`` naming
    ``where`` for a model that is not one, or whose metadata does not fit its layers.

    Args:
        model: A loaded model, whose ``metadata`` a character-model run wrote.
        where: How an error names the model, e.g. its file.
    """
    metadata = model.metadata
    codes, context = metadata.get("vocabulary"), metadata.get("context")
    if metadata.get("model") not in TEXT_MODELS or codes is None:
        raise ValueError(
            f"{where} is not a character model (train one with nablanet train --dataset words --model transformer)"
        )
    if not isinstance(codes, list) or not all(
        isinstance(code, int) and not isinstance(code, bool) and 0 <= code < 0x110000 for code in codes
    ):
        raise ValueError(f"{where}: its vocabulary must be a list of Unicode code points")
    vocabulary = "".join(map(chr, codes))
    if len(set(vocabulary)) != len(vocabulary) or SEPARATOR not in vocabulary:
        raise ValueError(f"{where}: its vocabulary must hold distinct characters, the newline among them")
    if isinstance(context, bool) or not isinstance(context, int) or not 0 < context <= MAX_CONTEXT:
        raise ValueError(f"{where}: its context length must be an integer in [1, {MAX_CONTEXT}], received {context!r}")
    longest = min((layer.context for layer in model.layers if isinstance(layer, PositionalEmbedding)), default=context)
    if context > longest:
        raise ValueError(f"{where}: its context length {context} is longer than its positional embedding's, {longest}")
    shape = model.shapes((context,))[-1]
    if shape is None or shape[0] != len(vocabulary):
        raise ValueError(f"{where}: its layers give {shape} outputs a position, its vocabulary has {len(vocabulary)}")
    return TextModelFacts(vocabulary, context)


def generate(
    model: Sequential,
    *,
    count: int = 10,
    temperature: float = 1.0,
    seed: int = 0,
    prompt: str = "",
    max_length: int = 40,
) -> list[str]:
    """``count`` words written by a character model, each begun with ``prompt``: character by character,
    each drawn from softmax(z / temperature) of the logits z at the last position (temperature < 1: the likely
    characters more often), the input being the word so far after a newline (the separator that starts a
    word), cut to the model's last ``context`` characters; a word ends at a newline or at ``max_length``.

    Args:
        model: A character model (see :func:`build_text_model`), with its metadata.
        count: Words to write (1 to 1000).
        temperature: τ > 0 of softmax(z / τ).
        seed: Seed of the draws.
        prompt: The start of every word: characters of the model's vocabulary, no newline.
        max_length: Characters a word may have, the prompt's included (1 to 200).
    """
    facts = text_model_facts(model)
    count = _checks.int_in_range("--count", count, 1, MAX_COUNT)
    temperature = _checks.positive_float("--temperature", temperature)
    max_length = _checks.int_in_range("--max-length", max_length, 1, MAX_LENGTH)
    unknown = sorted(set(prompt) - set(facts.vocabulary) | set(prompt) & {SEPARATOR})
    if unknown:
        raise ValueError(
            f"--prompt has characters the model does not know: {''.join(unknown)!r} (it knows "
            f"{facts.vocabulary.replace(SEPARATOR, '')!r})"
        )
    if len(prompt) >= max_length:
        raise ValueError(f"--prompt has {len(prompt)} characters; --max-length {max_length} leaves room for none more")
    ids = {character: index for index, character in enumerate(facts.vocabulary)}
    rng = np.random.default_rng(_checks.non_negative_int("--seed", seed))
    text = np.array([[ids[SEPARATOR], *(ids[c] for c in prompt)]] * count, dtype=np.int64).T  # (t, count)
    done = np.zeros(count, dtype=bool)
    while text.shape[0] <= max_length and not done.all():
        window = text[-facts.context :].astype(model.dtype)
        with np.errstate(all="ignore"):  # an overflow is said below, in one line
            logits = run(model.layers, window, inference=True)[:, -1, :].astype(np.float64) / temperature  # (V, b)
        if not np.isfinite(logits).all():
            raise ValueError("the model's outputs are not finite numbers (NaN or inf): its weights overflow")
        probabilities = np.exp(logits - logits.max(axis=0))
        probabilities /= probabilities.sum(axis=0)
        cumulative = probabilities.cumsum(axis=0)
        drawn = np.minimum((cumulative < rng.random(count)).sum(axis=0), len(facts.vocabulary) - 1)
        drawn[done] = ids[SEPARATOR]
        text = np.vstack([text, drawn])
        done |= drawn == ids[SEPARATOR]
    words = []
    for column in text[1:].T:
        characters = "".join(facts.vocabulary[index] for index in column)
        words.append(characters.split(SEPARATOR)[0])
    return words


def attention_sample(data: TextData, context: int) -> str:
    """A word of the validation windows for the attention picture: the first whole word of 6 to ``context``
    − 1 characters."""
    stream = "".join(data.vocabulary[int(index)] for index in data.X_val[:, :50].T.ravel())
    for word in stream.split(SEPARATOR)[1:-1]:
        if 6 <= len(word) < context:
            return word
    return stream.split(SEPARATOR)[0][: context - 1] or data.vocabulary[0]


def attention_maps(model: Sequential, word: str) -> tuple[np.ndarray, str]:
    """The attention weights (heads, T, T) of the last transformer block of ``model`` while it reads ``word``
    after a newline (the start of a word), cut to its context; and the T characters read.

    Args:
        model: A transformer character model, with its metadata.
        word: Characters of its vocabulary.
    """
    facts = text_model_facts(model)
    text = (SEPARATOR + word)[: facts.context]
    ids = np.array([[facts.vocabulary.index(character)] for character in text], dtype=model.dtype)  # (T, 1)
    last = None
    X = ids
    for layer in model.layers:
        layer = copy.copy(layer)  # as an inference run does: the model's own layers keep their state
        layer.training = False
        X = layer.forward(X)
        if isinstance(layer, TransformerBlock):
            last = layer
    if last is None or last.attention.attention_maps is None:
        raise ValueError("the model has no transformer block: it has no attention maps")
    return last.attention.attention_maps[..., 0], text


def count_parameters(model: Sequential) -> int:
    """The number of trainable numbers."""
    return sum(math.prod(parameter.value.shape) for parameter in model.parameters())


def written_samples(path: Path, words: list[str], temperature: float, seed: int) -> Path:
    """Write the sampled words, one a line, with a first line that says how they were drawn."""
    with atomic_write(path, "w") as file:
        file.write(f"# {len(words)} samples, temperature {temperature:g}, seed {seed}\n")
        file.write("\n".join(words) + "\n")
    return path
