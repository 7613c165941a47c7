"""Strict standard base64, as every ingest path reads audio: the alphabet, the padding and
canonical trailing bits all checked (`QR==` is refused: it can only mean `Q===`'s byte). Pure."""

import base64
import binascii


def decode(text: str) -> bytes:
    """The bytes of `text`; ValueError unless it is canonical base64 of at least one byte."""
    try:
        decoded = binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error as exc:
        raise ValueError("not valid base64") from exc
    if not decoded:
        raise ValueError("empty")
    # Strict mode checked the alphabet and that padding ends the text; canonical text is as
    # long as the encoding of its bytes (no spare `=`), and only a padded last quad can carry
    # unused bits, so only it is encoded again and compared.
    tail = len(decoded) % 3
    if len(text) != 4 * -(-len(decoded) // 3) or (
        tail and base64.b64encode(decoded[-tail:]).decode("ascii") != text[-4:]
    ):
        raise ValueError("not canonical base64")
    return decoded
