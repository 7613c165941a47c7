"""Strict base64 accepts exactly the text that encoding its own bytes gives back."""

import base64
import binascii
import random

import pytest

from callscope.ingest import strict_base64


def _reference(text: str) -> bytes | None:
    """The definition, written the slow way: decode strictly, encode again, compare."""
    try:
        decoded = binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        return None
    return decoded if decoded and base64.b64encode(decoded).decode() == text else None


def _decoded(text: str) -> bytes | None:
    try:
        return strict_base64.decode(text)
    except ValueError:
        return None


@pytest.mark.parametrize("alphabet", ["AQRgw+/=x", "AB=", "Qw=A", "gxR=+"])
def test_agrees_with_the_definition_on_random_text(alphabet: str) -> None:
    rng = random.Random(alphabet)
    texts = ["".join(rng.choices(alphabet, k=rng.randint(1, 13))) for _ in range(20_000)]
    disagreements = [t for t in texts if _decoded(t) != _reference(t)]
    assert disagreements == []
    assert any(_reference(t) is not None for t in texts)  # the sample holds valid text too


@pytest.mark.parametrize(
    "text", ["QR==", "QQ==" + "====", "AQQA=", "QQ=", "QQ", " QQ==", "QQ==\n", "", "===="]
)
def test_refuses_text_that_is_not_the_canonical_encoding(text: str) -> None:
    with pytest.raises(ValueError, match=r"base64|empty"):
        strict_base64.decode(text)


@pytest.mark.parametrize("size", range(1, 10))
def test_decodes_what_encoding_gives(size: int) -> None:
    data = bytes(range(200, 200 + size))
    assert strict_base64.decode(base64.b64encode(data).decode()) == data
