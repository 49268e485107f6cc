"""Pictures are untrusted: their cost is bounded before they are decoded, and each refusal names its limit."""

import io

import numpy as np
import pytest
from hostile import _png_header
from PIL import Image

from nablanet.data.idx import DatasetError
from nablanet.data.images import MAX_JPEG_SCANS, read_grey


def progressive_jpeg() -> bytes:
    picture = Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", progressive=True, quality=90)
    return buffer.getvalue()


def with_scans_repeated(jpeg: bytes, times: int) -> bytes:
    """The JPEG with its last scan repeated: each repetition is one more pass of the decoder over the picture."""
    last = jpeg.rindex(b"\xff\xda")
    end = jpeg.rindex(b"\xff\xd9")
    return jpeg[:end] + jpeg[last:end] * times + jpeg[end:]


def test_a_progressive_jpeg_is_read():
    jpeg = progressive_jpeg()
    assert 2 <= jpeg.count(b"\xff\xda") <= MAX_JPEG_SCANS
    assert read_grey(jpeg).shape == (64, 64)


def test_a_jpeg_of_too_many_scans_is_refused_before_it_is_decoded(tmp_path):
    bomb = with_scans_repeated(progressive_jpeg(), 5_000)
    with pytest.raises(DatasetError, match=r"the picture: a JPEG of 5,00\d scans, more than the 64 nablanet decodes"):
        read_grey(bomb)
    (tmp_path / "bomb.jpg").write_bytes(bomb)  # from a file too, read in chunks
    with pytest.raises(DatasetError, match="scans, more than the 64"):
        read_grey(tmp_path / "bomb.jpg")


@pytest.mark.parametrize("limit", [1_000_000, 40_000_000])
def test_a_huge_picture_is_refused_naming_the_limit_in_force(limit):
    with pytest.raises(DatasetError, match=f"more than the {limit:,} pixels nablanet decodes"):
        read_grey(_png_header(50_000, 50_000), max_pixels=limit)


def test_an_mpo_of_too_many_scans_is_refused_as_a_jpeg_is():
    """A multi-picture JPEG (MPO, as cameras write) is JPEG frames one after the other: its scans count too."""
    frames = [Image.fromarray(np.full((32, 32), value, np.uint8)) for value in (10, 200)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="MPO", save_all=True, append_images=frames[1:], progressive=True)
    mpo = buffer.getvalue()
    assert Image.open(io.BytesIO(mpo)).format == "MPO"
    assert read_grey(mpo).shape == (32, 32)
    bomb = (
        mpo[: mpo.index(b"\xff\xd9")]
        + mpo[mpo.index(b"\xff\xda") : mpo.index(b"\xff\xd9")] * 100
        + mpo[mpo.index(b"\xff\xd9") :]
    )
    assert Image.open(io.BytesIO(bomb)).format == "MPO"  # not taken for a plain JPEG
    with pytest.raises(DatasetError, match="scans, more than the 64 nablanet decodes"):
        read_grey(bomb)
