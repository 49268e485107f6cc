"""The ``words`` data set: cleaned, shuffled with a fixed seed, split by words; the bundled sample; windows."""

from pathlib import Path

import numpy as np
import pytest

import nablanet as nn
from nablanet.data import text
from nablanet.data.idx import DatasetError


def test_the_sample_is_27_tokens_of_newline_ended_lowercase_words():
    data = nn.load_words(sample=True)
    assert data.vocabulary == ("\n", *"abcdefghijklmnopqrstuvwxyz") and data.vocabulary_size == 27
    assert data.words == (2700, 300)
    words = data.decode(data.train).split("\n")
    assert words[0] == "" and words[-1] == ""  # the stream starts and ends with a newline
    assert len(words[1:-1]) == 2700 and all(word.isalpha() and word.islower() for word in words[1:-1])
    assert data.train.dtype == np.int64 and data.train.min() == 0 and data.train.max() <= 26
    assert set(data.decode(data.validation).split()) & set(words) == set()  # split by words


def test_encode_and_decode_are_inverse_and_refuse_what_is_not_in_the_vocabulary():
    data = nn.load_words(sample=True)
    np.testing.assert_array_equal(data.encode("cab\n"), [3, 1, 2, 0])
    assert data.decode(data.encode("zebra\n")) == "zebra\n"
    with pytest.raises(ValueError, match="characters outside the vocabulary: 'C'"):
        data.encode("Cab")
    with pytest.raises(ValueError, match=r"ids must hold token ids in \[0, 27\), received ids from 0 to 27"):
        data.decode([0, 27])


def test_cleaning_keeps_each_lowercase_a_to_z_word_once():
    lines = ["Aaron", "aaron", "Aaron's", "abbé", "zoo", "", "  Cat ", "x-ray"]
    assert text.clean_words(lines) == ["aaron", "zoo", "cat"]


def test_the_full_list_shuffled_begins_with_the_bundled_sample():  # .ci/run installs wamerican
    words = text.shuffled_words()
    assert len(words) == 73445  # wamerican 2020.12.07-2: the distinct lower-case words of a-z only
    sample = (Path(text.__file__).parent / "words" / "sample.txt").read_text(encoding="utf-8").split()
    assert words[:3000] == sample


def test_a_missing_word_list_names_the_debian_package(tmp_path):
    with pytest.raises(DatasetError, match=r"install Debian's wamerican package \(apt-get install wamerican\)"):
        nn.load_words(path=tmp_path / "words")


def test_a_huge_or_wordless_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "words"
    path.write_text("Ab's\n123\n")
    with pytest.raises(DatasetError, match="holds 0 usable words"):
        nn.load_words(path=path)
    monkeypatch.setattr(text, "MAX_WORDS_BYTES", 4)
    with pytest.raises(DatasetError, match="not a word list"):
        nn.load_words(path=path)


def test_windows_are_the_stream_and_the_stream_moved_by_one():
    stream = np.arange(11)
    X, Y = nn.windows(stream, 3, stride=2)
    assert X.shape == Y.shape == (3, 4) and X.dtype == np.float64
    np.testing.assert_array_equal(X[:, 1], [2, 3, 4])
    np.testing.assert_array_equal(Y, X + 1)
    assert X.flags.f_contiguous  # each window's ids side by side in memory, as fit gathers them
    assert nn.windows(stream, 10)[0].shape == (10, 1)
    with pytest.raises(ValueError, match="too short for one window of length 11"):
        nn.windows(stream, 11)
    with pytest.raises(ValueError, match="stream must be a 1-D array of integer token ids"):
        nn.windows(stream.astype(float), 3)
