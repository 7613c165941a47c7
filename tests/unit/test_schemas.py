"""PacketIn is strict: no coercion, strict base64, finite timestamps, no unknown fields."""

import json
from typing import Any

import pytest
from pydantic import ValidationError

from callscope.calls.schemas import PacketIn

GOOD: dict[str, Any] = {"sequence": 1, "data": "AAEC", "timestamp": 1764340000.5}


def test_valid_packet_decodes_its_audio() -> None:
    packet = PacketIn.model_validate(GOOD)
    assert packet.data == b"\x00\x01\x02"


def test_integer_timestamp_is_accepted() -> None:
    assert PacketIn.model_validate({**GOOD, "timestamp": 1764340000}).timestamp == 1764340000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sequence", "7"),
        ("sequence", 7.0),
        ("sequence", True),
        ("sequence", -1),
        ("sequence", 2**63),
        ("sequence", None),
        ("data", ""),
        ("data", "AAE"),  # missing padding
        ("data", "AA=C"),  # padding inside
        ("data", "QR=="),  # non-canonical trailing bits
        ("data", "AA EC"),  # whitespace
        ("data", "AAEC\n"),
        ("data", "AA-_"),  # url-safe alphabet
        ("data", "!!!!"),
        ("data", 1234),
        ("timestamp", float("nan")),
        ("timestamp", float("inf")),
        ("timestamp", -1.0),
        ("timestamp", "1764340000"),
    ],
)
def test_invalid_field_is_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        PacketIn.model_validate({**GOOD, field: value})
    assert caught.value.errors()[0]["loc"][0] == field


def test_unknown_field_is_rejected() -> None:
    with pytest.raises(ValidationError):
        PacketIn.model_validate({**GOOD, "codec": "pcmu"})


def test_missing_field_is_rejected() -> None:
    with pytest.raises(ValidationError):
        PacketIn.model_validate_json(json.dumps({"sequence": 1, "data": "AAEC"}))
