"""Text for character models: the ``words`` data set, and the windows a model is trained on.

``words`` is Debian's ``wamerican`` word list (``/usr/share/dict/words``, about 104,000 entries, public
domain): short, clean, one word a line — the "make more words" task of makemore, on which a bigram, an RNN,
an LSTM and a transformer have visibly different things to learn, in minutes on a CPU. The list is read as
UTF-8, lower-cased, and only the words made of the letters a–z are kept, each once: possessives ("Aaron's",
a word and an ending the list repeats for a quarter of its entries) and words with accents are left out,
which leaves about 73,000 words and an alphabet of 27 tokens: the newline ``"\\n"`` (id 0), which ends every
word, and ``"a"``–``"z"`` (ids 1–26). The words are shuffled with a fixed seed — the file is sorted, and
neighbours that share a prefix would flatter any model — then split by words: the last 10 % are the
validation set.

A sample of 3,000 words (the first of the same shuffle, stored lower-cased, one a line) ships with the
package, for tests and for a machine without the list: ``load_words(sample=True)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..core import _checks
from .idx import DatasetError

WORDS_PATH = Path("/usr/share/dict/words")  # Debian's wamerican
WORDS_PACKAGE = "wamerican"
ALPHABET = "\nabcdefghijklmnopqrstuvwxyz"  # id 0 is the newline that ends each word
SEED = 0  # the shuffle of the words
VALIDATION_FRACTION = 0.1
MAX_WORDS_BYTES = 16 * 2**20  # the list is 1 MB; a far larger file is not a word list


@dataclass(frozen=True)
class TextDataset:
    """A text as streams of token ids, and its vocabulary.

    ``train`` and ``validation`` are 1-D int64 arrays of token ids: the words, each followed by the newline
    (id 0), one after another, the stream starting with a newline so that the first word's first letter is
    predicted from "the start of a word". ``vocabulary`` is the token of each id. ``words`` counts the words
    of each split.
    """

    name: str
    train: np.ndarray
    validation: np.ndarray
    vocabulary: tuple[str, ...]
    words: tuple[int, int]

    @property
    def vocabulary_size(self) -> int:
        """V, the number of tokens."""
        return len(self.vocabulary)

    def encode(self, text: str) -> np.ndarray:
        """The token ids (int64) of ``text``; a ``ValueError`` names a character outside the vocabulary.

        Args:
            text: Characters of the vocabulary, e.g. ``"cat\\n"``.
        """
        index = {token: number for number, token in enumerate(self.vocabulary)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise ValueError(f"text holds characters outside the vocabulary: {''.join(unknown)[:20]!r}")
        return np.array([index[character] for character in text], dtype=np.int64)

    def decode(self, ids) -> str:
        """The text of the token ids ``ids`` (whole numbers in [0, V)).

        Args:
            ids: A sequence of token ids.
        """
        array = np.asarray(ids)
        checked = _checks.token_ids("ids", array.reshape(-1, 1), self.vocabulary_size).ravel()
        return "".join(self.vocabulary[number] for number in checked)


def clean_words(lines) -> list[str]:
    """The distinct lower-cased words of ``lines`` made of the letters a–z only, in their first order."""
    letters = set(ALPHABET[1:])
    seen: dict[str, None] = {}
    for line in lines:
        word = line.strip().lower()
        if word and set(word) <= letters:
            seen.setdefault(word)
    return list(seen)


def _read_word_list(path: Path) -> list[str]:
    try:
        size = path.stat().st_size
        if size > MAX_WORDS_BYTES:
            raise DatasetError(f"{path} is {size / 2**20:.0f} MiB: not a word list (at most {MAX_WORDS_BYTES >> 20})")
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise DatasetError(
            f"the words data set needs {path}: install Debian's {WORDS_PACKAGE} package "
            f"(apt-get install {WORDS_PACKAGE}), or use load_words(sample=True)"
        ) from None
    except OSError as error:
        raise DatasetError(f"could not read {path}: {error.strerror or error}") from None
    return text.splitlines()


def _sample_words() -> list[str]:
    return (resources.files("nablanet.data") / "words" / "sample.txt").read_text(encoding="utf-8").splitlines()


def shuffled_words(path=WORDS_PATH) -> list[str]:
    """The cleaned words of the list at ``path``, shuffled with the fixed seed (the order of ``load_words``)."""
    words = clean_words(_read_word_list(Path(path)))
    order = np.random.default_rng(SEED).permutation(len(words))
    return [words[position] for position in order]


def load_words(*, sample: bool = False, path: str | os.PathLike | None = None) -> TextDataset:
    """The ``words`` data set (see the module's description): train and validation streams of token ids.

    Args:
        sample: True: the 3,000 words bundled with nablanet (no system file needed); False: the whole list.
        path: The word list to read instead of ``/usr/share/dict/words`` (one word a line); not with
            ``sample``.

    >>> data = load_words(sample=True)
    >>> data.vocabulary_size, data.words
    (27, (2700, 300))
    >>> data.decode(data.train[:12])
    '\\nwelding\\npar'
    """
    if sample and path is not None:
        raise ValueError("give either sample=True or a path, not both")
    words = _sample_words() if sample else shuffled_words(WORDS_PATH if path is None else path)
    if len(words) < 10:
        raise DatasetError(f"the word list holds {len(words)} usable words (a–z only): at least 10 are needed")
    split = len(words) - max(1, round(len(words) * VALIDATION_FRACTION))
    index = {token: number for number, token in enumerate(ALPHABET)}

    def stream(part: list[str]) -> np.ndarray:
        text = "\n" + "".join(word + "\n" for word in part)
        return np.array([index[character] for character in text], dtype=np.int64)

    name = "words-sample" if sample else "words"
    return TextDataset(name, stream(words[:split]), stream(words[split:]), tuple(ALPHABET), (split, len(words) - split))


def windows(stream: np.ndarray, length: int, *, stride: int | None = None, dtype=np.float64):
    """Cut a stream of token ids into windows of ``length`` T and their next-token targets: (X, Y), each (T, N).

    Column j of X is ``stream[s : s + T]`` with s = j · stride, and column j of Y is the same window moved
    by one, ``stream[s + 1 : s + T + 1]``: the token that follows each position. Windows run across word
    boundaries (the newlines are tokens like the letters); the last tokens that do not fill a window are
    left out. The ids are stored in ``dtype``, the model's, as whole numbers (what ``fit`` gathers).

    Args:
        stream: 1-D token ids (a :class:`TextDataset`'s ``train`` or ``validation``).
        length: T, the positions of a window (a positive integer).
        stride: How far each window starts after the one before (a positive integer); None: T, windows side
            by side.
        dtype (numpy.float32 | numpy.float64): Of X and Y.

    >>> X, Y = windows(np.arange(10), 4)
    >>> X.T.tolist(), Y.T.tolist()
    ([[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]], [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    """
    length = _checks.positive_int("length", length)
    stride = length if stride is None else _checks.positive_int("stride", stride)
    dtype = _checks.float_dtype("dtype", dtype)
    stream = np.asarray(stream)
    if stream.ndim != 1 or stream.dtype.kind not in "iu":
        raise ValueError(f"stream must be a 1-D array of integer token ids, received {stream.dtype} {stream.shape}")
    count = (stream.size - 1 - length) // stride + 1
    if count < 1:
        raise ValueError(f"the stream of {stream.size} tokens is too short for one window of length {length} + 1")
    starts = np.arange(count) * stride
    positions = starts[:, None] + np.arange(length)[None, :]  # (N, T): each window's positions side by side
    # the transposes of (N, T) arrays: a window's ids lie together in memory, as a mini-batch gathers them
    return stream[positions].astype(dtype).T, stream[positions + 1].astype(dtype).T
